"""Attention: fn(q, k, v, *, causal, scale=None, **params) -> out.

q: (B, Hq, N, D); k, v: (B, Hkv, M, D) with Hkv dividing Hq (MQA/GQA).
Causal masks are aligned to the bottom right: query i sees keys j <= i + M - N,
which is the usual triangle when M == N and the KV-cache case when M > N.
"""
