"""The transformers baseline (impls/models/hf.py): transformers' own model and generate on a
local checkpoint, beside seqbench's `pretrained` on the same folder; prompts from the
model's own vocabulary or the corpus."""
from __future__ import annotations

import importlib.util
import json

import pytest
import torch
import yaml

from harness import cli, results
from harness.errors import Skip
from harness.quality import corpus
from harness.workloads import generate, prompts
from impls import registry, requirements
from tests.conftest import ROOT, TINY_MEASURE, make_case, prepare

VOCAB = 300  # above the byte-level BPE's 257 and the corpus's 103 characters


def _make_tiny_gpt2():
    spec = importlib.util.spec_from_file_location("make_tiny_gpt2", ROOT / "scripts" / "make_tiny_gpt2.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.make


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tiny_gpt2")
    return _make_tiny_gpt2()(folder, d_model=32, layers=2, heads=4, vocab=VOCAB, positions=96)


def test_without_transformers_the_baseline_is_skipped_with_the_reason(monkeypatch):
    monkeypatch.setattr(requirements, "_importable", lambda name: name != "transformers")
    assert registry.available(registry.get("model", "transformers"), "cpu", "fp32") == (
        False, "transformers is not installed")


@pytest.mark.parametrize("options, says", [({"strategy": "speculative"}, "not speculative"),
                                           ({"cache": "window", "window": 8}, "not window"),
                                           ({"cache": "static", "compile": True}, "compiled step"),
                                           ({"weights": "int8"}, "int8")])
def test_decode_modes_transformers_does_not_run_are_skipped_with_the_reason(checkpoint, options, says):
    pytest.importorskip("transformers")
    with pytest.raises(Skip, match=says):
        prepare(make_case("generate", "model", "transformers", checkpoint=str(checkpoint), **options))


def test_prompts_come_from_the_checkpoints_vocabulary_not_vocab_size(checkpoint):
    case = make_case("generate", "model", "pretrained", checkpoint=str(checkpoint), vocab_size=256,
                     prompt_len=64, new_tokens=2, batch=4)
    _, _, prompt, _ = generate._models_and_prompt(case, case.typed)
    # 256 random prompt ids under vocab 300 reach above 256 (chance of none: (256/300)^256)
    assert int(prompt.max()) >= 256 and int(prompt.max()) < VOCAB


def test_corpus_prompts_read_the_checkpoints_tokenizer_or_characters(checkpoint):
    case = make_case("generate", "model", "pretrained", checkpoint=str(checkpoint), prompt="corpus")
    from tokenizers import Tokenizer

    text = corpus.default_text()
    valid = text[int(len(text) * (1 - corpus.VALIDATION_FRACTION)):]
    expected = Tokenizer.from_file(str(checkpoint / "tokenizer.json")).encode(valid).ids
    assert prompts.corpus_ids(case, VOCAB).tolist() == expected
    preset = make_case("generate", "model", "transformer", prompt="corpus")
    assert torch.equal(prompts.corpus_ids(preset, 256), corpus.load().valid)
    with pytest.raises(Skip, match="103"):
        prompts.corpus_ids(preset, 64)


def test_pretrained_tokens_equal_the_transformers_baseline_through_the_harness(checkpoint, tmp_path):
    """The shipped suite, at a smaller size: every decode mode both run gives equal tokens,
    and both record the per-call latencies and the load."""
    pytest.importorskip("transformers")
    suite = yaml.safe_load((ROOT / "suites" / "decoding_hf.yaml").read_text())
    for impl in suite["impls"]:
        impl["params"]["checkpoint"] = str(checkpoint)
    suite["fixed"].update(prompt_len=8, new_tokens=12)
    suite["measure"] = {**TINY_MEASURE, "min_reps": 6, "max_reps": 6, "max_time_s": 5, "threads": 1}
    path = tmp_path / "suite.yaml"
    path.write_text(yaml.safe_dump(suite))
    assert cli.main(["run", str(path), "--device", "cpu", "--out", str(tmp_path / "out")]) == 0
    run_dir = next((tmp_path / "out").iterdir())
    records = [r for r in results.read_records(run_dir) if r["status"] != "skipped"]
    assert {r["status"] for r in records} == {"ok"}, [r["reason"] for r in records]
    by_point = {}
    for r in records:
        by_point.setdefault(json.dumps([r["params"]["strategy"], r["params"]["prompt"]]), {})[r["label"]] = r
    assert len(by_point) == 4
    for point, pair in by_point.items():
        ours, theirs = pair["seqbench"], pair["transformers"]
        assert ours["metrics"]["tokens_digest"] == theirs["metrics"]["tokens_digest"], point
        assert ours["metrics"]["load_ms"] > 0 and theirs["metrics"]["load_ms"] > 0
        assert len(ours["metric_samples"]["itl_p50_ms"]) >= 6
        if "beam" not in point:  # transformers streams no tokens from beam search
            assert len(theirs["metric_samples"]["time_to_first_token_ms"]) >= 6
