"""One self-contained HTML page of titled plotly panels.

plotly.js (~4.6 MB) is inlined once, with the first figure (``include_plotlyjs=True``); the other
figures reuse it.  Nothing is loaded from the network: no CDN script, no MathJax, no web fonts, so
the file opens offline and can be mailed or archived as it is.
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import plotly.graph_objects as go

__all__ = ["Panel", "render_page", "write_page"]

_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 24px 32px; color: #222;
       background: #fafafa; }
h1 { font-size: 22px; margin: 0 0 8px; }
h2 { font-size: 17px; margin: 0 0 4px; }
.summary { margin: 0 0 16px; line-height: 1.5; }
.panel { background: #fff; border: 1px solid #ddd; border-radius: 6px; padding: 14px 16px; margin: 0 0 18px; }
.panel p { margin: 0 0 8px; color: #444; font-size: 14px; line-height: 1.4; }
code { background: #f0f0f0; padding: 0 3px; border-radius: 3px; }
"""


@dataclass
class Panel:
    """A figure with a title and a one-paragraph "what to look at" (HTML allowed)."""

    key: str
    title: str
    description: str
    figure: go.Figure
    height: int = 460


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def render_page(title: str, summary: Sequence[str], panels: Sequence[Panel]) -> str:
    """The HTML text: a title, summary lines (HTML allowed) and the panels in order."""
    parts = []
    for i, p in enumerate(panels):
        fig_html = p.figure.to_html(
            full_html=False,
            include_plotlyjs=(i == 0),
            include_mathjax=False,
            default_width="100%",
            default_height=f"{p.height}px",
            div_id=f"plot-{_slug(p.key)}",
            config={"displaylogo": False, "responsive": True},
        )
        parts.append(
            f'<section class="panel" id="{_slug(p.key)}">\n<h2>{html.escape(p.title)}</h2>\n'
            f"<p>{p.description}</p>\n{fig_html}\n</section>"
        )
    lines = "<br>\n".join(summary)
    return (
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
        f"<title>{html.escape(title)}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n"
        f"<h1>{html.escape(title)}</h1>\n<div class=\"summary\">{lines}</div>\n"
        + "\n".join(parts)
        + "\n</body>\n</html>\n"
    )


def write_page(path: str | Path, title: str, summary: Sequence[str], panels: Sequence[Panel]) -> Path:
    """Write :func:`render_page` to ``path`` (parent directories created); returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_page(title, summary, panels), encoding="utf-8")
    return path
