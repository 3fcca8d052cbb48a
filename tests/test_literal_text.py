"""Labels, reasons and paths are the user's text: printed as written in the terminal, the
report and Markdown, never read as markup (rich's [tags], Markdown's *emphasis* or <html>)."""
from __future__ import annotations

import io
from contextlib import redirect_stdout

import pytest
import yaml

from harness import cli
from harness.markdown import literal
from tests.conftest import run_in_process, tiny_attention_suite

LABELS = ["local[w=16]", "local[w=32]", "naive[/x]", "*bold* <b>b</b> | [link](x) `code` ~strike~"]


@pytest.fixture(scope="module")
def run_with_markup_labels(tmp_path_factory):
    """(run folder, what `run` printed) of a run whose labels and --out folder look like markup."""
    root = tmp_path_factory.mktemp("labels")
    impls = [{"name": "local", "label": LABELS[0], "params": {"window": 16}},
             {"name": "local", "label": LABELS[1], "params": {"window": 32}},
             {"name": "naive", "label": LABELS[2]}, {"name": "sdpa_math", "label": LABELS[3]}]
    path = root / "suite.yaml"
    path.write_text(yaml.safe_dump(tiny_attention_suite(impls=impls, sweep={"seq_len": [64]})))
    printed = io.StringIO()
    with pytest.MonkeyPatch.context() as patch, redirect_stdout(printed):
        run_in_process(patch)
        code = cli.main(["run", str(path), "--out", str(root / "out[1]")])
    assert code == 0  # a `[/x]` label crashed the progress display mid-run
    return next((root / "out[1]").iterdir()), printed.getvalue()


def test_the_terminal_shows_labels_and_paths_as_written(run_with_markup_labels):
    run_dir, out = run_with_markup_labels
    for label in LABELS[:3]:
        assert label in out
    assert all(part in out for part in ("*bold*", "<b>b</b>", "[link](x)"))  # its cell wraps
    assert f"results in {run_dir}" in out  # the folder name holds "[1]"


def test_compare_markdown_renders_labels_literally(run_with_markup_labels, tmp_path, capsys):
    run_dir, _ = run_with_markup_labels
    other = tmp_path / "copy"
    other.mkdir()
    for name in ("records.jsonl", "env.json", "suite.yaml"):
        (other / name).write_bytes((run_dir / name).read_bytes())
    assert cli.main(["compare", str(run_dir), str(other), "--markdown", "--metric", "median_ms"]) == 0
    out = capsys.readouterr().out
    assert "| local\\[w=16\\] \\[seq_len=64\\] |" in out
    assert "\\*bold\\* &lt;b&gt;b&lt;/b&gt; \\| \\[link\\](x) \\`code\\` \\~strike\\~" in out


@pytest.mark.parametrize("text, markdown", [
    ("seq_len", "seq_len"),  # an underscore inside a word is never emphasis: left readable
    ("_x_", "\\_x\\_"),
    ("a|b\nc", "a\\|b c"),
    ("<script>&amp;", "&lt;script&gt;&amp;amp;"),
    ("\\[x]", "\\\\\\[x\\]"),
])
def test_markdown_literal_escapes_what_inline_markdown_would_act_on(text, markdown):
    assert literal(text) == markdown


def test_suite_yaml_of_such_a_run_keeps_the_labels(run_with_markup_labels):
    run_dir, _ = run_with_markup_labels
    saved = yaml.safe_load((run_dir / "suite.yaml").read_text())
    assert [entry["label"] for entry in saved["impls"]] == LABELS


def test_the_progress_bar_shows_a_label_that_looks_like_a_closing_tag(monkeypatch):
    from rich.console import Console

    from harness import console

    screen = io.StringIO()
    monkeypatch.setattr(console, "console", Console(file=screen, force_terminal=True, width=100))
    with console.progress(2) as advance:
        advance({"label": "naive[/x]", "status": "ok"})  # rich read this as a closing tag and raised
        advance({"label": "local[w=16]", "status": "error"})
    assert "naive[/x]" in screen.getvalue() and "local[w=16] (error)" in screen.getvalue()
