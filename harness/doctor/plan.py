"""What the doctor checks on a device, and at which shapes.

Every registered impl of the families a workload checks (attention through `op`, model
presets through `model`, the encoder through `classify`, encoder-decoders through `generate`)
at each precision it declares, through the worker with timing off, so the reference and the
tolerance are the workload's own. References (the specifications others are checked
against) are not rows. On CUDA the shapes are the ones the suites time there (head dim 128,
a thousand tokens, off the tiles, grouped heads), and triton_flash is checked again at each
of its autotune configurations; on the CPU they are small. The selective scan is checked at
two channel blocks, forward and backward.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from harness.case import Case
from harness.doctor import kernels
from harness.doctor.checks import Row, Variant, case_variant, judge
from impls import registry


@dataclass(frozen=True)
class AttentionShape:
    heads: int
    kv_heads: int
    seq_len: int
    kv_len: int
    head_dim: int
    causal: bool

    def __str__(self) -> str:
        return (f"{'causal' if self.causal else 'not causal'}, Hq {self.heads} / Hkv {self.kv_heads}, "
                f"N {self.seq_len}, M {self.kv_len}, D {self.head_dim}")


# Off the 16-, 32-, 64- and 128-wide tiles; grouped heads; a causal diagonal shifted by M > N.
ATTENTION_SHAPES = {
    "cpu": [AttentionShape(4, 2, 33, 33, 32, False), AttentionShape(4, 4, 33, 33, 32, True),
            AttentionShape(4, 2, 17, 40, 32, True)],
    "cuda": [AttentionShape(16, 4, 1000, 1000, 128, False), AttentionShape(16, 16, 1000, 1000, 128, True),
             AttentionShape(16, 4, 1000, 1100, 128, True), AttentionShape(8, 8, 1000, 1000, 64, False)],
}
SCAN_SHAPES = {
    "cpu": [kernels.ScanShape(1, 6, 3, 9, None), kernels.ScanShape(1, 8, 3, 7, 2)],
    # 130 and 97 steps: a dozen checkpoint chunks (K ~ sqrt(L)) and a ragged last one, while the
    # fp64 reference's step-by-step loop stays around a second
    "cuda": [kernels.ScanShape(2, 96, 16, 130, None), kernels.ScanShape(2, 96, 16, 97, 2)],
}
SCAN_BLOCKS = {"cpu": (4, 16), "cuda": (16, 64)}
# Model-level checks compare the full forward with prefill + steps; on a GPU every float precision.
MODEL_PRECISIONS = {"cpu": ("fp32",), "cuda": ("fp32", "fp16", "bf16")}
MODEL_SIZE = {"d_model": 64, "n_layers": 2, "batch": 2, "seq_len": 32}
# A model row beside the presets: a param that swaps in another impl of a part.
MODEL_VARIANTS = [("mamba", {"scan": "triton"})]


@dataclass(frozen=True)
class Planned:
    group: str
    impl: str
    precision: str
    what: str  # the precision, and a kernel configuration's knobs
    variants: list[Variant]


def rows(device: str, only: list[str] | None = None, precisions: list[str] | None = None) -> list[Planned]:
    """Every row on `device`, or those of the impls and precisions named."""
    # the Triton kernels first: on a short GPU loan (--budget-s) they are what only a GPU can
    # check; impls that compile at each shape last, so their compiles cannot crowd out the rest
    planned = flash_configuration_rows(device) + scan_rows(device) + attention_rows(device) + model_rows(device)
    planned.sort(key=_compiles_per_shape)  # stable: the order above within each part
    return [row for row in planned if (not only or row.impl in only or row.impl.split("[")[0] in only)
            and (not precisions or row.precision in precisions)]


def _compiles_per_shape(row: Planned) -> bool:
    return row.group == "attention" and bool(registry.get("attention", row.impl).compiles_per_shape)


def run(device: str, only: list[str] | None = None, precisions: list[str] | None = None, on_row=None,
        budget_s: float | None = None) -> list[Row]:
    """Judge every planned row in turn; `on_row(row)` after each (progress). Past `budget_s`
    seconds no row is started: the rest are `skipped`, saying so (a short GPU loan is spent
    on the rows that fit, and the table still says what was not checked)."""
    start = time.monotonic()
    judged = []
    for row in rows(device, only, precisions):
        if budget_s is not None and time.monotonic() - start > budget_s:
            judged.append(Row(row.group, row.impl, row.what, "skipped", None,
                              f"not reached within --budget-s {budget_s:g}"))
        else:
            judged.append(judge(row.group, row.impl, row.what, row.variants))
        if on_row:
            on_row(judged[-1])
    return judged


def attention_rows(device: str) -> list[Planned]:
    planned = []
    for name in registry.names("attention"):
        impl = registry.get("attention", name)
        if _is_reference(name):
            continue
        for precision in sorted(impl.precisions):
            shapes = ATTENTION_SHAPES[device]
            variants = [case_variant(f"{shape}, {'fwd+bwd' if impl.backward else 'fwd'}",
                                     _attention_case(name, device, precision, shape, impl.backward))
                        for shape in shapes]
            if impl.backward:  # the forward alone too, where a device has no backward (flex on a CPU)
                variants.append(case_variant(f"{shapes[0]}, fwd", _attention_case(name, device, precision,
                                                                                   shapes[0], False)))
            planned.append(Planned("attention", name, precision, precision, variants))
    return planned


def flash_configuration_rows(device: str) -> list[Planned]:
    """triton_flash at each autotune configuration, fp16 and bf16 (on the CPU the interpreter
    has one small tile, which the attention rows already check)."""
    if device != "cuda" or not registry.available(registry.get("attention", "triton_flash"), device, "fp16")[0]:
        return []
    planned = []
    for label, forward, backward in kernels.flash_configurations():
        for precision in ("fp16", "bf16"):
            variants = [kernels.pinned_flash(case_variant(f"{shape}, fwd+bwd",
                                                          _attention_case("triton_flash", device, precision, shape,
                                                                          True)), forward, backward)
                        for shape in ATTENTION_SHAPES[device][:3]]  # head dim 128: the tiles' largest
            planned.append(Planned("triton_flash tiles", "triton_flash", precision, f"{precision}: {label}", variants))
    return planned


def scan_rows(device: str) -> list[Planned]:
    precisions = ("fp32", "fp16", "bf16")
    return [Planned("selective scan", "mamba_triton", precision, f"{precision}, block_d {block}",
             [kernels.scan_variant(device, precision, shape, block) for shape in SCAN_SHAPES[device]])
            for block in SCAN_BLOCKS[device] for precision in precisions]


def model_rows(device: str) -> list[Planned]:
    planned = []
    presets = [(name, {}) for name in registry.names("model")] + MODEL_VARIANTS
    for name, params in presets:
        shown = name + "".join(f"[{k}={v}]" for k, v in params.items())
        for precision in MODEL_PRECISIONS[device]:
            planned.append(Planned("model", shown, precision, precision,
                            [_model_variant(name, shown, device, precision, params)]))
    for family, workload, size in (("encoder", "classify", {"d_model": 64, "n_layers": 1, "seq_len": 128,
                                                             "direction": "fwd"}),
                                   ("seq2seq", "generate", {"d_model": 64, "n_layers": 1, "src_len": 16,
                                                            "new_tokens": 8})):
        for name in registry.names(family):
            for precision in MODEL_PRECISIONS[device]:
                case = _case(workload, family, name, name, device, {**size, "precision": precision}, ())
                planned.append(Planned(family, name, precision, precision, [case_variant(_describe(size), case)]))
    return planned


def _model_variant(name: str, shown: str, device: str, precision: str, params: dict[str, Any]) -> Variant:
    if registry.get("model", name).fixed_size:  # a checkpoint preset: nothing to build here
        return Variant("a local checkpoint", lambda: {
            "status": "skipped", "reason": "needs a local checkpoint (params: checkpoint); check it with "
                                           "`harness run --check-only` on a suite that names one", "metrics": {}})
    case = _case("model", "model", name, shown, device, {**MODEL_SIZE, **params, "precision": precision},
                 tuple(params))
    return case_variant(f"forward vs prefill + steps, {_describe(MODEL_SIZE)}", case)


def _attention_case(name: str, device: str, precision: str, shape: AttentionShape, backward: bool) -> Case:
    params = {"batch": 2, "heads": shape.heads, "kv_heads": shape.kv_heads, "seq_len": shape.seq_len,
              "kv_len": shape.kv_len, "head_dim": shape.head_dim, "causal": shape.causal,
              "direction": "fwd_bwd" if backward else "fwd", "precision": precision}
    return _case("op", "attention", name, name, device, params, ())


def _case(workload: str, family: str, name: str, label: str, device: str, params: dict[str, Any],
          impl_params: tuple[str, ...]) -> Case:
    return Case(suite="doctor", workload=workload, family=family, impl=name, label=label, params=params,
                impl_params=impl_params, axes=(), device=device)


def _is_reference(name: str) -> bool:
    """The exact fp64 reference and each approximation's own reference are specifications."""
    return name == "reference" or name.endswith("_reference") or any(
        registry.get("attention", other).reference == name for other in registry.names("attention"))


def _describe(size: dict[str, Any]) -> str:
    return ", ".join(f"{key} {value}" for key, value in size.items())

