"""Compression (impls/compression): every quantized layer against its plain-PyTorch
reference on random inputs at several shapes, pruning against the same model with the
pruned parts zeroed, the distillation loss against its formula in float64."""
from __future__ import annotations

import copy

import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from harness.errors import Skip
from harness.report.compression import compression_table, markdown
from impls import compression, models
from impls.compression import prune, quantize
from impls.compression.distill import distillation_loss
from impls.decoding.int8_weights import quantize_linear_layers
from tests.conftest import make_case, prepare

# (out_features, in_features, group_size); out 20 has no CPU int4 kernel (N % 16): the fallback path
SHAPES = [(32, 64, 32), (48, 128, 64), (20, 64, 32)]


def _linear(out_features: int, in_features: int, seed: int, bias: bool = True) -> nn.Linear:
    torch.manual_seed(seed)
    return nn.Linear(in_features, out_features, bias=bias)


@pytest.mark.parametrize("out_features,in_features,group_size", SHAPES)
@pytest.mark.parametrize("rows", [1, 5])
def test_int4_layer_matches_its_dequantized_reference(out_features, in_features, group_size, rows):
    linear = _linear(out_features, in_features, seed=rows)
    layer = quantize.Int4Linear(linear, group_size)
    x = torch.randn(2, rows, in_features, generator=torch.Generator().manual_seed(1))
    q = quantize.unpack_nibbles(layer.nibbles)
    weight = quantize.dequantize_int4(q, layer.scales_and_zeros, group_size).double()
    expected = x.double() @ weight.T + linear.bias.double()
    got = layer(x)
    assert layer.last_path == ("dequantize" if out_features % 16 else "int4pack_mm")
    torch.testing.assert_close(got.double(), expected, rtol=1e-4, atol=1e-4)
    # the rounding itself: every weight within half a step of its group's grid
    step = layer.scales_and_zeros[..., 0].T.repeat_interleave(group_size, 1)
    assert ((weight.float() - linear.weight).abs() <= step / 2 + 1e-6).all()


def test_int4_layer_in_bf16_stays_near_the_reference():
    linear = _linear(32, 64, seed=0)
    layer = quantize.Int4Linear(linear, 32)
    x = torch.randn(3, 64, generator=torch.Generator().manual_seed(2))
    weight = quantize.dequantize_int4(quantize.unpack_nibbles(layer.nibbles), layer.scales_and_zeros, 32)
    got = layer(x.bfloat16()).float()
    assert got.dtype == torch.float32 and layer.last_path == "int4pack_mm"
    torch.testing.assert_close(got, x @ weight.T + linear.bias, rtol=3e-2, atol=3e-2)


def test_nibbles_round_trip_and_reject_odd_groups():
    q = torch.randint(0, 16, (8, 12), generator=torch.Generator().manual_seed(0), dtype=torch.int32)
    assert torch.equal(quantize.unpack_nibbles(quantize.pack_nibbles(q)), q)
    with pytest.raises(ValueError, match="group_size"):
        quantize.quantize_int4(torch.randn(4, 12), 5)


@pytest.mark.parametrize("out_features,in_features", [(32, 64), (17, 40), (64, 16)])
@pytest.mark.parametrize("smooth_alpha", [None, 0.5])
def test_static_w8a8_matches_its_float64_reference(out_features, in_features, smooth_alpha):
    linear = _linear(out_features, in_features, seed=in_features)
    gen = torch.Generator().manual_seed(3)
    calibration = torch.randn(64, in_features, generator=gen) * torch.linspace(0.1, 4, in_features)
    act_absmax = calibration.abs().amax(0)
    layer = quantize.StaticInt8Linear(linear, act_absmax, smooth_alpha)
    x = torch.randn(2, 3, in_features, generator=gen) * torch.linspace(0.1, 4, in_features)
    got = layer(x)
    assert layer.last_path == "int_mm"
    expected = quantize.static_int8_reference(x.reshape(-1, in_features), linear, act_absmax, smooth_alpha)
    # float32 and float64 may round a value lying on a half-step differently: one step of x at most
    one_step = float(layer.x_scale) * float((layer.weight_scale[:, None] * layer.weight_int8.abs()).max())
    assert (got.reshape(-1, out_features).double() - expected).abs().max() <= 2 * one_step + 1e-5


