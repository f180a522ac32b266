"""Dashboard definitions: plotly figures built from :mod:`pinnlab.analysis` frames only.

``pinnlab.dashboards.divergence`` is what ``pinnlab dashboard STUDY`` writes: one self-contained HTML file
(plotly.js inlined, no CDN, works offline).  ``pinnlab.dashboards.page`` assembles titled panels into that
file.  A definition reads data only through ``pinnlab.analysis`` (never optuna or mlflow), so the
dependency runs one way: config -> training -> tracking -> analysis -> dashboards.

Packaging: installed as ``pinnlab.dashboards``
----------------------------------------------
The layout keeps dashboard definitions beside the library (``dashboards/`` next to ``pinnlab/``),
so that what the project shows is visibly separate from what it computes.  They are installed
under pinnlab's own name, through a setuptools mapping in ``pyproject.toml``
(``package-dir = {"pinnlab.dashboards" = "dashboards"}``, with the package list written out,
because find-based discovery does not apply ``package-dir`` to a package outside ``pinnlab/``):
a wheel holds ``pinnlab/dashboards/*.py`` and no top-level ``dashboards``, which other
distributions also use as a name.  An editable install resolves ``pinnlab.dashboards`` through
setuptools' import finder even where the working directory's ``./pinnlab`` shadows the installed
package (the finder is consulted after the path finder, which finds no ``pinnlab/dashboards``).
``tests/dashboards/test_dashboard_packaging.py`` checks the list against the packages on disk and the import.
"""

from __future__ import annotations

from pinnlab.dashboards.page import Panel, render_page, write_page

__all__ = ["Panel", "render_page", "write_page"]
