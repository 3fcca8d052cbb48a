"""Limits checked up front: a suite too large to expand, a YAML document too large to build,
an expression too long or deep, and a worker's memory. Each is one line, exit status 2, at
once; a case that runs out of the worker's memory ends as `oom` and prunes its larger sizes."""
from __future__ import annotations

import subprocess
import sys
import time

import pytest

from harness import memory_limit, suite as suites, suite_file
from harness.cli import main
from harness.expr import MAX_DEPTH, MAX_LENGTH
from harness.results import load
from tests.conftest import PLUGINS, ROOT, TINY_MEASURE, harness_cli, tiny_attention_suite


def refused(path, capsys, *extra) -> str:
    code = main(["run", str(path), "--dry-run", *extra])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "\n" not in err and err.startswith("error: "), err
    return err


def test_a_sweep_past_the_case_limit_is_refused_with_its_count_before_expanding(write_suite, capsys):
    values = list(range(1, 101))
    path = write_suite(tiny_attention_suite(sweep={"seq_len": values, "batch": values, "heads": values,
                                                   "head_dim": values}, fixed={}))
    start = time.perf_counter()
    err = refused(path, capsys)
    assert time.perf_counter() - start < 5  # 10^8 cases took minutes and gigabytes to expand
    assert "expands to 100,000,000 cases on cpu, over the limit of 100,000" in err and "--max-cases" in err


def test_max_cases_moves_the_limit(write_suite, capsys):
    path = write_suite(tiny_attention_suite(impls=["naive", "sdpa_math"], sweep={"seq_len": [16, 32, 64]}))
    assert "expands to 6 cases on cpu, over the limit of 5" in refused(path, capsys, "--max-cases", "5")
    assert main(["run", str(path), "--dry-run", "--max-cases", "6"]) == 0
    assert "--max-cases 0: must be at least 1" in refused(path, capsys, "--max-cases", "0")


def test_a_device_section_is_counted_on_its_own_device(write_suite, capsys):
    path = write_suite(tiny_attention_suite(devices={"cuda": {"sweep": {"seq_len": list(range(1, 201))}}}))
    assert "expands to 200 cases on cuda, over the limit of 100" in refused(path, capsys, "--max-cases", "100")


def alias_bomb(levels: int) -> str:
    lines = ["name: bomb", "workload: op", "family: attention", "impls: [naive]", "fixed:",
             "  l0: &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    lines += [f"  l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 9)}]" for i in range(1, levels)]
    return "\n".join(lines) + "\n"


def test_a_yaml_alias_bomb_is_refused_before_it_is_built(tmp_path, capsys):
    path = tmp_path / "bomb.yaml"
    path.write_text(alias_bomb(9))  # 9^9 values once written out
    start = time.perf_counter()
    err = refused(path, capsys)
    assert time.perf_counter() - start < 5  # it ran 172 s to a MemoryError
    assert f"expands to over {suite_file.MAX_YAML_VALUES:,} values once its aliases" in err


def test_aliases_that_stay_small_are_fine(tmp_path):
    path = tmp_path / "ok.yaml"
    path.write_text("name: t\nworkload: op\nfamily: attention\nimpls: [naive]\n"
                    "sweep: {seq_len: &lens [16, 32]}\ndevices: {cpu: {sweep: {seq_len: *lens}}}\n"
                    "fixed: {batch: 1, heads: 2, head_dim: 16}\n")
    assert suites.load(path).devices["cpu"].sweep["seq_len"] == [16, 32]


@pytest.mark.parametrize("text, fragment", [
    ("name: r\nworkload: op\nfamily: attention\nimpls: &x [naive, *x]\n", "refers to the collection that contains it"),
    ("name: d\nworkload: op\nfamily: attention\nimpls: [naive]\nfixed: {x: " + "[" * 3000 + "]" * 3000 + "}\n",
     "nested too deeply"),
])
def test_recursive_and_deeply_nested_yaml_is_one_line(tmp_path, capsys, text, fragment):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    assert fragment in refused(path, capsys)


