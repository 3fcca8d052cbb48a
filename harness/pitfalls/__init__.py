"""Training and inference pitfalls as checks any next-token model can run.

Each check takes a model whose `forward(tokens (B, T) long) -> logits (B, T, V)`
(and, for exposure bias, the decoding interface of impls.decoding) and returns
its metrics, with a 0/1 verdict where the pitfall has one:

  causal_leak.py      an output that moves when a later token changes (`causal_ok`)
  grad_accum.py       k micro-batches against one batch (`accumulation_equivalent`)
  mixed_precision.py  fp16/bf16 autocast gradients with and without loss scaling
  exposure_bias.py    teacher-forced against free-running accuracy on a copy task
"""