def test_smoothquant_shrinks_the_error_an_outlier_channel_causes():
    linear = _linear(32, 64, seed=5, bias=False)
    gen = torch.Generator().manual_seed(4)
    scale = torch.ones(64)
    scale[7] = 60.0  # one activation channel far larger than the rest (LLM.int8's outliers)
    x = torch.randn(256, 64, generator=gen) * scale
    maxima = quantize.calibrate(nn.Sequential(linear), [x])["0"]
    exact = linear(x)
    errors = {alpha: float((quantize.StaticInt8Linear(linear, maxima, alpha)(x) - exact).detach().pow(2).mean())
              for alpha in (None, 0.5)}
    assert errors[0.5] < errors[None] / 2


@pytest.mark.parametrize("rows,in_features,out_features", [(1, 64, 48), (7, 32, 16), (3, 100, 7)])
def test_fp8_layer_matches_its_dequantized_reference(rows, in_features, out_features):
    linear = _linear(out_features, in_features, seed=rows)
    layer = quantize.Fp8Linear(linear)
    x = torch.randn(rows, in_features, generator=torch.Generator().manual_seed(rows))
    x_fp8, x_scale = quantize.to_fp8(x)
    expected = (x_fp8.double() * x_scale) @ (layer.weight_fp8.double() * layer.weight_scale).T + linear.bias.double()
    got = layer(x)
    assert layer.last_path in ("scaled_mm", "dequantize")
    torch.testing.assert_close(got.double(), expected, rtol=1e-4, atol=1e-4)
    assert (got - linear(x)).abs().max() < 0.15 * linear(x).abs().max()  # e4m3: 3 mantissa bits


@pytest.fixture(scope="module")
def lm() -> nn.Module:
    torch.manual_seed(0)
    return models.build("transformer", vocab_size=40, d_model=32, n_layers=2, max_seq_len=32).eval()


@pytest.fixture(scope="module")
def tokens() -> torch.Tensor:
    return torch.randint(0, 40, (2, 12), generator=torch.Generator().manual_seed(0))


@torch.no_grad()
def test_quantized_models_name_their_kernels_and_store_fewer_bytes(lm, tokens):
    float_bytes = compression.stored_bytes(lm)
    assert float_bytes == sum(p.numel() * 4 for p in lm.parameters())  # the tied head counted once
    exact = lm(tokens)
    # (model, its path here, error bound relative to the largest logit: int4 rounds far coarser)
    for model, path, bound in [(quantize.int4_weight_only(lm, 32), "int4pack_mm", 0.5),
                               (quantize.static_w8a8(lm, [tokens]), "int_mm", 0.1),
                               (quantize.fp8(lm), "scaled_mm", 0.2),
                               (quantize_linear_layers(copy.deepcopy(lm)), "dequantize", 0.05)]:
        error = (model(tokens) - exact).abs().max() / exact.abs().max()
        assert error < bound, (path, float(error))
        assert path in compression.layer_paths(model)
        assert compression.stored_bytes(model) < float_bytes
    assert compression.layer_paths(lm) == "float_linear:9"  # the float model untouched: 4 per block, the head


def test_magnitude_pruning_zeroes_the_smallest_weights_densely(lm):
    pruned = prune.magnitude(lm, 0.5)
    assert prune.zero_fraction(pruned) == pytest.approx(0.5, abs=0.01)
    assert prune.zero_fraction(lm) == 0
    before, after = prune.block_linears(lm)[0].weight, prune.block_linears(pruned)[0].weight
    assert after.layout == torch.strided and after.shape == before.shape
    kept = after != 0
    assert before.abs()[kept].min() >= before.abs()[~kept].max()


