"""Every kind of bad suite is one line naming the file and the key, with exit status 2."""
from __future__ import annotations

import pytest

from harness.cli import main
from tests.conftest import harness_cli, tiny_attention_suite


def run_dry(path, capsys, *extra):
    code = main(["run", str(path), "--dry-run", *extra])
    err = capsys.readouterr().err.strip()
    return code, err


@pytest.mark.parametrize("change, key, fragment", [
    ({"sweep": {"seq_len": [-4]}}, "sweep.seq_len", "greater than or equal to 1"),
    ({"sweep": {"seq_len": [0]}}, "sweep.seq_len", "greater than or equal to 1"),
    ({"sweep": {"seq_len": ["long"]}}, "sweep.seq_len", "valid integer"),
    ({"sweep": {"precision": ["fp8"]}}, "sweep.precision", "'fp32', 'fp16', 'bf16' or 'int8'"),
    ({"sweep": {"seqlen": [16]}}, "sweep.seqlen", "did you mean seq_len"),
    ({"sweep": {"seq_len": []}}, "sweep.seq_len", "at least one value"),
    ({"impls": ["naiv"]}, "impls[0]", "did you mean naive"),
    ({"impls": [{"name": "naive", "params": {"window": 3}}]}, "impls[0].params.window", "takes no parameter"),
    ({"impls": ["naive", "naive"]}, "impls[1]", "appears twice"),
    ({"family": "atention"}, "family", "valid: attention"),
    ({"workload": "bench"}, "workload", "unknown workload 'bench'; valid: "),
    ({"measure": {"min_reps": 0}}, "measure.min_reps", "greater than or equal to 1"),
    ({"measure": {"warmups": 1}}, "measure.warmups", "did you mean warmup"),
    ({"colour": "blue"}, "colour", "unknown key"),
    ({"zip": [{"seq_len": [16, 32], "batch": [1]}]}, "zip[0]", "same length"),
    ({"fixed": {"batch": 1, "heads": 2, "head_dim": 16, "seq_len": 8}}, "fixed.seq_len", "also set in sweep"),
    ({"constraints": [{"require": "__import__('os')"}]}, "constraints[0].require", "not allowed"),
    ({"constraints": [{"require": "window < seq_len"}]}, "constraints[0].require", "unknown name 'window'"),
    ({"baseline": "flash"}, "baseline", "not one of this suite's impls"),
    ({"devices": {"tpu": {}}}, "devices.tpu", "'cpu' or 'cuda'"),
    ({"devices": {"cpu": {"sweep": {"head_dim": [8]}}}}, "devices.cpu.sweep.head_dim", "valid: seq_len"),
    ({"devices": {"cpu": {"sweep": {"seq_len": [0]}}}}, "devices.cpu: sweep.seq_len", "greater than or equal to 1"),
    ({"devices": {"cuda": {"measure": {"budget_s": -1}}}}, "devices.cuda.measure: budget_s", "greater than 0"),
    ({"devices": {"cuda": {"measure": {"budget": 1}}}}, "devices.cuda.measure.budget", "valid: warmup"),
])
def test_bad_suite_is_one_line_naming_file_and_key(write_suite, capsys, change, key, fragment):
    path = write_suite(tiny_attention_suite(**change))
    code, err = run_dry(path, capsys)
    assert code == 2
    assert "\n" not in err
    assert err.startswith(f"error: {path}: {key}: ") or err.startswith(f"error: {path}: {key}")
    assert fragment in err


def test_missing_key_is_named(write_suite, capsys):
    suite = tiny_attention_suite()
    del suite["workload"]
    code, err = run_dry(write_suite(suite), capsys)
    assert code == 2 and "workload: required key is missing" in err


def test_bad_yaml_names_the_line(tmp_path, capsys):
    path = tmp_path / "broken.yaml"
    path.write_text("name: x\nimpls: [naive\nsweep: {}\n")
    code, err = run_dry(path, capsys)
    assert code == 2 and f"{path}:" in err and "invalid YAML" in err


def test_yaml_that_is_not_a_mapping(tmp_path, capsys):
    path = tmp_path / "list.yaml"
    path.write_text("- naive\n- sdpa_math\n")
    code, err = run_dry(path, capsys)
    assert code == 2 and "must be a mapping" in err


def test_yaml_tags_are_never_constructed(tmp_path, capsys):
    path = tmp_path / "evil.yaml"
    path.write_text("name: !!python/object/apply:os.system ['echo pwned']\n")
    code, err = run_dry(path, capsys)
    assert code == 2 and "invalid YAML" in err


def test_missing_file(capsys, tmp_path):
    code, err = run_dry(tmp_path / "nope.yaml", capsys)
    assert code == 2 and "no such suite file" in err


@pytest.mark.parametrize("flags, fragment", [
    (["--where", "seqlen < 4"], "--where: "),
    (["--where", "seq_len <"], "cannot parse"),
    (["--where", "open('x')"], "not allowed"),
    (["--only", "flash9"], "--only flash9: not an impl"),
])
def test_bad_flags_are_one_line(write_suite, capsys, flags, fragment):
    code, err = run_dry(write_suite(tiny_attention_suite()), capsys, *flags)
    assert code == 2 and fragment in err and "\n" not in err


def test_user_error_has_no_traceback_as_a_user_sees_it(write_suite):
    path = write_suite(tiny_attention_suite(sweep={"seq_len": [-1]}))
    result = harness_cli("run", str(path))
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().count("\n") == 0