def test_a_suite_file_over_the_size_limit_is_refused_unread(tmp_path, capsys):
    path = tmp_path / "big.yaml"
    path.write_text("# " + "x" * suite_file.MAX_SUITE_BYTES + "\nname: big\n")
    assert f"a suite file is at most {suite_file.MAX_SUITE_BYTES:,}" in refused(path, capsys)


@pytest.mark.parametrize("where, fragment", [
    ("seq_len" + " + 1" * 1200 + " > 0", f"an expression is at most {MAX_LENGTH:,}"),
    ("not " * 5000 + "causal", f"an expression is at most {MAX_LENGTH:,}"),
    ("not " * (MAX_DEPTH + 1) + "causal", f"nested more than {MAX_DEPTH} deep"),
    ("seq_len" + " + 1" * (MAX_DEPTH + 1) + " > 0", f"nested more than {MAX_DEPTH} deep"),
])
def test_where_is_bounded_in_length_and_depth(write_suite, capsys, where, fragment):
    err = refused(write_suite(tiny_attention_suite()), capsys, "--where", where)
    assert err.startswith("error: --where: ") and fragment in err


def test_a_deep_but_allowed_expression_still_filters(write_suite, capsys):
    where = "not " * (MAX_DEPTH - 4) + "seq_len > 16"  # an even count of nots: seq_len > 16
    assert main(["run", str(write_suite(tiny_attention_suite())), "--dry-run", "--where", where]) == 0
    assert capsys.readouterr().out.strip().endswith("1 cases on cpu")


def test_the_default_memory_limit_is_a_share_of_the_machine():
    assert memory_limit.limit_bytes(None) == int(memory_limit.DEFAULT_SHARE * memory_limit.machine_bytes())
    assert memory_limit.limit_bytes(1.5) == int(1.5 * 2**30)


def test_a_worker_limit_turns_a_runaway_allocation_into_memory_error():
    code = ("from harness import memory_limit; memory_limit.apply(0.5)\n"
            "try:\n    bytearray(2**30)\nexcept MemoryError:\n    print('MemoryError')\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == "MemoryError", done.stderr


def test_memory_limit_is_a_measure_setting(write_suite, capsys):
    path = write_suite(tiny_attention_suite(measure={**TINY_MEASURE, "memory_limit_gib": -1}))
    assert "measure.memory_limit_gib: Input should be greater than 0" in refused(path, capsys)


RUNAWAY = """
import torch
from impls.registry import register

@register("attention", "py_runaway")
def py_runaway(q, k, v, *, causal, scale=None):
    hoard = []
    while True:
        hoard.append(bytearray(64 * 2**20))

@register("attention", "torch_runaway")
def torch_runaway(q, k, v, *, causal, scale=None):
    hoard = []
    while True:
        hoard.append(torch.ones(16 * 2**20))
"""


@pytest.mark.slow  # starts worker processes
def test_a_runaway_case_ends_as_oom_under_the_worker_limit_and_prunes_larger_sizes(write_suite, tmp_path):
    (tmp_path / "runaway.py").write_text(RUNAWAY)
    suite = tiny_attention_suite(impls=["py_runaway", "torch_runaway", "naive"], sweep={"seq_len": [16, 32]},
                                 measure={**TINY_MEASURE, "memory_limit_gib": 1.5})
    result = harness_cli("run", str(write_suite(suite)), "--out", str(tmp_path / "out"),
                         env_extra={"SEQBENCH_PLUGINS": f"{PLUGINS},runaway", "PYTHONPATH": f"{ROOT}:{tmp_path}"})
    assert result.returncode == 0, result.stderr
    frame = load(next((tmp_path / "out").iterdir())).set_index(["label", "seq_len"])
    for label in ("py_runaway", "torch_runaway"):
        assert frame.loc[(label, 16), "status"] == "oom", frame.loc[(label, 16), "reason"]
        assert frame.loc[(label, 32), "reason"] == "pruned: oom at seq_len=16"
    assert frame.loc[("py_runaway", 16), "reason"] == "MemoryError: out of memory"
    assert (frame.xs("naive", level="label")["status"] == "ok").all()  # the worker was replaced
