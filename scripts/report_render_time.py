"""Time a seqbench HTML report in headless Chromium: the page's own clock from navigation
to its load event (every inline plotly figure drawn by then), and the browser's wall time.

    python scripts/report_render_time.py reports/attention.html [--browser chromium]
"""
from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

# Written into the page ahead of everything else; reads the clock at the load event (the
# report draws its figures in inline scripts, so they are drawn by then). No virtual time
# budget: it would let the page's clock run ahead of the real one.
PROBE = """<script>window.addEventListener('load', function () {
  var n = document.createElement('pre'); n.id = 'seqbench-load-ms';
  n.textContent = String(performance.now()); document.body.appendChild(n); });</script>"""


def render(report: Path, binary: str) -> tuple[float, float, int]:
    """(page load ms, browser wall s, figures drawn)."""
    with tempfile.TemporaryDirectory() as folder:
        page = Path(folder) / "probed.html"
        page.write_text(report.read_text().replace("<head>", "<head>" + PROBE, 1))
        start = time.perf_counter()
        dom = subprocess.run([binary, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                              f"--user-data-dir={folder}/profile", "--window-size=1280,2400",
                              "--dump-dom", page.as_uri()],
                             capture_output=True, text=True, timeout=600, check=True).stdout
        wall = time.perf_counter() - start
    found = re.search(r'<pre id="seqbench-load-ms">([\d.]+)</pre>', dom)
    if not found:
        raise SystemExit("the page never finished loading")
    return float(found.group(1)), wall, dom.count("main-svg")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("report", type=Path)
    parser.add_argument("--browser", default=shutil.which("chromium") or "chromium")
    args = parser.parse_args()
    load_ms, wall_s, svgs = render(args.report, args.browser)
    size = args.report.stat().st_size
    print(f"{args.report}: {size / 2**20:.1f} MiB, load event at {load_ms / 1e3:.2f} s "
          f"(browser wall {wall_s:.1f} s), {svgs} plotly svg layers drawn")


if __name__ == "__main__":
    main()