def test_structured_pruning_equals_the_model_with_those_parts_zeroed(lm, tokens):
    pruned = prune.structured(lm, 0.5)
    zeroed = copy.deepcopy(lm)
    for small, full in zip(pruned.blocks, zeroed.blocks):
        attention, mlp = full.mixer, full.ffn
        assert small.mixer.heads == attention.heads // 2 and small.ffn.hidden == mlp.hidden // 2
        d = attention.head_dim
        kept_heads = set()  # the heads whose out_proj columns survive in the pruned model
        columns = attention.out_proj.weight.T
        for head in range(attention.heads):
            block = columns[head * d:(head + 1) * d]
            if not any(torch.equal(block, small.mixer.out_proj.weight.T[k * d:(k + 1) * d])
                       for k in range(small.mixer.heads)):
                attention.out_proj.weight.data[:, head * d:(head + 1) * d] = 0
            else:
                kept_heads.add(head)
        assert len(kept_heads) == small.mixer.heads
        kept = [c for c in range(mlp.hidden) if any(torch.equal(mlp.down.weight[:, c], small.ffn.down.weight[:, k])
                                                    for k in range(small.ffn.hidden))]
        dropped = sorted(set(range(mlp.hidden)) - set(kept))
        mlp.down.weight.data[:, dropped] = 0
    torch.testing.assert_close(pruned(tokens), zeroed(tokens), rtol=1e-5, atol=1e-5)
    assert compression.stored_bytes(pruned) < compression.stored_bytes(lm)


def test_two_four_mask_keeps_the_two_largest_of_every_four():
    weight = torch.randn(6, 16, generator=torch.Generator().manual_seed(0))
    mask = prune.two_four_mask(weight)
    groups, kept = weight.abs().view(6, 4, 4), mask.view(6, 4, 4)
    assert (kept.sum(-1) == 2).all()
    assert (groups.masked_fill(~kept, float("inf")).amin(-1) >= groups.masked_fill(kept, -1).amax(-1)).all()
    assert "CUDA" in prune.two_four_refusal("cpu")


@pytest.mark.parametrize("temperature,alpha", [(1.0, 0.5), (2.0, 0.9), (4.0, 0.0)])
def test_distillation_loss_matches_its_formula(temperature, alpha):
    gen = torch.Generator().manual_seed(int(temperature))
    student, teacher = torch.randn(2, 5, 11, generator=gen), torch.randn(2, 5, 11, generator=gen)
    targets = torch.randint(0, 11, (2, 5), generator=gen)
    p = F.softmax(teacher.double() / temperature, -1)
    q = F.softmax(student.double() / temperature, -1)
    kl = (p * (p.log() - q.log())).sum(-1).mean()
    ce = F.cross_entropy(student.double().flatten(0, 1), targets.flatten())
    expected = alpha * temperature ** 2 * kl + (1 - alpha) * ce
    got = distillation_loss(student, teacher, targets, temperature, alpha)
    torch.testing.assert_close(got.double(), expected, rtol=1e-5, atol=1e-6)


# ---- the compression workload ------------------------------------------------------------------

TINY = dict(d_model=16, n_layers=1, train_steps=2, seq_len=8, eval_tokens=64, prompt_len=4, new_tokens=4,
            student_d_model=8)


def _stats(family: str, **params) -> dict:
    prepared = prepare(make_case("compression", family, "transformer", **params))
    prepared.run()
    return prepared.stats()


def test_each_record_names_its_kernel_bytes_and_quality(tiny_corpus):
    base = _stats("model", method="none", **TINY)
    assert base["kernel_path"] == "float_linear:5" and base["token_match"] == 1.0 and base["fallback_layers"] == 0
    assert {"val_ppl", "val_bpc", "weight_bytes", "param_count"} <= set(base) and base["speedup_vs_uncompressed"] > 0
    int8 = _stats("model", method="int8_weight_only", **TINY)
    # fp32 activations on an x86 CPU: the int8 weights are dequantised every call, and the record says so
    assert int8["kernel_path"] == "dequantize:5" and int8["fallback_layers"] == 5
    assert int8["weight_bytes"] < base["weight_bytes"] and int8["param_count"] == base["param_count"]
    pruned = _stats("model", method="prune_magnitude", sparsity=0.5, **TINY)
    assert pruned["weight_bytes"] == base["weight_bytes"] and pruned["zero_fraction"] == pytest.approx(0.5, abs=0.02)
    student = _stats("model", method="distill", **TINY)
    assert student["param_count"] < base["param_count"] and student["baseline_val_ppl"] == pytest.approx(base["val_ppl"])


