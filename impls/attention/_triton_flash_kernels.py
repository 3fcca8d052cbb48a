"""The Triton kernels of triton_flash (impls/attention/triton_flash.py, which documents the
algorithm): imported on the first call, not by the registry, since importing triton takes a
third of a second of every run's start.

TRITON_INTERPRET is read when this module is first imported: the kernels are decorated then.
"""
from __future__ import annotations

import os

import torch

try:
    import triton
    import triton.language as tl
except ImportError:  # optional: the registry then reports "triton is not installed"
    triton = None

# Decided when the kernels are decorated (at import): triton reads the variable then.
INTERPRETED = triton is not None and os.environ.get("TRITON_INTERPRET") == "1"
LOG2E = 1.4426950408889634


if triton is not None:  # kernels exist only where triton does; else the impl reports why
    def _configs(shapes: list[tuple[int, int, int, int]]) -> list[triton.Config]:
        """(BLOCK_M, BLOCK_N, warps, stages) -> configs; one tiny tile in the interpreter."""
        if INTERPRETED:
            shapes = [(16, 16, 1, 1)]
        return [triton.Config({"BLOCK_M": m, "BLOCK_N": n}, num_warps=w, num_stages=s) for m, n, w, s in shapes]


    FWD_CONFIGS = _configs([(128, 64, 8, 3), (128, 64, 4, 3), (64, 64, 4, 3), (64, 32, 4, 4)])
    BWD_CONFIGS = _configs([(64, 64, 4, 2), (32, 64, 4, 2), (64, 32, 4, 3), (32, 32, 4, 2)])
    TUNE_KEY = ["N", "M", "HEAD_DIM", "CAUSAL"]


    @triton.jit
    def _dot(a, b, DOT: tl.constexpr):
        """a @ b with fp32 accumulation. DOT is "ieee" (fp32 inputs), "tf32" (ignored for
        16-bit inputs) or "upcast": the interpreter multiplies bf16 wrongly, so bf16
        operands go to fp32 first, which is exact and matches a bf16 MMA's products."""
        if DOT == "upcast":
            return tl.dot(a.to(tl.float32), b.to(tl.float32), input_precision="ieee")
        return tl.dot(a, b, input_precision=DOT)


    @triton.jit
    def _forward_tile(acc, m_i, l_i, q, K, V, kv_base, start_n, rows, dims, scale_log2, N, M,
                      HEAD_DIM: tl.constexpr, CAUSAL: tl.constexpr, MASKED: tl.constexpr,
                      DOT: tl.constexpr, BLOCK_N: tl.constexpr):
        """Fold keys start_n .. start_n + BLOCK_N - 1 into the running output `acc`, row max
        `m_i` and row sum `l_i` (online softmax). MASKED=False skips the bounds and causal
        mask, for tiles every row sees whole."""
        cols = start_n + tl.arange(0, BLOCK_N)
        kv_offsets = kv_base + cols[:, None] * HEAD_DIM + dims[None, :]
        kv_mask = (cols[:, None] < M) & (dims[None, :] < HEAD_DIM)
        k = tl.load(K + kv_offsets, mask=kv_mask, other=0.0)
        s = _dot(q, tl.trans(k), DOT) * scale_log2  # (BLOCK_M, BLOCK_N)
        if MASKED:
            keep = cols[None, :] < M
            if CAUSAL:
                keep = keep & (cols[None, :] <= rows[:, None] + (M - N))
            # every row sees key 0, so the first tile sets a finite max: no exp2(-inf - -inf)
            s = tl.where(keep, s, float("-inf"))
        m_new = tl.maximum(m_i, tl.max(s, 1))
        alpha = tl.exp2(m_i - m_new)
        p = tl.exp2(s - m_new[:, None])
        v = tl.load(V + kv_offsets, mask=kv_mask, other=0.0)
        acc = acc * alpha[:, None] + _dot(p.to(v.dtype), v, DOT)
        return acc, m_new, l_i * alpha + tl.sum(p, 1)

    @triton.autotune(configs=FWD_CONFIGS, key=TUNE_KEY)
    @triton.jit
    def _forward_kernel(Q, K, V, O, LSE, scale_log2, N, M, HQ, GROUP,
                        HEAD_DIM: tl.constexpr, BLOCK_D: tl.constexpr, CAUSAL: tl.constexpr,
                        DOT: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr):
        """One (query tile, batch*head) per program: O = softmax(Q K^T) V, LSE in log2 units."""
        start_m = tl.program_id(0) * BLOCK_M
        bh = tl.program_id(1).to(tl.int64)  # b * HQ + h; int64 so offsets past 2^31 elements stay right
        bkv = (bh // HQ) * (HQ // GROUP) + (bh % HQ) // GROUP  # b * HKV + h // GROUP
        rows = start_m + tl.arange(0, BLOCK_M)
        dims = tl.arange(0, BLOCK_D)
        row_ok = rows < N
        q_ptrs = Q + bh * N * HEAD_DIM + rows[:, None] * HEAD_DIM + dims[None, :]
        q = tl.load(q_ptrs, mask=row_ok[:, None] & (dims[None, :] < HEAD_DIM), other=0.0)
        m_i = tl.full([BLOCK_M], float("-inf"), tl.float32)  # running row max (log2 units)
        l_i = tl.zeros([BLOCK_M], tl.float32)  # running row sum of exp2(s - m_i)
        acc = tl.zeros([BLOCK_M, BLOCK_D], tl.float32)
        hi = M
        if CAUSAL:  # the tile's last row sees keys up to start_m + BLOCK_M - 1 + M - N
            hi = tl.minimum(M, start_m + BLOCK_M + M - N)
        kv_base = bkv * M * HEAD_DIM
        # Key tiles that every row of this query tile sees whole need no mask: those
        # below the first row's horizon (start_m + M - N) and below M, in whole tiles.
        full = M
        if CAUSAL:
            full = tl.minimum(M, start_m + M - N + 1)
        full = (full // BLOCK_N) * BLOCK_N
        for start_n in range(0, full, BLOCK_N):
            acc, m_i, l_i = _forward_tile(acc, m_i, l_i, q, K, V, kv_base, start_n, rows, dims, scale_log2,
                                          N, M, HEAD_DIM, CAUSAL, False, DOT, BLOCK_N)
        for start_n in range(full, hi, BLOCK_N):  # the diagonal and the ragged end
            acc, m_i, l_i = _forward_tile(acc, m_i, l_i, q, K, V, kv_base, start_n, rows, dims, scale_log2,
                                          N, M, HEAD_DIM, CAUSAL, True, DOT, BLOCK_N)
        acc = acc / l_i[:, None]
        o_ptrs = O + bh * N * HEAD_DIM + rows[:, None] * HEAD_DIM + dims[None, :]
        tl.store(o_ptrs, acc.to(O.dtype.element_ty), mask=row_ok[:, None] & (dims[None, :] < HEAD_DIM))
        tl.store(LSE + bh * N + rows, m_i + tl.log2(l_i), mask=row_ok)


    @triton.autotune(configs=BWD_CONFIGS, key=TUNE_KEY)
    @triton.jit
    def _backward_kv_kernel(Q, K, V, DO, LSE, DELTA, DK, DV, scale, scale_log2, N, M, HQ, GROUP,
                            HEAD_DIM: tl.constexpr, BLOCK_D: tl.constexpr, CAUSAL: tl.constexpr,
                            DOT: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr):
        """One (key tile, batch*kv head) per program: dK, dV summed over the group's query heads."""
        start_n = tl.program_id(0) * BLOCK_N
        bkv = tl.program_id(1).to(tl.int64)  # b * HKV + hk; int64 offsets
        hkv = HQ // GROUP
        cols = start_n + tl.arange(0, BLOCK_N)
        dims = tl.arange(0, BLOCK_D)
        d_ok = dims[None, :] < HEAD_DIM
        kv_offsets = bkv * M * HEAD_DIM + cols[:, None] * HEAD_DIM + dims[None, :]
        kv_mask = (cols[:, None] < M) & d_ok
        k = tl.load(K + kv_offsets, mask=kv_mask, other=0.0)
        v = tl.load(V + kv_offsets, mask=kv_mask, other=0.0)
        dk = tl.zeros([BLOCK_N, BLOCK_D], tl.float32)
        dv = tl.zeros([BLOCK_N, BLOCK_D], tl.float32)
        lo = 0
        if CAUSAL:  # rows before start_n - (M - N) cannot see this tile
            lo = (tl.maximum(0, start_n - (M - N)) // BLOCK_M) * BLOCK_M
        first_head = (bkv // hkv) * HQ + (bkv % hkv) * GROUP
        for g in range(0, GROUP):
            bh = first_head + g
            for start_m in range(lo, N, BLOCK_M):
                rows = start_m + tl.arange(0, BLOCK_M)
                row_ok = rows < N
                q_offsets = bh * N * HEAD_DIM + rows[:, None] * HEAD_DIM + dims[None, :]
                q = tl.load(Q + q_offsets, mask=row_ok[:, None] & d_ok, other=0.0)
                do = tl.load(DO + q_offsets, mask=row_ok[:, None] & d_ok, other=0.0)
                lse = tl.load(LSE + bh * N + rows, mask=row_ok, other=0.0)
                delta = tl.load(DELTA + bh * N + rows, mask=row_ok, other=0.0)
                s_t = _dot(k, tl.trans(q), DOT) * scale_log2  # (BLOCK_N, BLOCK_M)
                keep = row_ok[None, :] & (cols[:, None] < M)
                if CAUSAL:
                    keep = keep & (cols[:, None] <= rows[None, :] + (M - N))
                p_t = tl.where(keep, tl.exp2(s_t - lse[None, :]), 0.0)
                dv += _dot(p_t.to(do.dtype), do, DOT)
                dp_t = _dot(v, tl.trans(do), DOT)
                ds_t = p_t * (dp_t - delta[None, :])
                dk += _dot(ds_t.to(q.dtype), q, DOT)
        tl.store(DK + kv_offsets, (dk * scale).to(DK.dtype.element_ty), mask=kv_mask)
        tl.store(DV + kv_offsets, dv.to(DV.dtype.element_ty), mask=kv_mask)


    @triton.autotune(configs=BWD_CONFIGS, key=TUNE_KEY)
    @triton.jit
    def _backward_q_kernel(Q, K, V, DO, LSE, DELTA, DQ, scale, scale_log2, N, M, HQ, GROUP,
                           HEAD_DIM: tl.constexpr, BLOCK_D: tl.constexpr, CAUSAL: tl.constexpr,
                           DOT: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr):
        """One (query tile, batch*head) per program: dQ = sum over keys of dS K * scale."""
        start_m = tl.program_id(0) * BLOCK_M
        bh = tl.program_id(1).to(tl.int64)
        bkv = (bh // HQ) * (HQ // GROUP) + (bh % HQ) // GROUP
        rows = start_m + tl.arange(0, BLOCK_M)
        dims = tl.arange(0, BLOCK_D)
        row_ok = rows < N
        d_ok = dims[None, :] < HEAD_DIM
        q_offsets = bh * N * HEAD_DIM + rows[:, None] * HEAD_DIM + dims[None, :]
        q = tl.load(Q + q_offsets, mask=row_ok[:, None] & d_ok, other=0.0)
        do = tl.load(DO + q_offsets, mask=row_ok[:, None] & d_ok, other=0.0)
        lse = tl.load(LSE + bh * N + rows, mask=row_ok, other=0.0)
        delta = tl.load(DELTA + bh * N + rows, mask=row_ok, other=0.0)
        dq = tl.zeros([BLOCK_M, BLOCK_D], tl.float32)
        hi = M
        if CAUSAL:
            hi = tl.minimum(M, start_m + BLOCK_M + M - N)
        for start_n in range(0, hi, BLOCK_N):
            cols = start_n + tl.arange(0, BLOCK_N)
            kv_offsets = bkv * M * HEAD_DIM + cols[:, None] * HEAD_DIM + dims[None, :]
            kv_mask = (cols[:, None] < M) & d_ok
            k = tl.load(K + kv_offsets, mask=kv_mask, other=0.0)
            v = tl.load(V + kv_offsets, mask=kv_mask, other=0.0)
            s = _dot(q, tl.trans(k), DOT) * scale_log2
            keep = row_ok[:, None] & (cols[None, :] < M)
            if CAUSAL:
                keep = keep & (cols[None, :] <= rows[:, None] + (M - N))
            p = tl.where(keep, tl.exp2(s - lse[:, None]), 0.0)
            dp = _dot(do, tl.trans(v), DOT)
            ds = p * (dp - delta[:, None])
            dq += _dot(ds.to(k.dtype), k, DOT)
        tl.store(DQ + q_offsets, (dq * scale).to(DQ.dtype.element_ty), mask=row_ok[:, None] & d_ok)


def _launch_args(q: torch.Tensor, k: torch.Tensor, causal: bool) -> dict:
    """Shape and mode arguments shared by the three kernels."""
    hq, n, d = q.shape[1], q.shape[2], q.shape[3]
    hkv, m = k.shape[1], k.shape[2]
    if hq % hkv:
        raise ValueError(f"query heads ({hq}) must be a multiple of kv heads ({hkv})")
    if causal and n > m:
        raise ValueError(f"causal attention needs kv_len >= seq_len, got {n} > {m}")
    # fp32 uses exact fp32 products (not tf32) so it meets the fp32 tolerance
    dot = "ieee" if q.dtype == torch.float32 else "tf32"
    if INTERPRETED and q.dtype == torch.bfloat16:
        dot = "upcast"
    return dict(N=n, M=m, HQ=hq, GROUP=hq // hkv, HEAD_DIM=d,
                BLOCK_D=max(16, triton.next_power_of_2(d)), CAUSAL=causal, DOT=dot)


def _forward(q, k, v, causal: bool, scale: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(out (B, Hq, N, D), lse (B, Hq, N) fp32 in log2 units)."""
    b, hq, n, _ = q.shape
    args = _launch_args(q, k, causal)
    out = torch.empty_like(q)
    lse = torch.empty((b, hq, n), device=q.device, dtype=torch.float32)
    grid = lambda meta: (triton.cdiv(n, meta["BLOCK_M"]), b * hq)  # noqa: E731
    _forward_kernel[grid](q, k, v, out, lse, scale * LOG2E, **args)
    return out, lse


def _backward(q, k, v, out, lse, grad_out, causal: bool, scale: float):
    """(dq, dk, dv) from the saved output and log-sum-exp."""
    b, hq, n, _ = q.shape
    hkv, m = k.shape[1], k.shape[2]
    args = _launch_args(q, k, causal)
    delta = (grad_out.float() * out.float()).sum(-1)  # (B, Hq, N): rowsum(dO * O)
    dq, dk, dv = torch.empty_like(q), torch.empty_like(k), torch.empty_like(v)
    kv_grid = lambda meta: (triton.cdiv(m, meta["BLOCK_N"]), b * hkv)  # noqa: E731
    _backward_kv_kernel[kv_grid](q, k, v, grad_out, lse, delta, dk, dv, scale, scale * LOG2E, **args)
    q_grid = lambda meta: (triton.cdiv(n, meta["BLOCK_M"]), b * hq)  # noqa: E731
    _backward_q_kernel[q_grid](q, k, v, grad_out, lse, delta, dq, scale, scale * LOG2E, **args)
    return dq, dk, dv


class FlashAttention(torch.autograd.Function):
    @staticmethod
    def forward(ctx, q, k, v, causal: bool, scale: float):
        q, k, v = q.contiguous(), k.contiguous(), v.contiguous()
        out, lse = _forward(q, k, v, causal, scale)
        ctx.save_for_backward(q, k, v, out, lse)
        ctx.causal, ctx.scale = causal, scale
        return out

    @staticmethod
    def backward(ctx, grad_out):
        q, k, v, out, lse = ctx.saved_tensors
        dq, dk, dv = _backward(q, k, v, out, lse, grad_out.contiguous(), ctx.causal, ctx.scale)
        return dq, dk, dv, None, None
