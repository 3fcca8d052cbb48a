"""Mamba block (Gu & Dao 2023): a selective state space model with input-dependent dt, B, C.

    x, z  = in_proj(u)                         (B, T, d_inner) each, d_inner = expand * d_model
    x     = silu(causal depthwise conv1d(x))   kernel d_conv; its last d_conv-1 inputs are state
    dt, B, C = x_proj(x)                       (dt_rank, d_state, d_state)
    dt    = softplus(dt_proj(dt))              per channel
    y     = selective_scan(x, dt, A = -exp(A_log), B, C, D) * silu(z)
    out   = out_proj(y)

State: MambaState(conv (B, d_inner, d_conv - 1) in the model dtype, ssm
(B, d_inner, d_state) in float32), constant in size however long the sequence.
The scan is chosen by `scan`: "chunked" (parallel PyTorch), "sequential" (the
reference loop) or "triton" (selective_scan_triton).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from impls.mixers.base import Mixer
from impls.mixers.selective_scan import (compute_dtype, scan_step, selective_scan,  # noqa: F401
                                         selective_scan_ref)
from impls import requirements
from impls.registry import register



def selective_scan_triton(*args, **kwargs):
    """The Triton scan, its module (and triton) imported on the first call: not at every run's start."""
    from impls.mixers._selective_scan_triton import selective_scan_triton as scan

    return scan(*args, **kwargs)


SCANS = {"chunked": selective_scan, "sequential": selective_scan_ref, "triton": selective_scan_triton}


@dataclass
class MambaState:
    conv: torch.Tensor  # (B, d_inner, d_conv - 1): the last inputs of the causal conv
    ssm: torch.Tensor   # (B, d_inner, d_state): h


@register("mixer", "mamba",
          params={"d_state": 16, "d_conv": 4, "expand": 2, "dt_rank": None, "scan": "chunked",
                  "chunk_size": 32},
          doc="Mamba selective SSM block (conv + input-dependent scan + gate)")
class Mamba(Mixer):
    def __init__(self, d_model: int, d_state: int = 16, d_conv: int = 4, expand: int = 2,
                 dt_rank: int | None = None, scan: str = "chunked", chunk_size: int = 32,
                 dt_min: float = 1e-3, dt_max: float = 1e-1):
        super().__init__()
        if scan not in SCANS:
            raise ValueError(f"scan must be one of {sorted(SCANS)}, got {scan!r}")
        if d_conv < 2:
            raise ValueError(f"d_conv must be >= 2, got {d_conv}")
        d_inner = expand * d_model
        self.d_inner, self.d_state, self.d_conv = d_inner, d_state, d_conv
        self.dt_rank = dt_rank or math.ceil(d_model / 16)
        self.scan, self.chunk_size = scan, chunk_size
        self.in_proj = nn.Linear(d_model, 2 * d_inner, bias=False)
        self.conv = nn.Conv1d(d_inner, d_inner, d_conv, groups=d_inner)  # depthwise, unpadded
        self.x_proj = nn.Linear(d_inner, self.dt_rank + 2 * d_state, bias=False)
        # the bias of dt's projection is kept apart: it goes in with the softplus, inside the
        # scan, and a weight-only quantised dt_proj (impls/decoding/int8_weights) has no .weight
        self.dt_proj = nn.Linear(self.dt_rank, d_inner, bias=False)
        # dt starts log-uniform in [dt_min, dt_max]: the bias is softplus^-1 of it
        dt = torch.exp(torch.rand(d_inner) * (math.log(dt_max) - math.log(dt_min)) + math.log(dt_min))
        self.dt_bias = nn.Parameter(dt + torch.log(-torch.expm1(-dt)))
        # S4D-Real init: A[d, n] = -(n + 1)
        self.A_log = nn.Parameter(torch.log(torch.arange(1, d_state + 1.0)).repeat(d_inner, 1))
        self.D = nn.Parameter(torch.ones(d_inner))
        self.out_proj = nn.Linear(d_inner, d_model, bias=False)

    def init_state(self, batch: int, max_len: int) -> MambaState:
        p = self._param()
        return MambaState(
            conv=torch.zeros(batch, self.d_inner, self.d_conv - 1, device=p.device, dtype=p.dtype),
            ssm=torch.zeros(batch, self.d_inner, self.d_state, device=p.device,
                            dtype=compute_dtype(p.dtype)))

    def prefill(self, u: torch.Tensor, state: MambaState) -> tuple[torch.Tensor, MambaState]:
        """u (B, T, d_model) -> (y (B, T, d_model), state after T more tokens)."""
        x, z = self.in_proj(u).transpose(1, 2).chunk(2, dim=1)  # (B, d_inner, T) each
        conv_in = torch.cat((state.conv, x), dim=-1)              # (B, d_inner, d_conv - 1 + T)
        x = F.silu(self.conv(conv_in))                             # (B, d_inner, T)
        dt, B, C = self._dt_B_C(x.transpose(1, 2))
        kwargs = {"chunk_size": self.chunk_size} if self.scan == "chunked" else {}
        y, h = SCANS[self.scan](
            x, dt, self._A(), B, C, D=self.D.float(), z=z, delta_bias=self.dt_bias.float(),
            delta_softplus=True, initial_state=state.ssm, return_last_state=True, **kwargs)
        new_state = MambaState(conv=conv_in[..., conv_in.shape[-1] - (self.d_conv - 1):], ssm=h)
        return self.out_proj(y.transpose(1, 2)), new_state

    def step(self, u_t: torch.Tensor, state: MambaState) -> tuple[torch.Tensor, MambaState]:
        """u_t (B, d_model) -> (y_t (B, d_model), state): the recurrence, no scan."""
        x, z = self.in_proj(u_t).chunk(2, dim=-1)                   # (B, d_inner) each
        window = torch.cat((state.conv, x[..., None]), dim=-1)      # (B, d_inner, d_conv)
        x = F.silu((window * self.conv.weight[:, 0]).sum(-1) + self.conv.bias)
        dt, B, C = self._dt_B_C(x[:, None])                         # dt (B, d_inner, 1)
        dtype = state.ssm.dtype
        dt = F.softplus(dt[..., 0].to(dtype) + self.dt_bias.to(dtype))
        y, h = scan_step(state.ssm, x.to(dtype), dt, self._A().to(dtype), B[..., 0].to(dtype)[:, None],
                         C[..., 0].to(dtype)[:, None], self.D.to(dtype), z.to(dtype))
        return self.out_proj(y.to(u_t.dtype)), MambaState(conv=window[..., 1:], ssm=h)

    def _dt_B_C(self, x: torch.Tensor):
        """x (B, T, d_inner) -> dt (B, d_inner, T) before bias/softplus, B and C (B, d_state, T)."""
        dt, B, C = self.x_proj(x).split((self.dt_rank, self.d_state, self.d_state), dim=-1)
        dt = self.dt_proj(dt)
        return dt.transpose(1, 2), B.transpose(1, 2), C.transpose(1, 2)

    def _A(self) -> torch.Tensor:
        return -torch.exp(self.A_log.float())  # (d_inner, d_state), negative: a decay


@register("mixer", "mamba_triton", requires=(requirements.triton,),
          params={"d_state": 16, "d_conv": 4, "expand": 2, "dt_rank": None},
          doc="Mamba block with the Triton selective-scan kernel")
class MambaTriton(Mamba):
    """Mamba with scan="triton", registered apart so that availability says when triton cannot run."""

    def __init__(self, d_model: int, **params):
        super().__init__(d_model, scan="triton", **params)
