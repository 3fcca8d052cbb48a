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
    ({"impls": [{"name": "naive", "parms": {}}]}, "impls[0].parms", "valid: name, label, params"),
    ({"impls": [5]}, "impls[0]", "valid string"),
    ({"impls": [{"name": "local", "params": {"window": "big"}}]}, "impls[0].params.window", "expected an integer"),
    ({"impls": [{"name": "local", "params": {"window": -5}}]}, "impls[0].params.window", "at least 1 (got -5)"),
    ({"impls": [{"name": "local", "params": {"window": True}}]}, "impls[0].params.window", "expected an integer"),
    ({"impls": [{"name": "bigbird", "params": {"pattern_seed": -1}}]}, "impls[0].params.pattern_seed", "at least 0"),
    ({"impls": ["local"], "sweep": {"seq_len": [16], "window": [0, -4]}}, "sweep.window", "at least 1 (got 0)"),
    ({"fixed": {"batch": 1, "heads": True, "head_dim": 16}}, "fixed.heads", "valid integer (got True)"),
    ({"measure": {"min_reps": 5, "max_reps": 2}}, "measure.max_reps", "at least min_reps (5) (got 2)"),
    ({"measure": {"warmup": True}}, "measure.warmup", "valid integer"),
    ({"devices": {"cpu": {"measure": {"max_reps": 1}}}}, "devices.cpu.measure: max_reps", "at least min_reps"),
    ({"constraints": [{"require": "seq_len / (heads - 2) > 0"}]}, "constraints[0].require",
     "cannot be evaluated at heads=2, seq_len=16: division by zero"),
    ({"constraints": [{"require": "impl * 2 == 0"}]}, "constraints[0].require", "arithmetic needs numbers"),
])
def test_bad_suite_is_one_line_naming_file_and_key(write_suite, capsys, change, key, fragment):
    path = write_suite(tiny_attention_suite(**change))
    code, err = run_dry(path, capsys)
    assert code == 2
    assert "\n" not in err
    assert err.startswith(f"error: {path}: {key}: ") or err.startswith(f"error: {path}: {key}")
    assert fragment in err


def test_impl_params_may_be_zero_where_the_pattern_allows_it(write_suite):
    from harness import suite as suites

    path = write_suite(tiny_attention_suite(impls=[
        {"name": "bigbird", "params": {"global_blocks": 0, "num_random_blocks": 0, "pattern_seed": 0}},
        {"name": "longformer", "params": {"global_tokens": 0, "window": 8}}]))
    assert len(suites.expand(suites.load(path), "cpu")) == 4


def test_a_key_given_twice_is_named(tmp_path, capsys):
    path = tmp_path / "twice.yaml"
    path.write_text("name: a\nworkload: op\nfamily: attention\nimpls: [naive]\nname: b\n")
    code, err = run_dry(path, capsys)
    assert code == 2 and err == f"error: {path}:5: invalid YAML: duplicate key 'name'"


def test_a_file_that_is_not_utf8_text(tmp_path, capsys):
    path = tmp_path / "binary.yaml"
    path.write_bytes(b"\xff\xfe")
    code, err = run_dry(path, capsys)
    assert code == 2 and err.startswith(f"error: {path}: not UTF-8 text") and "\n" not in err


def test_a_folder_given_as_suite(tmp_path, capsys):
    code, err = run_dry(tmp_path, capsys)
    assert code == 2 and err == f"error: {tmp_path}: is a folder, not a suite file"


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
    (["--where", "seq_len / 0 > 1"], "--where: 'seq_len / 0 > 1' cannot be evaluated at seq_len=16: division by zero"),
    (["--where", "label + 1 > 0"], "arithmetic needs numbers, not 'naive'"),
    (["--where", "2.0 ** 10000 > 1"], "the result is too large"),
    (["--where", "9**9**9 > 1"], "too large (over 4096 bits)"),  # refused, not computed for hours
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


@pytest.mark.parametrize("argv, fragment", [
    (["run", "suite.yaml", "--device", "tpu"], "python -m harness run: error: argument --device: invalid choice: 'tpu'"),
    (["run"], "python -m harness run: error: the following arguments are required: suite"),
    (["list", "--precision", "fp8"], "argument --precision: invalid choice: 'fp8' (choose from 'fp32'"),
    (["env", "--device", "x"], "python -m harness env: error: argument --device"),
    (["frob"], "python -m harness: error: argument COMMAND: invalid choice: 'frob'"),
])
def test_bad_command_line_is_one_line_with_status_2(capsys, argv, fragment):
    with pytest.raises(SystemExit) as exit:
        main(argv)
    err = capsys.readouterr().err.strip()
    assert exit.value.code == 2 and fragment in err and "\n" not in err


def test_a_plugin_that_cannot_be_imported_is_one_line(monkeypatch, capsys):
    from impls import registry

    monkeypatch.setattr(registry, "_loaded", False)
    monkeypatch.setenv("SEQBENCH_PLUGINS", "tests.fixtures.misbehaving, no_such_plugin")
    assert main(["list"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: SEQBENCH_PLUGINS: no module named 'no_such_plugin'") and "\n" not in err


def test_list_of_an_unknown_family_names_the_valid_ones(capsys):
    assert main(["list", "attn"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: list attn: unknown family (did you mean attention?); valid: attention, ")


def test_list_shows_cuda_only_impls_as_such_and_wraps_reasons(monkeypatch, capsys):
    from harness import console
    from impls import registry, requirements

    flash, naive = registry.get("attention", "flash_attn"), registry.get("attention", "naive")
    assert requirements.runs_on(flash.devices, flash.requires) == {"cuda"}  # requires capability 8.0
    assert requirements.runs_on(naive.devices, naive.requires) == {"cpu", "cuda"}
    monkeypatch.setattr(console.console, "width", 80)
    assert main(["list", "attention", "--precision", "int8"]) == 0
    out = capsys.readouterr().out
    assert "…" not in out  # nothing cut at 80 columns
    row = next(line for line in out.splitlines() if line.startswith("│ flash_attn "))
    assert row.split("│")[3].strip() == "cuda"
