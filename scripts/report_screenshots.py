"""One screenshot per page of a seqbench HTML report (Headline, Runs, each workload, ...), as a
newcomer sees it at 1280 px wide, in headless Chromium.

    python scripts/report_screenshots.py reports/decoding.html shots/ [--height 1400]

Writes shots/<n>-<page>.png, each the top `height` px of one page (h2 section).
"""
from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

PROBE = """<script>window.addEventListener('load', function () {
  var found = Array.prototype.map.call(document.querySelectorAll('section'), function (s) {
    return {title: s.querySelector('h2').textContent, top: s.getBoundingClientRect().top + window.scrollY}; });
  var n = document.createElement('pre'); n.id = 'seqbench-pages'; n.textContent = JSON.stringify(found);
  document.body.appendChild(n); });</script>"""


def chromium(binary: str, folder: str, page: Path, *args: str) -> str:
    return subprocess.run([binary, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                           "--hide-scrollbars", f"--user-data-dir={folder}/profile", "--virtual-time-budget=8000",
                           *args, page.as_uri()], capture_output=True, text=True, timeout=300, check=True).stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("report", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--height", type=int, default=1400)
    parser.add_argument("--browser", default=shutil.which("chromium") or "chromium")
    args = parser.parse_args()
    html = args.report.read_text()
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as folder:
        probed = Path(folder) / "probed.html"
        probed.write_text(html.replace("<head>", "<head>" + PROBE, 1))
        dom = chromium(args.browser, folder, probed, "--window-size=1280,1400", "--dump-dom")
        pages = json.loads(re.search(r'<pre id="seqbench-pages">(.*?)</pre>', dom, re.S).group(1).replace("&quot;", '"'))
        for i, page in enumerate(pages):
            shifted = Path(folder) / "shifted.html"  # the page moved up to its section: a screenshot shows the top
            shifted.write_text(html.replace("<head>", f"<head><style>html{{margin-top:-{int(page['top'])}px}}</style>", 1))
            name = "-".join(re.findall(r"[a-z0-9]+", page["title"].lower()))
            chromium(args.browser, folder, shifted, f"--window-size=1280,{args.height}",
                     f"--screenshot={args.out / f'{i}-{name}.png'}")
            print(args.out / f"{i}-{name}.png")


if __name__ == "__main__":
    main()
