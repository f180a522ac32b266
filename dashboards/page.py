"""One self-contained HTML page of titled plotly panels.

plotly.js (~4.6 MB) is inlined once, with the first figure (``include_plotlyjs=True``); the other
figures reuse it.  Nothing is loaded from the network: no CDN script, no MathJax, no web fonts, so
the file opens offline and can be mailed or archived as it is.

Text from outside pinnlab (names, values, attributes, tags, metric keys, URLs, paths: a study may
have been made by anyone) goes through :func:`text` before it reaches a page or a figure; every
argument of :func:`render_page` and every string in a figure is then markup, written by pinnlab
around escaped text.  One escape serves both readers: the browser, for the page itself, and
plotly.js, which reads a subset of HTML (``<br>``, ``<b>``, ``<a href>``, ``<span style>``) in
titles, hover text, legend names, tick texts and annotations, and ``%{...}`` in templates.  The
figures' JSON cannot end its ``<script>`` element: plotly writes ``<``, ``>`` and ``/`` in it as
``\\u003c``, ``\\u003e`` and ``\\u002f``.
"""

from __future__ import annotations

import os
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import plotly.graph_objects as go

from pinnlab.core.errors import ConfigError
from pinnlab.core.preflight import PAGE_MARKER

__all__ = ["Panel", "text", "render_page", "write_page"]

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


_REFERENCES = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&#34;", "'": "&#39;", "%": "&#37;"})


def text(value: object) -> str:
    """``str(value)`` shown as written: ``& < > " ' %`` as character references, which browsers
    and plotly.js both decode for display (plotly knows ``&amp; &lt; &gt;`` and numeric ones, not
    ``&quot;``), so no tag, attribute, entity or plotly ``%{...}`` template can be formed."""
    return str(value).translate(_REFERENCES)


@dataclass
class Panel:
    """A figure with a title and a one-paragraph "what to look at" (both markup: outside text
    in them has gone through :func:`text`)."""

    key: str
    title: str
    description: str
    figure: go.Figure
    height: int = 460


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def render_page(title: str, summary: Sequence[str], panels: Sequence[Panel]) -> str:
    """The HTML text: a title, summary lines and the panels in order (all markup, see :func:`text`)."""
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
            f'<section class="panel" id="{_slug(p.key)}">\n<h2>{p.title}</h2>\n'
            f"<p>{p.description}</p>\n{fig_html}\n</section>"
        )
    lines = "<br>\n".join(summary)
    return (
        f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n{PAGE_MARKER}\n'
        f"<title>{title}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n"
        f'<h1>{title}</h1>\n<div class="summary">{lines}</div>\n' + "\n".join(parts) + "\n</body>\n</html>\n"
    )


def write_page(path: str | Path, title: str, summary: Sequence[str], panels: Sequence[Panel]) -> Path:
    """Write :func:`render_page` to ``path`` (parent directories created); returns the path.

    Written to a temporary file beside ``path``, then renamed over it: a full disk leaves the
    previous page (or none) and a ConfigError naming ``path``, never a truncated page, and a link
    at ``path`` is replaced rather than written through."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    page = render_page(title, summary, panels).encode("utf-8")
    tmp = path.with_name(f".{path.name[:60]}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        with open(tmp, "xb") as f:  # created with the user's umask, as the page itself
            f.write(page)
        os.replace(tmp, path)
    except BaseException as exc:
        tmp.unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise ConfigError("--out", f"{str(path)!r} could not be written ({exc.strerror or exc})") from None
        raise
    return path
