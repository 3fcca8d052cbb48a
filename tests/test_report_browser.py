"""The report in a real browser (headless Chromium): no script errors, every figure drawn.

Errors are caught by a small recorder injected into a copy of the page ahead of
plotly.js: window 'error' events, unhandled promise rejections and
console.error calls are written into a <pre id="seqbench-errors"> that the
dumped DOM carries out. Chromium's own console log (--enable-logging) is
checked for uncaught exceptions too.
"""
from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from harness import cli

pytestmark = pytest.mark.slow

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")

RECORDER = """<script>
(function () {
  var errors = [];
  function show() {
    var node = document.getElementById('seqbench-errors');
    if (!node && document.body) {
      node = document.createElement('pre'); node.id = 'seqbench-errors'; document.body.appendChild(node);
    }
    if (node) node.textContent = JSON.stringify(errors);
  }
  function record(message) { errors.push(String(message)); show(); }
  window.addEventListener('error', function (e) { record('error: ' + e.message); });
  window.addEventListener('unhandledrejection', function (e) { record('rejection: ' + e.reason); });
  var original = console.error;
  console.error = function () { record('console.error: ' + Array.prototype.join.call(arguments, ' '));
                                original.apply(console, arguments); };
  window.addEventListener('load', show);
})();
</script>"""


def browser() -> str | None:
    return next((path for path in map(shutil.which, BROWSERS) if path), None)


# Written into a copy of the page: after load, how wide the page is against the window and
# how tall its tallest figure is, so a test can check it reads on a laptop screen.
LAYOUT_PROBE = """<script>window.addEventListener('load', function () {
  var plots = Array.prototype.map.call(document.querySelectorAll('.plotly-graph-div'),
                                       function (p) { return p.getBoundingClientRect().height; });
  var n = document.createElement('pre'); n.id = 'seqbench-layout';
  n.textContent = JSON.stringify({page_width: document.documentElement.scrollWidth,
                                  window_width: window.innerWidth, tallest_figure: Math.max.apply(null, plots)});
  document.body.appendChild(n); });</script>"""


def headless(binary: str, profile, *args: str, window: str = "1280,2400") -> subprocess.CompletedProcess:
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={profile}",
             "--enable-logging=stderr", "--v=0", "--virtual-time-budget=5000", f"--window-size={window}"]
    return subprocess.run([binary, *flags, *args], capture_output=True, text=True, timeout=180)


@pytest.fixture(scope="module")
def page(small_report, tmp_path_factory):
    binary = browser()
    if binary is None:
        pytest.skip(f"no Chromium/Chrome binary on PATH (looked for {', '.join(BROWSERS)}); "
                    "install it with: apt-get install -y chromium")
    folder = tmp_path_factory.mktemp("browser")
    html = small_report.read_text()
    instrumented = folder / "instrumented.html"
    instrumented.write_text(html.replace("<head>", "<head>" + RECORDER, 1))
    # one browser start for both: the DOM after scripts ran, and a picture of the page
    dom = headless(binary, folder / "profile", f"--screenshot={folder / 'report.png'}", "--dump-dom",
                   instrumented.as_uri())
    return {"html": html, "dom": dom, "folder": folder}


def test_page_runs_without_script_errors(page):
    dom = page["dom"]
    assert dom.returncode == 0, dom.stderr[-2000:]
    recorded = re.search(r'<pre id="seqbench-errors">(.*?)</pre>', dom.stdout, re.S)
    assert recorded, "the error recorder never ran: the page did not load"
    assert json.loads(recorded.group(1).replace("&quot;", '"')) == []
    assert "Uncaught" not in dom.stderr, dom.stderr[-2000:]  # chromium logs console messages there


def test_every_figure_is_drawn(page):
    figures = page["html"].count('class="plotly-graph-div"')
    assert figures >= 4
    assert page["dom"].stdout.count('class="plot-container plotly"') == figures
    assert page["dom"].stdout.count('class="main-svg"') >= figures  # plotly draws at least one svg per plot


def test_screenshot_is_saved(page):
    shot = page["folder"] / "report.png"
    assert shot.exists() and shot.stat().st_size > 50_000  # a blank page compresses to a few KB


