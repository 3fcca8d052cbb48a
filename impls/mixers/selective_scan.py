"""The selective scan of Mamba (Gu & Dao 2023, Algorithm 2), reference and chunked.

For each batch b, channel d and state n, with dt = softplus(delta + delta_bias)
when asked:
    h_t = exp(dt_t * A[d, n]) * h_{t-1} + dt_t * B_t[n] * u_t
    y_t = sum_n C_t[n] * h_t[n] + D[d] * u_t,  then y_t *= silu(z_t) if z is given
Shapes: u, delta, z: (batch, dim, L); A: (dim, state); B, C: (batch, state, L)
or (batch, groups, state, L) with groups dividing dim (channel d uses group
d // (dim / groups)); D, delta_bias: (dim,); h: (batch, dim, state).
`check_shapes` enforces them for every scan (the Triton kernel would read out
of bounds otherwise). Maths in float32 (float64 stays float64); the output has
u's dtype.

`selective_scan_ref` is the specification: one loop over time. `selective_scan`
is the parallel PyTorch version: the sequence is cut into chunks of c steps and
inside a chunk the recurrence is solved in closed form with cumulative sums,
    S_t = A * sum_{s<=t} dt_s  (<= 0 for dt >= 0),   h_t = e^{S_t} (h_0 + sum_{s<=t} e^{-S_s} dt_s B_s u_s),
a handful of passes over (batch, c, dim, state), time-major, with one exp per
element, like the loop's; chunks run one after another, carrying h. e^{-S_s}
grows along a chunk, so c is halved until |S| <= LOG_RANGE inside every chunk
(bounded from dt and max |A| before any work): e^{+-LOG_RANGE} stays far inside
the dtype's range and the products keep the loop's relative precision.
Faster than the loop where its per-step Python overhead dominates (small
batch * dim * state, and backward); at large ones both are bound by the same
one exp and few multiplies per element, and the loop, whose step stays in
cache, can be ahead.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

# largest |S| inside a chunk: e^40 ~ 2e17 (float32 reaches 3e38), e^500 ~ 1e217 (float64 1e308)
LOG_RANGE = {torch.float32: 40.0, torch.float64: 500.0}


def compute_dtype(dtype: torch.dtype) -> torch.dtype:
    return torch.float64 if dtype == torch.float64 else torch.float32


def check_shapes(u, delta, A, B, C, D=None, z=None, delta_bias=None, initial_state=None) -> None:
    """ValueError naming the first argument whose shape is not the one in the module docstring."""
    if u.dim() != 3:
        raise ValueError(f"selective_scan: u must be (batch, dim, L), got shape {tuple(u.shape)}")
    batch, dim, length = u.shape
    if A.dim() != 2 or A.shape[0] != dim:
        raise ValueError(f"selective_scan: A must be (dim, state) with dim={dim}, got shape {tuple(A.shape)}")
    state = A.shape[1]
    expected = {"delta": (delta, (batch, dim, length)), "z": (z, (batch, dim, length)), "D": (D, (dim,)),
                "delta_bias": (delta_bias, (dim,)), "initial_state": (initial_state, (batch, dim, state))}
    for name, (x, shape) in expected.items():
        if x is not None and tuple(x.shape) != shape:
            raise ValueError(f"selective_scan: {name} must have shape {shape}, got {tuple(x.shape)}")
    for name, M in (("B", B), ("C", C)):
        grouped = M.dim() == 4 and M.shape[1] >= 1 and dim % M.shape[1] == 0
        if tuple(M.shape[-2:]) != (state, length) or M.shape[0] != batch or not (M.dim() == 3 or grouped):
            raise ValueError(f"selective_scan: {name} must be (batch, state, L) = {(batch, state, length)} or "
                             f"(batch, groups, state, L) with groups dividing dim={dim}, got {tuple(M.shape)}")


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
    check_shapes(u, delta, A, B, C, D, z, delta_bias, initial_state)
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

    Memory per chunk: a few (batch, chunk, dim, state) tensors; `chunk_size` is an upper
    bound (halved where the decay inside a chunk would leave LOG_RANGE)."""
    check_shapes(u, delta, A, B, C, D, z, delta_bias, initial_state)
    if chunk_size < 1:
        raise ValueError(f"selective_scan: chunk_size must be >= 1, got {chunk_size}")
    out_dtype = u.dtype
    u, delta, A, B, C, D, z = prepare_inputs(u, delta, A, B, C, D, z, delta_bias, delta_softplus)
    h = _initial(initial_state, u, A)
    # Time-major, (b, L, d) and (b, L, d|1, n): a time step is one contiguous (d, n) block, as
    # in the loop, so each pass below is vectorised over d * n (a model's dt, B and C come
    # time-major already, as transposed projections, so these copies are mostly free).
    u_t, dt_t = u.transpose(1, 2).contiguous(), delta.transpose(1, 2).contiguous()
    B_t, C_t = B.permute(0, 3, 1, 2).contiguous(), C.permute(0, 3, 1, 2).contiguous()
    length = u.shape[-1]
    chunk = stable_chunk(dt_t, A, min(chunk_size, length))
    ys = []
    for lo in range(0, length, chunk):
        part = slice(lo, lo + chunk)
        y, h = _chunk(h, u_t[:, part], dt_t[:, part], A, B_t[:, part], C_t[:, part])
        ys.append(y)
    y = torch.cat(ys, dim=1).transpose(1, 2)  # (b, d, L)
    if D is not None:
        y = y + D[:, None] * u
    if z is not None:
        y = y * F.silu(z)
    y = y.to(out_dtype)
    return (y, h) if return_last_state else y


def stable_chunk(delta_t: torch.Tensor, A: torch.Tensor, chunk: int) -> int:
    """The largest chunk <= `chunk` (halving) with |S_t| <= LOG_RANGE in every chunk.
    delta_t (b, L, d), time-major, after softplus; the bound max_n |A[d, n]| * sum |dt|
    costs a pass over (b, L, d), not over the state."""
    batch, length, dim = delta_t.shape
    reach = A.detach().abs().amax(-1)  # (d,)
    dt = delta_t.detach().abs()
    while chunk > 1:
        count = -(-length // chunk)
        spans = torch.cumsum(F.pad(dt, (0, 0, 0, count * chunk - length)).view(batch, count, chunk, dim), dim=2)
        if float((spans * reach).amax()) <= LOG_RANGE[delta_t.dtype]:
            break
        chunk //= 2
    return max(chunk, 1)


def _chunk(h0, u, delta, A, B, C):
    """One chunk of c steps, time-major. h0 (b, d, n); u, delta (b, c, d); B, C (b, c, d|1, n)
    -> (y (b, c, d) without the D and z terms, h at the chunk's end)."""
    decay = torch.exp(torch.cumsum(delta, dim=1)[..., None] * A)  # e^{S_t} (b, c, d, n)
    inputs = (delta * u)[..., None] * B                             # dt_s B_s u_s
    if u.shape[1] == 1:  # one step: e^{-S} could overflow here (no bound on a single step)
        h = decay * h0[:, None] + inputs
        return (h * C).sum(-1), h[:, -1]
    scaled = inputs.div_(decay)
    scaled[:, 0] += h0  # h_0 enters the cumulative sum with the first input: one (b, d, n) add
    h = scaled.cumsum_(dim=1).mul_(decay)
    return (h * C).sum(-1), h[:, -1]


def _initial(initial_state, u, A) -> torch.Tensor:
    if initial_state is not None:
        return initial_state.to(u.dtype)
    return u.new_zeros(u.shape[0], u.shape[1], A.shape[1])
