"""Selective scan as Triton kernels, forward and backward: one program per (batch, block of channels).

Forward: the program keeps its (BLOCK_D, state) slice of h in registers and walks
the sequence once, reading u, delta, z, B_t, C_t and writing y_t at each step, so
h never touches memory (as Mamba's fused kernel does; this one is the simple
sequential-in-time version without the in-chunk parallel scan).

Backward: a reverse-time walk carrying dL/dh. With a_t = exp(dt_t A), g_t the
gradient reaching the pre-gate output (dy_t * silu(z_t)) and dh_t the gradient of
h_t (from y_t and every later step):
    dh_t  = g_t C_t + a_{t+1} dh_{t+1}           dC_t = sum_d g_t h_t
    ddt_t = sum_n dh_t (A a_t h_{t-1} + u_t B_t)  dB_t = sum_d dh_t dt_t u_t
    dA   += dh_t a_t h_{t-1} dt_t                 du_t = dt_t sum_n dh_t B_t + D g_t
    dz_t  = dy_t (sum_n C_t h_t + D u_t) silu'(z_t), ddelta_t = ddt_t sigmoid(x_t) under softplus,
and the initial state's gradient is a_1 dh_1. It needs h_{t-1} in reverse order.

Memory trade-off (recompute per chunk): storing every h_t would cost
batch * dim * state * L floats, `state` times the input. Instead the forward, when
a gradient will be asked for, stores h only at the start of each chunk of K steps
(batch, dim, ceil(L / K), state), and the backward recomputes one chunk's states
forwards into a scratch buffer (batch, dim, K, state) before walking it backwards.
Together (L / K + K) * batch * dim * state floats; K defaults to ~sqrt(L), the
minimum (at L = 4096, state 16: 128 state copies, 1/2 the input's size in fp32;
every state would be 4096, 16 times it). Each step is computed twice forwards and
once backwards.

dB and dC sum over the channels that share a group: each program sums its block
and adds it with atomics, so its block must lie inside one group (the backward
picks BLOCK_D dividing dim / groups); the order of those adds across programs, and
so the last bits of dB and dC on a GPU, is not fixed. dA, dD and d(delta_bias) are
written per batch row and summed by PyTorch.

Same arguments and result as impls.mixers.selective_scan.selective_scan_ref,
which is the specification (forward and, through autograd, backward). On the CPU
it runs under TRITON_INTERPRET=1 (tests only).
"""
from __future__ import annotations

import math

import torch

try:
    import triton
    import triton.language as tl
except ImportError:  # the mixer's scan="triton" reports it unavailable instead
    triton = None

from impls.mixers.selective_scan import check_shapes, compute_dtype

# The accuracy this kernel keeps against selective_scan_ref in float64 (autograd through it
# for the gradients), as max |ours - reference| / max(|reference|, 1) over y, the final h and
# every input's gradient: float32 arithmetic, then the output's rounding. The tests and
# `harness doctor` hold it to this.
ACCURACY = {"fp64": 1e-12, "fp32": 1e-5, "fp16": 2e-3, "bf16": 1.6e-2}

