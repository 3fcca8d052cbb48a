"""Which category an operator or a GPU kernel's time belongs to, from its name.

The categories are the issue's split of a case's time: matrix products, fused attention
kernels, softmax and reductions, elementwise arithmetic, memory copies and layout changes,
communication, and host overhead (time between operators, which has no name; see
attribution.py). A name no rule knows is `other`, shown as such rather than guessed.
"""
from __future__ import annotations

import re

MATMUL = "matmul"
ATTENTION = "attention"
SOFTMAX = "softmax_reductions"
ELEMENTWISE = "elementwise"
COPIES = "copies_layout"
COMMUNICATION = "communication"
HOST = "host_overhead"
OTHER = "other"
CATEGORIES = (MATMUL, ATTENTION, SOFTMAX, ELEMENTWISE, COPIES, COMMUNICATION, HOST, OTHER)

# First match wins (case-insensitive), so the fused-attention rule comes before matmul (flash kernels contain
# "gemm"-like substrings in some builds) and communication before copies (nccl copies).
_RULES: list[tuple[str, re.Pattern[str]]] = [(category, re.compile(pattern, re.IGNORECASE)) for category, pattern in (
    # the autograd engine's and Python's own frames: their self time is bookkeeping between operators
    (HOST, r"^autograd::|^[A-Za-z0-9]*Backward\d*$|^Optimizer\.|\.py\(\d+\)|^<built-in|^torch/"),
    (COMMUNICATION, r"nccl|gloo|c10d|all_?reduce|all_?gather|reduce_?scatter|broadcast_|all_to_all|"
                    r"\bsend\b|\brecv\b|barrier"),
    (ATTENTION, r"scaled_dot_product|flash|fmha|_efficient_attention|attention|flex_attention|"
                r"triton_flash|attn"),
    (MATMUL, r"::(mm|bmm|addmm|addbmm|baddbmm|matmul|linear|einsum|conv\w*|_int_mm|_weight_int8\w*|"
             r"_scaled_mm|dot|mv|addmv|outer|tensordot|_convolution|mkldnn_\w*)\b|"
             r"gemm|gemv|cutlass|xmma|sgemm|hgemm|cublas|wgmma|\bmatmul"),
    (SOFTMAX, r"softmax|logsumexp|::(sum|mean|amax|amin|max|min|argmax|argmin|topk|sort|cumsum|cumprod|"
              r"norm|layer_norm|native_layer_norm|rms_norm|_fused_rms_norm|group_norm|batch_norm|var|std|"
              r"var_mean|prod|all|any|nll_loss\w*|cross_entropy\w*|multinomial)\b|reduce|norm_kernel"),
    (COPIES, r"::(copy_|_to_copy|to|clone|contiguous|cat|stack|transpose|permute|view|_unsafe_view|reshape|"
             r"_reshape_alias|expand|index|index_select|index_put_|gather|scatter\w*|slice|select|narrow|"
             r"unsqueeze|squeeze|empty|empty_like|empty_strided|zeros|zeros_like|ones|full|new_empty\w*|"
             r"new_zeros|as_strided|split\w*|chunk|unbind|t|flatten|unflatten|pad|constant_pad_nd|embedding|"
             r"roll|flip|repeat\w*|tril|triu|resize_|detach|alias|lift_fresh|set_|_pin_memory|"
             r"masked_select|nonzero|item|_local_scalar_dense|arange|resolve_conj|resolve_neg|fill_|zero_)\b|"
             r"memcpy|memset|copy|cat_|transpose_|gather_|scatter_|index_"),
    (ELEMENTWISE, r"::(add|add_|sub|sub_|mul|mul_|div|div_|neg|exp|exp2|log|log1p|sqrt|rsqrt|pow|abs|sin|cos|"
                  r"tanh|sigmoid|relu|gelu|silu|softplus|erf|clamp\w*|where|masked_fill\w*|lt|le|gt|ge|eq|ne|"
                  r"logical_\w+|bitwise_\w+|floor|ceil|round|sign|reciprocal|addcmul\w*|addcdiv\w*|lerp\w*|"
                  r"maximum|minimum|dropout|native_dropout|rand\w*|normal_|uniform_|bernoulli_|baddcmul|"
                  r"threshold_backward|gelu_backward|silu_backward|sigmoid_backward|tanh_backward|"
                  r"_foreach_\w+|isfinite|isnan|isinf|isneginf|isposinf|nan_to_num|square|fmod|remainder|xlogy)\b|"
                  r"elementwise|vectorized|unrolled_elementwise|pointwise|triton_poi"),
)]


def category(name: str) -> str:
    """The category of an operator (`aten::bmm`) or a kernel (`ampere_sgemm_128x64_nn`)."""
    for found, pattern in _RULES:
        if pattern.search(name):
            return found
    return OTHER
