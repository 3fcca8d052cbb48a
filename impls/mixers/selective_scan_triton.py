"""Selective scan as a Triton kernel: one program per (batch, block of channels).

The program keeps its (BLOCK_D, state) slice of h in registers and walks the
sequence once, reading u, delta, z, B_t, C_t and writing y_t at each step, so
h never touches memory (as Mamba's fused kernel does; this one is the simple
sequential-in-time version without the in-chunk parallel scan). Same arguments
and result as impls.mixers.selective_scan.selective_scan_ref, which is its
specification. On the CPU it runs under TRITON_INTERPRET=1 (tests only).
"""
from __future__ import annotations

import torch

try:
    import triton
    import triton.language as tl
except ImportError:  # the mixer's scan="triton" reports it unavailable instead
    triton = None

from impls.mixers.selective_scan import check_shapes, compute_dtype

if triton is not None:

    @triton.jit
    def _scan_kernel(u_ptr, delta_ptr, A_ptr, B_ptr, C_ptr, D_ptr, z_ptr, bias_ptr, h_ptr, y_ptr,
                     dim, length, n_state, dims_per_group, groups,
                     HAS_D: tl.constexpr, HAS_Z: tl.constexpr, HAS_BIAS: tl.constexpr,
                     SOFTPLUS: tl.constexpr, BLOCK_D: tl.constexpr, BLOCK_N: tl.constexpr):
        # u, delta, z, y: (batch, dim, L); B, C: (batch, groups, n, L); h: (batch, dim, n),
        # read as the initial state and overwritten with the final one. All contiguous.
        b = tl.program_id(0)
        ds = tl.program_id(1) * BLOCK_D + tl.arange(0, BLOCK_D)
        ns = tl.arange(0, BLOCK_N)
        d_ok = ds < dim
        dn_ok = d_ok[:, None] & (ns < n_state)[None, :]
        A = tl.load(A_ptr + ds[:, None] * n_state + ns[None, :], mask=dn_ok, other=0.0)
        h_offsets = (b * dim + ds[:, None]) * n_state + ns[None, :]
        h = tl.load(h_ptr + h_offsets, mask=dn_ok, other=0.0)  # (BLOCK_D, BLOCK_N)
        bc_rows = ((b * groups + ds // dims_per_group)[:, None] * n_state + ns[None, :]) * length
        seq = (b * dim + ds) * length  # start of each channel's sequence
        if HAS_D:
            Dv = tl.load(D_ptr + ds, mask=d_ok, other=0.0)
        if HAS_BIAS:
            bias = tl.load(bias_ptr + ds, mask=d_ok, other=0.0)
        for t in range(length):
            u = tl.load(u_ptr + seq + t, mask=d_ok, other=0.0)
            dt = tl.load(delta_ptr + seq + t, mask=d_ok, other=0.0)
            if HAS_BIAS:
                dt = dt + bias
            if SOFTPLUS:  # log(1 + e^x), exact enough past 20 to return x
                dt = tl.where(dt > 20.0, dt, tl.log(1.0 + tl.exp(dt)))
            B = tl.load(B_ptr + bc_rows + t, mask=dn_ok, other=0.0)
            C = tl.load(C_ptr + bc_rows + t, mask=dn_ok, other=0.0)
            h = tl.exp(dt[:, None] * A) * h + (dt * u)[:, None] * B
            y = tl.sum(h * C, axis=1)
            if HAS_D:
                y = y + Dv * u
            if HAS_Z:
                z = tl.load(z_ptr + seq + t, mask=d_ok, other=0.0)
                y = y * z * tl.sigmoid(z)
            tl.store(y_ptr + seq + t, y, mask=d_ok)
        tl.store(h_ptr + h_offsets, h, mask=dn_ok)


def selective_scan_triton(u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False,
                          initial_state=None, return_last_state=False, block_d: int = 16):
    """Triton selective scan; shapes as selective_scan_ref. Computes in float32
    (float64 inputs in float64) and returns y in u's dtype."""
    if triton is None:
        raise RuntimeError("selective_scan_triton needs triton (pip install triton)")
    check_shapes(u, delta, A, B, C, D, z, delta_bias, initial_state)  # the kernel does no bounds checks
    batch, dim, length = u.shape
    n_state = A.shape[1]
    dtype = compute_dtype(u.dtype)

    def ready(x):
        return None if x is None else x.to(dtype).contiguous()

    B4 = B[:, None] if B.dim() == 3 else B  # (batch, groups, n, L)
    groups = B4.shape[1]
    C4 = C[:, None] if C.dim() == 3 else C
    if C4.shape[1] != groups:
        raise ValueError(f"B and C need the same groups, got {B4.shape[1]} and {C4.shape[1]}")
    u_, delta_, A_, B_, C_, D_, z_, bias_ = map(ready, (u, delta, A, B4, C4, D, z, delta_bias))
    h = (torch.zeros(batch, dim, n_state, device=u.device, dtype=dtype) if initial_state is None
         else initial_state.to(dtype).contiguous().clone())
    y = torch.empty(batch, dim, length, device=u.device, dtype=dtype)
    grid = (batch, triton.cdiv(dim, block_d))
    _scan_kernel[grid](
        u_, delta_, A_, B_, C_, D_ if D_ is not None else u_, z_ if z_ is not None else u_,
        bias_ if bias_ is not None else u_, h, y,
        dim, length, n_state, dim // groups, groups,
        HAS_D=D is not None, HAS_Z=z is not None, HAS_BIAS=delta_bias is not None,
        SOFTPLUS=bool(delta_softplus), BLOCK_D=block_d, BLOCK_N=triton.next_power_of_2(n_state))
    y = y.to(u.dtype)
    return (y, h) if return_last_state else y
