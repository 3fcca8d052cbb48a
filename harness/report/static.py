"""`report --static DIR`: every figure of a report as a PNG and an SVG, for papers and slides.

Plotly draws the images through kaleido (1.x), which drives a Chrome or Chromium installed on
the machine. Where either is missing the images are skipped with the reason, and the HTML
report is written all the same.
"""
from __future__ import annotations

import importlib.util
from pathlib import Path

import plotly.graph_objects as go
import plotly.io as pio

FORMATS = ("png", "svg")
WIDTH = 1100  # px: the report's figure width on a laptop screen
PNG_SCALE = 2  # sharp on slides


KALEIDO = "kaleido"  # the module plotly exports images through


class NoRenderer(Exception):
    """No image renderer can run here; the message says why."""


def renderer_missing() -> str | None:
    """Why no image can be drawn here, or None when kaleido is installed (it finds the browser)."""
    if importlib.util.find_spec(KALEIDO) is None:
        return "kaleido is not installed (pip install 'seqbench[report]')"
    return None


def write_static(figures: list[tuple[str, go.Figure]], folder: Path) -> list[Path]:
    """Writes <name>.png and <name>.svg per figure into `folder`; returns the paths written.
    Raises NoRenderer when kaleido or a browser for it is missing."""
    missing = renderer_missing()
    if missing:
        raise NoRenderer(missing)
    folder.mkdir(parents=True, exist_ok=True)
    still = [still_image(figure) for _, figure in figures]
    paths = [folder / f"{name}.{fmt}" for fmt in FORMATS for name, _ in figures]
    formats = [fmt for fmt in FORMATS for _ in figures]
    heights = [int(f.layout.height or 460) for f in still] * len(FORMATS)
    scales = [PNG_SCALE if fmt == "png" else 1 for fmt in formats]
    try:
        pio.write_images(still * len(FORMATS), paths, format=formats, width=WIDTH, height=heights, scale=scales)
    except Exception as err:  # kaleido's and choreographer's own errors: no browser, a browser that died
        if type(err).__module__.split(".")[0] not in ("kaleido", "choreographer", "plotly"):
            raise
        raise NoRenderer(f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else 'no message'}") from err
    return paths


def still_image(figure: go.Figure) -> go.Figure:
    """A copy to draw as an image: the dropdown is dropped and the title names the entry shown
    (the first), so the picture says which combination it is."""
    still = go.Figure(figure)
    menus = still.layout.updatemenus
    if menus and menus[0].buttons:
        shown = menus[0].buttons[0].label
        still.layout.updatemenus = ()
        still.update_layout(title_text=f"{still.layout.title.text or ''} ({shown})")
    return still