if triton is not None:

    @triton.jit
    def _dt(delta_ptr, offsets, d_ok, bias, SOFTPLUS: tl.constexpr):
        """(x, dt) at one step: x = delta + bias, dt = softplus(x) or x."""
        x = tl.load(delta_ptr + offsets, mask=d_ok, other=0.0) + bias
        dt = x
        if SOFTPLUS:  # log(1 + e^x), exact enough past 20 to return x
            dt = tl.where(x > 20.0, x, tl.log(1.0 + tl.exp(x)))
        return x, dt

    @triton.jit
    def _scan_kernel(u_ptr, delta_ptr, A_ptr, B_ptr, C_ptr, D_ptr, z_ptr, bias_ptr, h_ptr, y_ptr, saved_ptr,
                     dim, length, n_state, dims_per_group, groups, chunk,
                     HAS_D: tl.constexpr, HAS_Z: tl.constexpr, HAS_BIAS: tl.constexpr,
                     SOFTPLUS: tl.constexpr, SAVE: tl.constexpr, BLOCK_D: tl.constexpr, BLOCK_N: tl.constexpr):
        # u, delta, z, y: (batch, dim, L); B, C: (batch, groups, n, L); h: (batch, dim, n),
        # read as the initial state and overwritten with the final one; saved (SAVE):
        # (batch, dim, ceil(L / chunk), n), h before each chunk. All contiguous.
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
        n_chunks = tl.cdiv(length, chunk)
        if HAS_D:
            Dv = tl.load(D_ptr + ds, mask=d_ok, other=0.0)
        bias = tl.zeros((BLOCK_D,), dtype=h.dtype)
        if HAS_BIAS:
            bias = tl.load(bias_ptr + ds, mask=d_ok, other=0.0)
        for start in range(0, length, chunk):
            if SAVE:
                tl.store(saved_ptr + ((b * dim + ds[:, None]) * n_chunks + start // chunk) * n_state + ns[None, :],
                         h, mask=dn_ok)
            for t in range(start, tl.minimum(start + chunk, length)):
                u = tl.load(u_ptr + seq + t, mask=d_ok, other=0.0)
                _, dt = _dt(delta_ptr, seq + t, d_ok, bias, SOFTPLUS)
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

    @triton.jit
    def _scan_backward_kernel(u_ptr, delta_ptr, A_ptr, B_ptr, C_ptr, D_ptr, z_ptr, bias_ptr, saved_ptr,
                              scratch_ptr, dy_ptr, dh_ptr, du_ptr, ddelta_ptr, dz_ptr, dB_ptr, dC_ptr,
                              dA_ptr, dD_ptr, dbias_ptr, dim, length, n_state, dims_per_group, groups, chunk,
                              HAS_D: tl.constexpr, HAS_Z: tl.constexpr, HAS_BIAS: tl.constexpr,
                              SOFTPLUS: tl.constexpr, BLOCK_D: tl.constexpr, BLOCK_N: tl.constexpr):
        # Inputs as the forward's, saved from it; scratch: (batch, dim, chunk, n). dy, du,
        # ddelta, dz: (batch, dim, L); dB, dC: (batch, groups, n, L), zeroed, added to; dA:
        # (batch, dim, n), dD, dbias: (batch, dim), this batch row's share; dh: (batch, dim, n),
        # read as the final state's gradient and overwritten with the initial state's.
        # The block lies in one group (dims_per_group % BLOCK_D == 0, or a single group).
        b = tl.program_id(0)
        ds = tl.program_id(1) * BLOCK_D + tl.arange(0, BLOCK_D)
        ns = tl.arange(0, BLOCK_N)
        d_ok = ds < dim
        n_ok = ns < n_state
        dn_ok = d_ok[:, None] & n_ok[None, :]
        A = tl.load(A_ptr + ds[:, None] * n_state + ns[None, :], mask=dn_ok, other=0.0)
        h_offsets = (b * dim + ds[:, None]) * n_state + ns[None, :]
        dh = tl.load(dh_ptr + h_offsets, mask=dn_ok, other=0.0)
        bc_row = ((b * groups + tl.program_id(1) * BLOCK_D // dims_per_group) * n_state + ns) * length
        seq = (b * dim + ds) * length
        n_chunks = tl.cdiv(length, chunk)
        Dv = tl.zeros((BLOCK_D,), dtype=dh.dtype)
        if HAS_D:
            Dv = tl.load(D_ptr + ds, mask=d_ok, other=0.0)
        bias = tl.zeros((BLOCK_D,), dtype=dh.dtype)
        if HAS_BIAS:
            bias = tl.load(bias_ptr + ds, mask=d_ok, other=0.0)
        dA = tl.zeros((BLOCK_D, BLOCK_N), dtype=dh.dtype)
        dD = tl.zeros((BLOCK_D,), dtype=dh.dtype)
        dbias = tl.zeros((BLOCK_D,), dtype=dh.dtype)
        scratch = scratch_ptr + (b * dim + ds[:, None]) * chunk * n_state + ns[None, :]
        for back in range(n_chunks):
            start = (n_chunks - 1 - back) * chunk
            steps = tl.minimum(chunk, length - start)
            # the chunk's states again, from the one the forward saved: h_{t-1} for each t
            h = tl.load(saved_ptr + ((b * dim + ds[:, None]) * n_chunks + start // chunk) * n_state + ns[None, :],
                        mask=dn_ok, other=0.0)
            for k in range(steps):
                tl.store(scratch + k * n_state, h, mask=dn_ok)
                u = tl.load(u_ptr + seq + start + k, mask=d_ok, other=0.0)
                _, dt = _dt(delta_ptr, seq + start + k, d_ok, bias, SOFTPLUS)
                B = tl.load(B_ptr + bc_row + start + k, mask=n_ok, other=0.0)
                h = tl.exp(dt[:, None] * A) * h + (dt * u)[:, None] * B[None, :]
            tl.debug_barrier()  # the stores above are read back below, possibly by other threads
            for rev in range(steps):
                k = steps - 1 - rev
                t = start + k
                h_prev = tl.load(scratch + k * n_state, mask=dn_ok, other=0.0)
                u = tl.load(u_ptr + seq + t, mask=d_ok, other=0.0)
                x, dt = _dt(delta_ptr, seq + t, d_ok, bias, SOFTPLUS)
                B = tl.load(B_ptr + bc_row + t, mask=n_ok, other=0.0)
                C = tl.load(C_ptr + bc_row + t, mask=n_ok, other=0.0)
                decay = tl.exp(dt[:, None] * A)
                h = decay * h_prev + (dt * u)[:, None] * B[None, :]
                g = tl.load(dy_ptr + seq + t, mask=d_ok, other=0.0)  # dL/dy_t, then at the pre-gate output
                if HAS_Z:
                    z = tl.load(z_ptr + seq + t, mask=d_ok, other=0.0)
                    gate = tl.sigmoid(z)
                    pre_gate = tl.sum(h * C[None, :], axis=1) + Dv * u
                    tl.store(dz_ptr + seq + t, g * pre_gate * gate * (1.0 + z * (1.0 - gate)), mask=d_ok)
                    g = g * z * gate
                dD += g * u
                tl.atomic_add(dC_ptr + bc_row + t, tl.sum(g[:, None] * h, axis=0), mask=n_ok)
                dh += g[:, None] * C[None, :]
                ddt = tl.sum(dh * (A * decay * h_prev + u[:, None] * B[None, :]), axis=1)
                dA += dh * decay * h_prev * dt[:, None]
                tl.atomic_add(dB_ptr + bc_row + t, tl.sum(dh * (dt * u)[:, None], axis=0), mask=n_ok)
                tl.store(du_ptr + seq + t, dt * tl.sum(dh * B[None, :], axis=1) + Dv * g, mask=d_ok)
                if SOFTPLUS:
                    ddt = ddt * tl.sigmoid(x)
                tl.store(ddelta_ptr + seq + t, ddt, mask=d_ok)
                dbias += ddt
                dh = dh * decay
            tl.debug_barrier()  # the next chunk overwrites the scratch
        tl.store(dh_ptr + h_offsets, dh, mask=dn_ok)
        tl.store(dA_ptr + h_offsets, dA, mask=dn_ok)
        if HAS_D:
            tl.store(dD_ptr + b * dim + ds, dD, mask=d_ok)
        if HAS_BIAS:
            tl.store(dbias_ptr + b * dim + ds, dbias, mask=d_ok)


def selective_scan_triton(u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False,
                          initial_state=None, return_last_state=False, block_d: int = 16,
                          checkpoint_every: int | None = None):
    """Triton selective scan; shapes as selective_scan_ref. Computes in float32
    (float64 inputs in float64) and returns y in u's dtype, h in the compute dtype.

    Differentiable in every tensor argument. `block_d`: channels per program (a power of
    two). `checkpoint_every`: K, the steps between the states the forward keeps for the
    backward (default ~sqrt(L); see the module docstring)."""
    if triton is None:
        raise RuntimeError("selective_scan_triton needs triton (pip install triton)")
    check_shapes(u, delta, A, B, C, D, z, delta_bias, initial_state)  # the kernels do no bounds checks
    groups_b, groups_c = (1 if M.dim() == 3 else M.shape[1] for M in (B, C))
    if groups_b != groups_c:  # the reference takes them apart; the kernels share one layout
        raise ValueError(f"selective_scan: B and C need the same groups, got {groups_b} and {groups_c}")
    if block_d < 1 or block_d & (block_d - 1):
        raise ValueError(f"selective_scan: block_d must be a power of two, got {block_d}")
    if checkpoint_every is not None and checkpoint_every < 1:
        raise ValueError(f"selective_scan: checkpoint_every must be >= 1, got {checkpoint_every}")
    tensors = (u, delta, A, B, C, D, z, delta_bias, initial_state)
    if torch.is_grad_enabled() and any(x is not None and x.requires_grad for x in tensors):
        length = u.shape[-1]
        chunk = max(1, min(checkpoint_every or math.isqrt(length), length))
        y, h = _SelectiveScan.apply(*tensors, bool(delta_softplus), block_d, chunk)
    else:
        y, h, _ = _forward(*tensors, bool(delta_softplus), block_d, chunk=None)
    return (y, h) if return_last_state else y


class _SelectiveScan(torch.autograd.Function):
    @staticmethod
    def forward(ctx, u, delta, A, B, C, D, z, delta_bias, initial_state, softplus, block_d, chunk):
        y, h, saved = _forward(u, delta, A, B, C, D, z, delta_bias, initial_state, softplus, block_d, chunk)
        ctx.save_for_backward(u, delta, A, B, C, D, z, delta_bias, initial_state, saved)
        ctx.options = (softplus, block_d, chunk)
        ctx.set_materialize_grads(False)
        return y, h

    @staticmethod
    def backward(ctx, dy, dh):
        *inputs, saved = ctx.saved_tensors
        grads = _backward(dy, dh, *inputs, saved, *ctx.options)
        return (*grads, None, None, None)


def _kernel_inputs(u, delta, A, B, C, D, z, delta_bias) -> list[torch.Tensor | None]:
    """Contiguous copies in the compute dtype, B and C as (batch, groups, n, L)."""
    dtype = compute_dtype(u.dtype)
    B, C = (M[:, None] if M.dim() == 3 else M for M in (B, C))
    return [None if x is None else x.to(dtype).contiguous() for x in (u, delta, A, B, C, D, z, delta_bias)]


def _forward(u, delta, A, B, C, D, z, delta_bias, initial_state, softplus: bool, block_d: int,
             chunk: int | None):
    """(y in u's dtype, final h, the states before each chunk of `chunk` steps or None when
    chunk is None)."""
    u_, delta_, A_, B_, C_, D_, z_, bias_ = _kernel_inputs(u, delta, A, B, C, D, z, delta_bias)
    batch, dim, length = u.shape
    n_state, groups = A.shape[1], B_.shape[1]
    h = (u_.new_zeros(batch, dim, n_state) if initial_state is None
         else initial_state.to(u_.dtype).contiguous().clone())
    y = torch.empty_like(u_)
    save = chunk is not None
    chunk = chunk or max(length, 1)
    saved = u_.new_empty(batch, dim, triton.cdiv(length, chunk), n_state) if save else None
    _scan_kernel[(batch, triton.cdiv(dim, block_d))](
        u_, delta_, A_, B_, C_, _or(D_, u_), _or(z_, u_), _or(bias_, u_), h, y, _or(saved, u_),
        dim, length, n_state, dim // groups, groups, chunk,
        HAS_D=D is not None, HAS_Z=z is not None, HAS_BIAS=delta_bias is not None,
        SOFTPLUS=softplus, SAVE=save, BLOCK_D=block_d, BLOCK_N=triton.next_power_of_2(n_state))
    return y.to(u.dtype), h, saved


def _backward(dy, dh, u, delta, A, B, C, D, z, delta_bias, initial_state, saved, softplus: bool, block_d: int,
              chunk: int):
    """Gradients of (u, delta, A, B, C, D, z, delta_bias, initial_state), each in its
    input's dtype and shape (None for an input that is None); dy or dh may be None (zero)."""
    u_, delta_, A_, B_, C_, D_, z_, bias_ = _kernel_inputs(u, delta, A, B, C, D, z, delta_bias)
    batch, dim, length = u.shape
    n_state, groups = A.shape[1], B_.shape[1]
    dy_ = torch.zeros_like(u_) if dy is None else dy.to(u_.dtype).contiguous()
    dh_ = u_.new_zeros(batch, dim, n_state) if dh is None else dh.to(u_.dtype).contiguous().clone()
    du, ddelta, dz = torch.empty_like(u_), torch.empty_like(u_), torch.empty_like(u_) if z is not None else None
    dB, dC = torch.zeros_like(B_), torch.zeros_like(C_)
    dA = u_.new_empty(batch, dim, n_state)
    dD, dbias = u_.new_empty(batch, dim), u_.new_empty(batch, dim)
    block = _block_in_one_group(block_d, dim // groups, groups)
    scratch = u_.new_empty(batch, dim, chunk, n_state)
    _scan_backward_kernel[(batch, triton.cdiv(dim, block))](
        u_, delta_, A_, B_, C_, _or(D_, u_), _or(z_, u_), _or(bias_, u_), saved, scratch, dy_, dh_,
        du, ddelta, _or(dz, u_), dB, dC, dA, dD, dbias, dim, length, n_state, dim // groups, groups, chunk,
        HAS_D=D is not None, HAS_Z=z is not None, HAS_BIAS=delta_bias is not None,
        SOFTPLUS=softplus, BLOCK_D=block, BLOCK_N=triton.next_power_of_2(n_state))
    grads = (du, ddelta, dA.sum(0), dB.view(B.shape), dC.view(C.shape), dD.sum(0), dz, dbias.sum(0), dh_)
    inputs = (u, delta, A, B, C, D, z, delta_bias, initial_state)
    return tuple(None if x is None else grad.to(x.dtype) for grad, x in zip(grads, inputs))


def _block_in_one_group(block_d: int, dims_per_group: int, groups: int) -> int:
    """The largest power of two <= block_d that divides dims_per_group: a block of channels
    then never straddles two groups of B and C (any block_d does when there is one group)."""
    if groups == 1:
        return block_d
    return min(block_d, dims_per_group & -dims_per_group)


def _or(x: torch.Tensor | None, stand_in: torch.Tensor) -> torch.Tensor:
    """A pointer argument the kernel does not read (its HAS_ flag is off) still needs a tensor."""
    return x if x is not None else stand_in
