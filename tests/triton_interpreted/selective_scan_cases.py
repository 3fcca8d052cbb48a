"""selective_scan_triton against the sequential reference, forward and backward.

The kernels run under TRITON_INTERPRET=1 on the CPU, which must be set before
triton is imported: tests/test_selective_scan_triton.py runs this file in a
fresh process with it set (or without it on a CUDA machine). Collected any
other way, it skips. Gradients are checked against autograd through
selective_scan_ref in float64 on the same (rounded) inputs. The shapes are
small but cover what the kernels mask and chunk: one step; lengths that are
not a multiple of the checkpoint interval, or shorter than it; channels not a
multiple of the block, and more than one block; state sizes 1, 3, 5 and 16;
B and C shared, in groups of 1, 2 and 4 channels; with and without D, z,
delta_bias, softplus and an initial state; the final state's gradient.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import pytest
import torch

pytest.importorskip("triton")
DEVICE = "cpu" if os.environ.get("TRITON_INTERPRET") == "1" else "cuda"
if DEVICE == "cuda" and not torch.cuda.is_available():
    pytest.skip("needs TRITON_INTERPRET=1 (tests/test_selective_scan_triton.py sets it) or a GPU",
                allow_module_level=True)

from impls import registry  # noqa: E402  (after the interpreter decision above)
from impls.mixers.selective_scan import selective_scan_ref  # noqa: E402
from impls.mixers._selective_scan_triton import ACCURACY as TOLERANCE, selective_scan_triton  # noqa: E402

DTYPES = {"fp64": torch.float64, "fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


@dataclass(frozen=True)
class Shape:
    batch: int
    dim: int
    state: int
    length: int
    groups: int | None  # None: B and C shared by every channel, (batch, state, L)
    extras: bool  # D, z, delta_bias, softplus and an initial state
    checkpoint_every: int | None
    block_d: int = 16

    def __str__(self) -> str:
        return (f"b{self.batch}-d{self.dim}-n{self.state}-L{self.length}-g{self.groups}-"
                f"{'extras' if self.extras else 'plain'}-K{self.checkpoint_every}-blk{self.block_d}")


SHAPES = [
    Shape(1, 1, 1, 1, None, False, None),  # one step, one channel, one state
    Shape(2, 6, 3, 7, None, True, 3, block_d=4),  # L = 2 * 3 + 1; a half-empty second block
    Shape(2, 6, 3, 13, 3, True, 4),  # groups of 2 channels: the backward's block shrinks to 2
    Shape(1, 8, 5, 23, 2, False, None),  # groups of 4, K = isqrt(23) = 4, L = 5 * 4 + 3
    Shape(1, 20, 16, 17, None, True, 5),  # two blocks of 16 channels, a full 16-wide state
    Shape(1, 4, 2, 10, 4, True, 64),  # one channel per group; K longer than the sequence
]


def _random_args(shape: Shape, dtype: torch.dtype, seed: int) -> dict:
    g = torch.Generator().manual_seed(seed)

    def randn(*size):
        return torch.randn(*size, generator=g, dtype=torch.float64).to(dtype)

    b, d, n, length = shape.batch, shape.dim, shape.state, shape.length
    bc = (b, n, length) if shape.groups is None else (b, shape.groups, n, length)
    args = dict(u=randn(b, d, length), delta=randn(b, d, length).abs() * 0.5, A=-randn(d, n).abs(),
                B=randn(*bc), C=randn(*bc))
    if shape.extras:
        args.update(D=randn(d), z=randn(b, d, length), delta_bias=randn(d) * 0.5,
                    initial_state=randn(b, d, n))
    return args


def _err(ours: torch.Tensor, exact: torch.Tensor) -> float:
    """max |ours - exact| relative to max |exact| (absolute where that is below 1)."""
    ours, exact = ours.detach().double().cpu(), exact.detach().cpu()
    return float((ours - exact).abs().max() / exact.abs().max().clamp_min(1.0))


def scan_errors(shape: Shape, precision: str) -> dict[str, float]:
    """_err of y, the final h and the gradient of every input, against the reference;
    also asserts each gradient's dtype and shape are its input's."""
    dtype = DTYPES[precision]
    args = {k: v.to(DEVICE).requires_grad_() for k, v in _random_args(shape, dtype, seed=shape.length).items()}
    exact_args = {k: v.detach().double().requires_grad_() for k, v in args.items()}
    options = dict(delta_softplus=shape.extras, return_last_state=True)
    y, h = selective_scan_triton(**args, **options, block_d=shape.block_d, checkpoint_every=shape.checkpoint_every)
    y_exact, h_exact = selective_scan_ref(**exact_args, **options)
    assert y.dtype == dtype and h.dtype == (torch.float64 if precision == "fp64" else torch.float32)
    g = torch.Generator().manual_seed(1)
    dy = torch.randn(y.shape, generator=g, dtype=torch.float64).to(dtype).to(DEVICE)
    dh = torch.randn(h.shape, generator=g, dtype=torch.float64).to(DEVICE) * shape.extras  # the state's too
    torch.autograd.backward((y, h), (dy, dh.to(h.dtype)))
    torch.autograd.backward((y_exact, h_exact), (dy.double(), dh))
    errors = {"y": _err(y, y_exact), "h": _err(h, h_exact)}
    for name, x in args.items():
        assert x.grad is not None and x.grad.dtype == x.dtype and x.grad.shape == x.shape, name
        errors[f"d{name}"] = _err(x.grad, exact_args[name].grad)
    return errors


# every shape in fp32 and in one of the others, each at two shapes (the interpreter is slow)
CASES = [(shape, precision) for i, shape in enumerate(SHAPES)
         for precision in ("fp32", ("fp64", "fp16", "bf16")[i % 3])]


@pytest.mark.parametrize("shape, precision", CASES, ids=lambda c: str(c))
def test_triton_scan_output_and_every_gradient_match_autograd_through_the_reference(shape, precision):
    errors = scan_errors(shape, precision)
    assert max(errors.values()) < TOLERANCE[precision], errors


def test_triton_scan_without_gradients_equals_the_saving_forward():
    """No input needs a gradient: the kernel keeps no states, and gives the same y and h."""
    args = _random_args(Shape(2, 6, 3, 9, 3, True, 4), torch.float32, seed=3)
    args = {k: v.to(DEVICE) for k, v in args.items()}
    plain = selective_scan_triton(**args, delta_softplus=True, return_last_state=True)
    saving = selective_scan_triton(**{**args, "u": args["u"].clone().requires_grad_()}, delta_softplus=True,
                                   return_last_state=True, checkpoint_every=4)
    for ours, other in zip(plain, saving):
        assert torch.equal(ours, other.detach())


def test_triton_scan_gradient_through_the_final_state_alone():
    """y unused (as when a prefill's state is all that is kept): the backward starts from dh alone."""
    args = {k: v.to(DEVICE).requires_grad_() for k, v in _random_args(Shape(2, 6, 3, 9, None, True, 4),
                                                                        torch.float32, seed=4).items()}
    exact_args = {k: v.detach().double().requires_grad_() for k, v in args.items()}
    _, h = selective_scan_triton(**args, delta_softplus=True, return_last_state=True, checkpoint_every=4)
    _, h_exact = selective_scan_ref(**exact_args, delta_softplus=True, return_last_state=True)
    random_projection = torch.randn(h.shape, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    (h * random_projection.to(DEVICE, h.dtype)).sum().backward()
    (h_exact * random_projection.to(DEVICE)).sum().backward()
    for name, x in args.items():
        exact = exact_args[name].grad
        if exact is None:  # D and z shape y only
            assert x.grad is None or not x.grad.any(), name
        else:
            assert _err(x.grad, exact) < TOLERANCE["fp32"], name


def test_triton_scan_refuses_groups_it_cannot_lay_out():
    """Groups that do not divide dim would send channels to a group past the end of B;
    B and C in different groups do not share the kernels' one layout."""
    u = torch.randn(2, 6, 5, device=DEVICE)
    for groups in (4, 7):
        B = torch.randn(2, groups, 3, 5, device=DEVICE)
        with pytest.raises(ValueError, match="groups dividing dim=6"):
            selective_scan_triton(u, u.abs(), -torch.ones(6, 3, device=DEVICE), B, B)
    B = torch.randn(2, 2, 3, 5, device=DEVICE)
    with pytest.raises(ValueError, match="B and C need the same groups, got 2 and 1"):
        selective_scan_triton(u, u.abs(), -torch.ones(6, 3, device=DEVICE), B, B[:, 0])


@pytest.mark.parametrize("bad, message", [({"block_d": 6}, "block_d must be a power of two"),
                                          ({"checkpoint_every": 0}, "checkpoint_every must be >= 1")])
def test_triton_scan_refuses_bad_options(bad, message):
    u = torch.randn(1, 2, 3, device=DEVICE)
    B = torch.randn(1, 2, 3, device=DEVICE)
    with pytest.raises(ValueError, match=message):
        selective_scan_triton(u, u.abs(), -torch.ones(2, 2, device=DEVICE), B, B, **bad)


def test_mamba_triton_block_matches_the_sequential_scan_forward_prefill_and_gradients():
    torch.manual_seed(0)
    mixer = registry.get("mixer", "mamba_triton").fn(8, d_state=4).to(DEVICE)  # 16 channels: one block
    reference = registry.get("mixer", "mamba").fn(8, d_state=4, scan="sequential").to(DEVICE)
    reference.load_state_dict(mixer.state_dict())
    x = torch.randn(2, 9, 8, generator=torch.Generator().manual_seed(1)).to(DEVICE)
    y = mixer(x)
    y_reference = reference(x)
    torch.testing.assert_close(y, y_reference, atol=1e-5, rtol=1e-4)
    with torch.no_grad():
        state = mixer.init_state(2, 9)
        first, state = mixer.prefill(x[:, :4], state)
        rest, _ = mixer.prefill(x[:, 4:], state)
        torch.testing.assert_close(torch.cat((first, rest), 1), y, atol=1e-5, rtol=1e-4)
    weights = torch.randn(y.shape, generator=torch.Generator().manual_seed(2)).to(DEVICE)
    (y * weights).sum().backward()
    (y_reference * weights).sum().backward()
    expected = dict(reference.named_parameters())
    for name, p in mixer.named_parameters():
        torch.testing.assert_close(p.grad, expected[name].grad, atol=1e-5, rtol=1e-4, msg=name)


if __name__ == "__main__":  # the error table of docs: TRITON_INTERPRET=1 python <this file>
    for shape in SHAPES:
        for precision in DTYPES:
            errors = scan_errors(shape, precision)
            print(f"{str(shape):42} {precision:5} worst {max(errors, key=errors.get):14} {max(errors.values()):.1e}  "
                  + " ".join(f"{k}={v:.0e}" for k, v in errors.items()))
