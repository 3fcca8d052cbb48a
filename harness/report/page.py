"""Assembly of one self-contained HTML page: plotly.js inlined once, then every part.

Works offline: no script or style is fetched. Figures are divs that plotly.js
draws on load; tables and notes are plain HTML, already escaped.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import plotly.graph_objects as go
import plotly.offline

from harness.report.style import esc

CSS = """
body { font-family: system-ui, -apple-system, Segoe UI, sans-serif; margin: 0 auto; max-width: 1200px;
       padding: 0 1.5rem 4rem; color: #222; line-height: 1.45; }
h1 { margin-top: 1.5rem; } h2 { border-bottom: 2px solid #ddd; padding-bottom: .2rem; margin-top: 2.5rem; }
h3 { margin-top: 1.8rem; color: #333; }
table { border-collapse: collapse; font-size: .85rem; margin: .5rem 0 1rem; display: block; overflow: auto;
        max-height: 32rem; }  /* a long table scrolls in place: the page stays readable on a laptop */
th { position: sticky; top: 0; }
th, td { border: 1px solid #ddd; padding: .25rem .5rem; text-align: left; vertical-align: top; }
th { background: #f4f4f4; } table.failures td:nth-child(4) { font-weight: 600; color: #b00; }
table.failures.all td:nth-child(4) { font-weight: normal; color: inherit; }
table.failures.all td:nth-child(5) { font-weight: 600; color: #b00; }
table.env td { font-family: ui-monospace, monospace; font-size: .8rem; }
.figure { border: 1px solid #eee; border-radius: 6px; margin: .8rem 0; padding: .3rem; }
.note { color: #555; font-size: .9rem; } nav a { margin-right: 1rem; }
"""

# the mode bar's camera saves the chart as it is shown (PNG); `report --static` writes PNG and SVG
CONFIG = {"responsive": True, "displaylogo": False,
          "toImageButtonOptions": {"format": "png", "scale": 2}}


@dataclass
class Part:
    """A piece of a section: a heading, a figure or an HTML snippet (already escaped)."""

    title: str = ""
    figure: go.Figure | None = None
    html: str = ""
    caption: str = ""


@dataclass
class PageSection:
    title: str
    anchor: str
    parts: list[Part] = field(default_factory=list)
    note: str = ""  # a line under the title, already escaped


def figure_html(figure: go.Figure) -> str:
    return figure.to_html(full_html=False, include_plotlyjs=False, config=CONFIG)


def render(title: str, intro: str, sections: list[PageSection]) -> str:
    nav = "".join(f'<a href="#{esc(s.anchor)}">{esc(s.title)}</a>' for s in sections)
    body = "".join(_section(s) for s in sections)
    return (f"<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
            f"<meta name='viewport' content='width=device-width, initial-scale=1'>"
            f"<title>{esc(title)}</title><style>{CSS}</style>"
            f"<script type='text/javascript'>{plotly.offline.get_plotlyjs()}</script></head>"
            f"<body><h1>{esc(title)}</h1>{intro}<nav>{nav}</nav>{body}</body></html>\n")


def _section(section: PageSection) -> str:
    parts = []
    for part in section.parts:
        heading = f"<h3>{esc(part.title)}</h3>" if part.title else ""
        caption = f"<p class='note'>{part.caption}</p>" if part.caption else ""
        content = f"<div class='figure'>{figure_html(part.figure)}</div>" if part.figure is not None else part.html
        parts.append(heading + caption + content)
    note = f"<p class='note'>{section.note}</p>" if section.note else ""
    return f"<section id='{esc(section.anchor)}'><h2>{esc(section.title)}</h2>{note}{''.join(parts)}</section>"