def test_selective_copy_and_seq2seq_report_their_task_metrics():
    copy_task = _stats("model", method="fp8", task="selective_copy", n_memorize=2, n_symbols=4,
                       **(TINY | {"eval_tokens": 8}))
    assert 0 <= copy_task["accuracy"] <= 1 and copy_task["kernel_path"].startswith("scaled_mm")
    translated = _stats("seq2seq", method="int8_dynamic", d_model=16, n_layers=1, train_steps=2, eval_samples=8)
    assert {"bleu", "rouge1", "rouge2", "rougeL", "exact_match", "token_match"} <= set(translated)
    assert translated["kernel_path"].startswith("quantized_dynamic_")
    with pytest.raises(Skip, match="structured pruning"):
        prepare(make_case("compression", "seq2seq", "transformer", method="prune_structured", d_model=16,
                          n_layers=1, train_steps=2, eval_samples=8))


def test_the_compression_table_marks_each_task_front_on_its_own_quality():
    rows = [("none", 100.0, 4000, 5.0), ("int8_weight_only", 50.0, 1500, 5.1), ("prune_magnitude", 99.0, 4000, 6.0),
            ("prune_structured", 150.0, 2000, 7.0)]
    frame = pd.DataFrame([dict(workload="compression", status="ok", impl="transformer", task="char_lm", method=m,
                               precision="fp32", speedup_vs_uncompressed=1.0,
                               sparsity=0.5, kernel_path="dense", tokens_per_s=speed, weight_bytes=size, val_ppl=ppl,
                               token_match=1.0) for m, speed, size, ppl in rows]
                         + [dict(workload="compression", status="skipped", impl="transformer", task="char_lm",
                                 method="prune_2_4", precision="fp32")])
    table = compression_table(frame).set_index("method")
    assert list(table.index) == ["prune_structured", "none", "prune_magnitude", "int8_weight_only"]
    assert table["front_speed"].to_dict() == {"prune_structured": True, "none": True, "prune_magnitude": False,
                                              "int8_weight_only": False}
    assert table["front_bytes"].to_dict() == {"prune_structured": False, "none": True, "prune_magnitude": False,
                                              "int8_weight_only": True}
    assert "prune_magnitude 0.5" in markdown(compression_table(frame))


def test_a_compression_run_gets_its_own_report_page_with_both_fronts_and_the_table(tiny_corpus, tmp_path, monkeypatch):
    import yaml

    from harness import runner, suite as suites
    from harness.report.build import build_pages
    from tests.conftest import run_in_process

    run_in_process(monkeypatch)
    (tmp_path / "suite.yaml").write_text(yaml.safe_dump({
        "name": "compression-page", "workload": "compression", "family": "model", "device": "cpu",
        "impls": ["transformer"], "sweep": {"method": ["none", "int8_weight_only"]},
        "fixed": {**TINY, "task": "char_lm"}, "measure": {"warmup": 1, "min_reps": 3, "max_reps": 3, "threads": 1}}))
    suite = suites.load(tmp_path / "suite.yaml")
    run_dir = runner.new_run_dir(tmp_path / "results", suite)
    runner.run(runner.Run(suite, suites.expand(suite, "cpu"), run_dir, runner.start(run_dir, suite, "cpu")))
    html, named = build_pages([run_dir])
    assert "char_lm (fp32): quality against speed" in html and "char_lm (fp32): quality against weight bytes" in html
    assert "Every method" in html and "dequantize:5" in html  # the fallback is visible on the page
    assert sum("quality-against" in name for name, _ in named) == 2
