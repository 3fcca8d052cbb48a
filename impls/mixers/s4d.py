"""S4D: a diagonal state space layer (Gu et al. 2022, "On the Parameterization and
Initialization of Diagonal State Space Models").

Per channel h (H = d_model independent SSMs), N/2 complex modes (conjugate pairs):
    A = -exp(log_A_real) + i * A_imag        S4D-Lin: -1/2 + i*pi*n; S4D-Inv: -1/2 + i*(N/pi)*(N/(2n+1) - 1)
    dA = exp(dt * A), dB = (exp(dt * A) - 1) / A   (zero-order hold, B = 1)
    h_t = dA * h_{t-1} + dB * u_t,   y_t = 2 Re(sum_n C_n h_t[n]) + D * u_t
Whole sequences use the convolution view: y = K * u with K[l] = 2 Re(sum_n C_n dB_n dA_n^l)
(a Vandermonde product), computed by FFT with 2L padding so it is not circular.
One token uses the recurrence. The output is gelu(y) then a linear map, with a
GLU (output="glu", the S4 default) or without (output="gelu").
State: h (B, H, N/2) complex64 (complex128 for float64 models).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from impls.mixers.base import Mixer
from impls.registry import register

INITS = ("lin", "inv")
OUTPUTS = ("glu", "gelu")


@register("mixer", "s4d", params={"d_state": 64, "init": "lin", "output": "glu"},
          doc="S4D diagonal SSM: FFT convolution for sequences, recurrence for steps")
class S4D(Mixer):
    def __init__(self, d_model: int, d_state: int = 64, init: str = "lin", output: str = "glu",
                 dt_min: float = 1e-3, dt_max: float = 1e-1):
        super().__init__()
        if init not in INITS or output not in OUTPUTS or d_state % 2:
            raise ValueError(f"need init in {INITS}, output in {OUTPUTS}, even d_state; "
                             f"got {init!r}, {output!r}, {d_state}")
        modes = d_state // 2
        n = torch.arange(modes, dtype=torch.float32)
        self.log_dt = nn.Parameter(torch.rand(d_model) * (math.log(dt_max) - math.log(dt_min))
                                   + math.log(dt_min))
        self.log_A_real = nn.Parameter(torch.full((d_model, modes), math.log(0.5)))
        imag = math.pi * n if init == "lin" else d_state / math.pi * (d_state / (2 * n + 1) - 1)
        self.A_imag = nn.Parameter(imag.repeat(d_model, 1))
        self.C = nn.Parameter(torch.randn(d_model, modes, 2) * 0.5 ** 0.5)  # complex as (re, im)
        self.D = nn.Parameter(torch.randn(d_model))
        self.output = output
        self.output_linear = nn.Linear(d_model, 2 * d_model if output == "glu" else d_model)

    def init_state(self, batch: int, max_len: int) -> torch.Tensor:
        p = self._param()
        cdtype = torch.complex128 if p.dtype == torch.float64 else torch.complex64
        return torch.zeros(batch, self.log_dt.shape[0], self.C.shape[1], device=p.device, dtype=cdtype)

    def prefill(self, x: torch.Tensor, h0: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x (B, T, H) -> (y (B, T, H), h_T): FFT convolution plus the carried state's share."""
        T = x.shape[1]
        u = x.transpose(1, 2).to(self._real(h0))                    # (B, H, T)
        dtA, dA, dB, C = self._discrete(h0.dtype)
        powers = torch.exp(dtA[..., None] * torch.arange(T, device=x.device))  # (H, N/2, T): dA^l
        K = 2 * torch.einsum("hn,hnl->hl", C * dB, powers).real         # (H, T)
        y = torch.fft.irfft(torch.fft.rfft(u, n=2 * T) * torch.fft.rfft(K, n=2 * T), n=2 * T)[..., :T]
        y = y + 2 * torch.einsum("hn,bhn,hnl->bhl", C * dA, h0, powers).real  # C dA^(t+1) h0
        h = dA ** T * h0 + dB * torch.einsum("hnl,bhl->bhn", powers.flip(-1), u.to(h0.dtype))
        return self._out(y + self.D.to(u.dtype)[:, None] * u, x.dtype), h

    def step(self, x_t: torch.Tensor, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x_t (B, H) -> (y_t (B, H), h): one step of the recurrence."""
        u = x_t.to(self._real(h))
        _, dA, dB, C = self._discrete(h.dtype)
        h = dA * h + dB * u[..., None].to(h.dtype)
        y = 2 * (C * h).sum(-1).real + self.D.to(u.dtype) * u
        return self._out(y[:, :, None], x_t.dtype)[:, 0], h

    def _discrete(self, cdtype: torch.dtype):
        """(dt*A, dA, dB, C), each (H, N/2) complex: ZOH discretisation."""
        real = self._real_of(cdtype)
        A = torch.complex(-torch.exp(self.log_A_real.to(real)), self.A_imag.to(real))
        dtA = torch.exp(self.log_dt.to(real))[:, None] * A
        dA = torch.exp(dtA)
        return dtA, dA, (dA - 1) / A, torch.view_as_complex(self.C.to(real).contiguous())

    def _out(self, y: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        """y (B, H, T) in the SSM's precision -> (B, T, H) in the model dtype."""
        y = self.output_linear(F.gelu(y).transpose(1, 2).to(dtype))
        return F.glu(y, dim=-1) if self.output == "glu" else y

    @staticmethod
    def _real_of(cdtype: torch.dtype) -> torch.dtype:
        return torch.float64 if cdtype == torch.complex128 else torch.float32

    def _real(self, h: torch.Tensor) -> torch.dtype:
        return self._real_of(h.dtype)