def test_report_fits_a_laptop_screen(page):
    """1366x768: no sideways scrolling of the page, and each figure fits the screen's height."""
    probed = page["folder"] / "laptop.html"
    probed.write_text(page["html"].replace("<head>", "<head>" + LAYOUT_PROBE, 1))
    dom = headless(browser(), page["folder"] / "profile", "--dump-dom", probed.as_uri(), window="1366,768")
    found = re.search(r'<pre id="seqbench-layout">(.*?)</pre>', dom.stdout, re.S)
    assert found, dom.stderr[-2000:]
    layout = json.loads(found.group(1).replace("&quot;", '"'))
    assert layout["page_width"] <= layout["window_width"], layout
    assert 0 < layout["tallest_figure"] <= 640, layout  # 768 less the browser's own bars


# One report holding a page per workload, from small committed reference runs: generate (KV
# cache on and off), serve (policies), model (Mamba scaling), train (positional encodings); the
# op page is the small report's, above
WORKLOAD_RUNS = ("2026-12-02-claims_kv_cache", "2026-12-02-claims_serving_vllm", "2026-12-02-claims_mamba_scaling",
                 "2026-12-01-positional")
PAGES = {"generate / model": "Cache bytes against generated length", "serve / model": "Throughput against latency",
         "model / model": "Tokens/s against seq_len", "train / model": "Loss over steps"}

# After load: where each page (h2 section) sits and how many figures plotly drew. (The page's
# own clock runs on virtual time here; scripts/report_render_time.py reads it in real time.)
PAGE_PROBE = """<script>window.addEventListener('load', function () { setTimeout(function () {
  var pages = Array.prototype.map.call(document.querySelectorAll('section'), function (s) {
    var r = s.getBoundingClientRect();
    return {title: s.querySelector('h2').textContent, top: r.top + window.scrollY, height: r.height,
            drawn: s.querySelectorAll('.plot-container.plotly').length,
            figures: s.querySelectorAll('.plotly-graph-div').length};
  });
  var n = document.createElement('pre'); n.id = 'seqbench-pages';
  n.textContent = JSON.stringify({pages: pages});
  document.body.appendChild(n); }, 0); });</script>"""


@pytest.fixture(scope="module")
def workload_pages(tmp_path_factory):
    binary = browser()
    if binary is None:
        pytest.skip(f"no Chromium/Chrome binary on PATH (looked for {', '.join(BROWSERS)})")
    folder = tmp_path_factory.mktemp("pages")
    report = folder / "report.html"
    reference = Path(__file__).resolve().parents[1] / "results" / "reference"
    runs = [str(reference / f"cpu-epyc-2core-{name}") for name in WORKLOAD_RUNS]
    assert cli.main(["report", *runs, "-o", str(report)]) == 0
    html = report.read_text()
    probed = folder / "probed.html"
    probed.write_text(html.replace("<head>", "<head>" + RECORDER + PAGE_PROBE, 1))
    started = time.perf_counter()
    dom = headless(binary, folder / "profile", f"--screenshot={folder / 'pages.png'}", "--dump-dom",
                   probed.as_uri())
    browser_s = time.perf_counter() - started
    found = re.search(r'<pre id="seqbench-pages">(.*?)</pre>', dom.stdout, re.S)
    assert found, dom.stderr[-2000:]
    probe = json.loads(found.group(1).replace("&quot;", '"'))
    kept = {"report_bytes": len(html.encode()), "figures": html.count('class="plotly-graph-div"'),
            "browser_wall_s": round(browser_s, 2), "pages": probe["pages"]}
    (folder / "render.json").write_text(json.dumps(kept, indent=1))
    print(f"\nreport of {len(runs)} runs: {kept['report_bytes'] / 1e6:.2f} MB, {kept['figures']} figures, "
          f"loaded, drawn and captured by headless Chromium in {browser_s:.1f} s; {folder / 'render.json'}")
    return {"html": html, "dom": dom, "probe": probe, "folder": folder}


def test_every_workload_page_loads_without_script_errors(workload_pages):
    recorded = re.search(r'<pre id="seqbench-errors">(.*?)</pre>', workload_pages["dom"].stdout, re.S)
    assert recorded and json.loads(recorded.group(1).replace("&quot;", '"')) == []
    assert "Uncaught" not in workload_pages["dom"].stderr


def test_every_workload_has_its_page_with_its_figures_drawn(workload_pages):
    pages = {p["title"]: p for p in workload_pages["probe"]["pages"]}
    assert list(pages)[0] == "Headline"  # the answer first
    for title, figure in PAGES.items():
        assert pages[title]["figures"] >= 1 and pages[title]["drawn"] == pages[title]["figures"], pages[title]
        assert f"<h3>{figure}</h3>" in workload_pages["html"]
    assert (workload_pages["folder"] / "pages.png").stat().st_size > 50_000  # the headline, drawn
