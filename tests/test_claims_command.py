"""`python -m harness claims`: the terminal table and markdown carry every column, bad input is
one line and exit status 2, and --run-missing measures what the runs lack, on a tiny claims
file and suite in tmp_path."""
from __future__ import annotations

import io
from contextlib import redirect_stdout

import pandas as pd
import pytest
import torch
import yaml
from rich.console import Console

from harness import cli, results
from harness.claims import model
from harness.claims.evaluate import evaluate
from harness.commands.claims import markdown, table
from tests.conftest import TINY_MEASURE, run_in_process, tiny_attention_suite


def tiny_claims(suite_path) -> list[dict]:
    common = {"source": "a test", "locator": "Table 1", "published": "PUBLISHED-FIGURE", "suite": str(suite_path),
              "band_reason": "BAND-REASON", "scaling": "SCALING-TEXT"}
    return [
        {"id": "tiny_ratio", "claim": "naive takes at least a hundredth of sdpa_math's time",
         "conditions": "PAPER-CONDITIONS", "metric": {"kind": "ratio", "numerator": "naive",
                                                      "denominator": "sdpa_math", "match": ["seq_len"]},
         "claimed": {"at_least": 0.01}, "hardware": "Imaginary GPU 9000", "carries": "CARRIES-TEXT", **common},
        {"id": "tiny_exponent", "claim": "naive's time grows with N", "conditions": "any device",
         "metric": {"kind": "exponent", "numerator": "naive", "axis": "seq_len"},
         "claimed": {"at_least": -10.0}, **common},
        {"id": "tiny_gpu", "claim": "something only a GPU shows", "conditions": "a GPU",
         "metric": {"kind": "ratio", "numerator": "naive", "denominator": "sdpa_math", "match": ["seq_len"]},
         "claimed": {"at_least": 1.0}, "needs": {"device": "cuda"}, **common},
    ]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """(claims file, results folder, claims' output, markdown text) after one
    `claims --run-missing` over the CPU claims; its cases run in this process."""
    root = tmp_path_factory.mktemp("claims")
    suite = root / "suite.yaml"
    suite.write_text(yaml.safe_dump(tiny_attention_suite(
        impls=["naive", "sdpa_math"], sweep={"seq_len": [16, 32, 64]}, measure={**TINY_MEASURE, "threads": 1})))
    claims, out, markdown_file = root / "claims.yaml", root / "results", root / "claims.md"
    claims.write_text(yaml.safe_dump({"claims": tiny_claims(suite)}, sort_keys=False))
    threads = torch.get_num_threads()
    with pytest.MonkeyPatch.context() as patch, redirect_stdout(io.StringIO()) as printed:
        run_in_process(patch)
        status = run_claims("--claims", str(claims), "--run-missing", "--out", str(out), "--only", "tiny_ratio",
                            "--only", "tiny_exponent", "--markdown", str(markdown_file))
    torch.set_num_threads(threads)
    assert status == 0
    return claims, out, printed.getvalue(), markdown_file.read_text()


def run_claims(*args: str) -> int:
    return cli.main(["claims", *args])


def test_run_missing_measures_the_claims_the_runs_lack(tiny):
    claims, out, printed, text = tiny
    runs = list(out.iterdir())
    assert len(runs) == 1  # one run of the suite serves both claims
    frame = results.load(runs[0])
    assert all(evaluate(c, frame, "cpu").values for c in model.load(claims) if c.id != "tiny_gpu")
    assert text.count("| reproduced |") == 2  # the markdown of the same verdicts
    assert printed.startswith(f"running {claims.parent / 'suite.yaml'} for claims")


def test_markdown_has_every_column_and_the_hardware_note(tiny):
    _, out, _, text = tiny
    run = next(out.iterdir())
    header = next(line for line in text.splitlines() if line.startswith("| claim |"))
    for column in ("source (primary, with locator)", "their conditions", "our conditions", "band",
                   "measured (95% interval) per point", "verdict", "measured where", "kernel path"):
        assert f"| {column} |" in header
    ratio_row = next(line for line in text.splitlines() if "**tiny_ratio**" in line)
    for cell in ("PAPER-CONDITIONS", "SCALING-TEXT", "CARRIES-TEXT", "PUBLISHED-FIGURE", "BAND-REASON", "Table 1",
                 "at seq_len=16", run.name,
                 f"measured on {results.hardware(run)} (a CPU), the source on Imaginary GPU 9000: the ratio carries"):
        assert cell in ratio_row


def rendered(verdicts, width: int = 400) -> str:
    console = Console(width=width, record=True, color_system=None)
    console.print(table(verdicts, "a test machine"))
    return console.export_text()


def test_the_terminal_table_has_the_source_conditions_scaling_and_how_far_it_carries(tiny):
    claims, out, _, _ = tiny
    frame = results.load(*out.iterdir())
    text = rendered([evaluate(c, frame, "cpu") for c in model.load(claims)])
    for column in ("their conditions", "our conditions", "band", "kernel path"):
        assert column in text
    for cell in ("PAPER-CONDITIONS", "SCALING-TEXT", "CARRIES-TEXT", "a test, Table 1", "reproduced", "timing samples"):
        assert cell in text
    if not torch.cuda.is_available():
        assert "not applicable here" in text and "needs a CUDA GPU" in text


def test_long_cells_wrap_in_a_narrow_terminal_instead_of_being_cut(tiny):
    claims = tiny[0]
    verdicts = [evaluate(c, pd.DataFrame(), "cpu") for c in model.load(claims)]
    text = rendered(verdicts, width=80)
    assert "…" not in text
    assert all(column.overflow == "fold" and not column.no_wrap for column in table(verdicts, "x").columns)


def test_without_runs_cpu_claims_are_not_measured_and_gpu_claims_not_applicable():
    frame = pd.DataFrame()
    verdicts = {c.id: evaluate(c, frame, "cpu") for c in model.load()}
    assert verdicts["kv_cache_linear_generation"].verdict == "not measured"
    assert "suites/claims/kv_cache.yaml" in verdicts["kv_cache_linear_generation"].note
    if not torch.cuda.is_available():
        gpu = verdicts["flash_attention_speedup"]
        assert gpu.verdict == "not applicable here" and gpu.note == "needs a CUDA GPU"
    assert "not measured" in markdown(list(verdicts.values()), "no runs")


@pytest.mark.parametrize("args, says", [
    (["results/surely-not-a-run"], "not a run folder"),
    (["--only", "no_such_claim"], "--only no_such_claim: no such claim"),
])
def test_bad_input_is_one_line_and_exit_status_2(args, says, capsys):
    assert run_claims(*args) == 2
    err = capsys.readouterr().err
    assert says in err and err.count("\n") == 1 and "Traceback" not in err


def test_a_malformed_claims_file_is_one_line_naming_the_key(tmp_path, capsys):
    bad = tmp_path / "claims.yaml"
    bad.write_text(yaml.safe_dump({"claims": [{"id": "x", "claim": "y"}]}))
    assert run_claims("--claims", str(bad)) == 2
    err = capsys.readouterr().err
    assert str(bad) in err and "claims.0." in err and err.count("\n") == 1
