"""Dashboard definitions: plotly figures built from :mod:`pinnlab.analysis` frames only.

``dashboards.divergence`` is what ``pinnlab dashboard STUDY`` writes: one self-contained HTML file
(plotly.js inlined, no CDN, works offline).  ``dashboards.page`` assembles titled panels into that
file.  A definition reads data only through ``pinnlab.analysis`` (never optuna or mlflow), so the
dependency runs one way: config -> training -> tracking -> analysis -> dashboards.

Packaging: why ``dashboards`` is its own top-level package
----------------------------------------------------------
The layout keeps dashboard definitions beside the library (``dashboards/`` next to ``pinnlab/``),
so that what the project shows is visibly separate from what it computes.  To make the CLI able
to import them from any working directory and from a wheel, ``pyproject.toml`` lists
``dashboards*`` next to ``pinnlab*`` in its package discovery.  The alternatives were worse:
mapping the directory to ``pinnlab.dashboards`` through ``package-dir`` is ignored by setuptools'
find-based discovery (it would need an explicit package list that every new ``pinnlab``
subpackage must then be added to), loading the files by path works only from a clone, and moving
the definitions under ``pinnlab/`` would undo the separation.  The cost is one more top-level
import name in the environment.
"""

from __future__ import annotations

from dashboards.page import Panel, render_page, write_page

__all__ = ["Panel", "render_page", "write_page"]
