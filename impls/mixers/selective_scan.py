"""The selective scan of Mamba (Gu & Dao 2023, Algorithm 2), reference and chunked.

For each batch b, channel d and state n, with dt = softplus(delta + delta_bias)
when asked:
    h_t = exp(dt_t * A[d, n]) * h_{t-1} + dt_t * B_t[n] * u_t
    y_t = sum_n C_t[n] * h_t[n] + D[d] * u_t,  then y_t *= silu(z_t) if z is given
Shapes: u, delta, z: (batch, dim, L); A: (dim, state); B, C: (batch, state, L)
or (batch, groups, state, L) with groups dividing dim (channel d uses group
d // (dim / groups)); D, delta_bias: (dim,); h: (batch, dim, state).
Maths in float32 (float64 stays float64); the output has u's dtype.

`selective_scan_ref` is the specification: one loop over time. `selective_scan`
is the parallel PyTorch version: inside a chunk of c steps every h_t is a sum
of inputs weighted by exp(S_t - S_s), S the cumulative log-decay, computed as
one batched contraction; chunks run one after another, carrying h. Differences
S_t - S_s (s <= t) are never positive, so nothing overflows.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def compute_dtype(dtype: torch.dtype) -> torch.dtype:
    return torch.float64 if dtype == torch.float64 else torch.float32


def prepare_inputs(u, delta, A, B, C, D, z, delta_bias, delta_softplus):
    """Upcast, apply delta_bias/softplus, and lay B and C out as (batch, dim or 1, state, L)."""
    dtype = compute_dtype(u.dtype)
    u, delta, A = u.to(dtype), delta.to(dtype), A.to(dtype)
    if delta_bias is not None:
        delta = delta + delta_bias.to(dtype)[:, None]
    if delta_softplus:
        delta = F.softplus(delta)
    dim = u.shape[1]

    def per_channel(M: torch.Tensor) -> torch.Tensor:
        if M.dim() == 3:
            return M.to(dtype)[:, None]  # shared by every channel
        return M.to(dtype).repeat_interleave(dim // M.shape[1], dim=1)

    D = None if D is None else D.to(dtype)
    z = None if z is None else z.to(dtype)
    return u, delta, A, per_channel(B), per_channel(C), D, z


def scan_step(h, u_t, delta_t, A, B_t, C_t, D=None, z_t=None):
    """One step of the recurrence. h (b, d, n); u_t, delta_t, z_t (b, d); A (d, n);
    B_t, C_t (b, d or 1, n) -> (y_t (b, d), h_t). Everything already upcast."""
    h = torch.exp(delta_t[..., None] * A) * h + (delta_t * u_t)[..., None] * B_t
    y = (h * C_t).sum(-1)
    if D is not None:
        y = y + D * u_t
    if z_t is not None:
        y = y * F.silu(z_t)
    return y, h


def selective_scan_ref(u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False,
                       initial_state=None, return_last_state=False):
    """The recurrence, one step at a time. Returns y (batch, dim, L) [, h_L (batch, dim, state)]."""
    out_dtype = u.dtype
    u, delta, A, B, C, D, z = prepare_inputs(u, delta, A, B, C, D, z, delta_bias, delta_softplus)
    h = _initial(initial_state, u, A)
    ys = []
    for t in range(u.shape[-1]):
        y, h = scan_step(h, u[..., t], delta[..., t], A, B[..., t], C[..., t], D,
                         None if z is None else z[..., t])
        ys.append(y)
    y = torch.stack(ys, dim=-1).to(out_dtype)
    return (y, h) if return_last_state else y


def selective_scan(u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False,
                   initial_state=None, return_last_state=False, chunk_size: int = 32):
    """Chunked parallel scan, same arguments and result as selective_scan_ref.

    Memory per chunk: (batch, dim, c, c, state) for the decay weights.
    """
    out_dtype = u.dtype
    u, delta, A, B, C, D, z = prepare_inputs(u, delta, A, B, C, D, z, delta_bias, delta_softplus)
    h = _initial(initial_state, u, A)
    ys = []
    for lo in range(0, u.shape[-1], chunk_size):
        hi = min(lo + chunk_size, u.shape[-1])
        y, h = _chunk(h, u[..., lo:hi], delta[..., lo:hi], A, B[..., lo:hi], C[..., lo:hi])
        ys.append(y)
    y = torch.cat(ys, dim=-1)
    if D is not None:
        y = y + D[:, None] * u
    if z is not None:
        y = y * F.silu(z)
    y = y.to(out_dtype)
    return (y, h) if return_last_state else y


def _chunk(h0, u, delta, A, B, C):
    """One chunk of c steps. h0 (b, d, n); u, delta (b, d, c); B, C (b, d|1, n, c)
    -> (y (b, d, c) without the D and z terms, h at the chunk's end)."""
    c = u.shape[-1]
    S = torch.cumsum(delta[..., None] * A[:, None, :], dim=2)  # (b, d, c, n), log-decay to t
    inputs = (delta * u)[..., None] * B.transpose(-1, -2)       # (b, d, c, n), dt_s B_s u_s
    causal = torch.ones(c, c, dtype=torch.bool, device=u.device).tril()[:, :, None]  # (t, s, 1)
    log_weights = (S[:, :, :, None, :] - S[:, :, None, :, :]).masked_fill(~causal, float("-inf"))
    h = torch.einsum("bdtsn,bdsn->bdtn", log_weights.exp(), inputs)  # from this chunk's inputs
    h = h + S.exp() * h0[:, :, None, :]                               # from the carried state
    y = (h * C.transpose(-1, -2)).sum(-1)                             # (b, d, c)
    return y, h[:, :, -1]


def _initial(initial_state, u, A) -> torch.Tensor:
    if initial_state is not None:
        return initial_state.to(u.dtype)
    return u.new_zeros(u.shape[0], u.shape[1], A.shape[1])
