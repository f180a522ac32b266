"""Hostile strings in a study reach the dashboard escaped; outputs never land on a store.

Studies here are made directly with Optuna (a journal) and MLflow (a SQLite store), as anyone
could make them, with a payload in one place at a time (:data:`CASES`: every payload of
:data:`PAYLOADS` at every entry of :data:`ENTRIES`): a parameter name, a categorical choice, the
study name, the ``outcome`` / ``first_nonfinite`` / ``cause_names`` attributes, a run tag, a
history column (metric key) and the journal's path.  Each page must hold no payload as written
(plotly's JSON writes ``<``, ``>`` and ``/`` as ``\\u00XX``, and pinnlab's own escape the rest) and,
where the entry is shown, its escaped form.  Headless Chromium then opens one page with every
payload at every entry: no payload may run (each sets ``data-pwned`` on ``<html>``) and every panel
must be drawn; the negative control is the same check catching a payload put in unescaped.

:data:`REFUSALS` extends the bad-input corpus of ``tests/cli/test_bad_input.py`` (same harness):
``dashboard --out`` and ``reproduce --out`` onto a journal, a database, any file that is not a
pinnlab page, a store directory or an artifact tree are one line, exit 2, nothing written.  The
``plots`` tests cover a foreign run's artifact location and PNGs that cannot be written in full.
"""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import mlflow
import optuna
import pandas as pd
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution

from pinnlab.core.preflight import PAGE_MARKER
from pinnlab.dashboards.divergence import write_dashboard
from pinnlab.dashboards.page import render_page, text
from tests.cli.test_bad_input import _listing, _main, check_one_line, workdir  # noqa: F401 (a fixture)
from tests.dashboards.test_dashboard_browser import VIEWS, RecordingProxy, chromium, classes, needs_chromium, sections

optuna.logging.set_verbosity(optuna.logging.WARNING)

RAN = "document.documentElement.dataset.pwned=1"  # what every payload does if it runs
RAN_MARK = re.compile(r"<html[^>]*\bdata-pwned=")
PAYLOADS = {
    "img-onerror": f"<img src=x onerror={RAN}>",
    "script-breakout": f"</script><script>{RAN}</script>",
    "svg-onload": f"<svg onload={RAN}>",
    "attribute-breakout": f'"><img src=x onerror={RAN}>',
    "single-quote-breakout": f"' onmouseover={RAN} x='",
    "javascript-link": f'<a href="javascript:{RAN}">open</a>',
    "iframe-srcdoc": f'<iframe srcdoc="<script>{RAN}</script>">',
    "details-ontoggle": f"<details open ontoggle={RAN}>",
    "pre-escaped": f"&lt;svg/onload={RAN}&gt;&#60;b&#62;",
    "plotly-template": "%{x} <b>%{y}</b> &amp; <br>",
    "style-hides-page": "<style>body{display:none}</style>",
    "quotes-ampersand": "study & \"quoted\" 'name' <tag>",
}
# where a payload enters, and whether the page shows that entry (outcome: an unknown outcome is
# no outcome, so the attribute's text is not shown; the check is then that the page still works)
ENTRIES = {
    "param-name": True,
    "choice": True,
    "study-name": True,
    "outcome-attr": False,
    "first-nonfinite-attr": True,
    "cause-names-attr": True,
    "run-tag": True,
    "metric-key": True,
    "journal-path": True,
}
CASES = [(f"{entry}-{pid}", entry, payload) for entry in ENTRIES for pid, payload in PAYLOADS.items()]


# ------------------------------------------------------------------------------- hostile studies
def hostile_study(
    root: Path,
    tracking_uri: str,
    *,
    study: str = "hostile",
    factors: tuple[str, ...] = ("act",),
    choices: tuple[str, ...] = ("tanh", "sin"),
    outcomes: tuple[str, ...] = (),
    first_nonfinite: tuple[str, ...] = ("weight/dense/kernel",),
    causes: tuple[str, ...] = ("lr_high",),
    tags: tuple[str, ...] = (),
    metrics: tuple[str, ...] = ("grad_norm/residual",),
    directory: str = "store",
    trials: int = 4,
) -> tuple[str, str]:
    """A study made without pinnlab: trials of the categorical ``factors`` and ``lr``, every other
    one NaN, each with an MLflow child run (tags, a history.csv with ``metrics``) under a parent
    run.  The NaN trials take ``first_nonfinite`` and ``causes`` in turn (``tags``: first_nonfinite
    as a run tag only); ``outcomes`` replace the trials' outcome attributes in turn.  Returns
    (study name, storage URL)."""
    journal = root / directory / "optuna.journal"
    journal.parent.mkdir(parents=True, exist_ok=True)
    client = mlflow.MlflowClient(tracking_uri)
    artifacts = Path(tracking_uri[len("sqlite:///") :]).parent / "artifacts"
    exp = client.create_experiment(f"exp-{time.time_ns()}", artifact_location=str(artifacts))
    parent = client.create_run(exp, run_name=study).info.run_id
    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(journal)))
    s = optuna.create_study(study_name=study, storage=storage)
    s.set_user_attr("mlflow_parent_run_id", parent)
    dists = {f: CategoricalDistribution(list(choices)) for f in factors}
    dists["lr"] = FloatDistribution(1e-4, 10.0, log=True)
    for i in range(trials):
        diverged, k = i % 2 == 1, i // 2
        run_tags = {"mlflow.parentRunId": parent, "trial": str(i)}
        attrs = {
            "outcome": "nan" if diverged else "stable",
            "nan_onset_step": 3 if diverged else None,
            "divergence_step": 3 if diverged else None,
            "cause_names": causes[k % len(causes)] if diverged else None,
        }
        if tags and diverged:
            run_tags["first_nonfinite"] = tags[k % len(tags)]
        elif diverged:
            attrs["first_nonfinite"] = first_nonfinite[k % len(first_nonfinite)]
        if outcomes:
            attrs["outcome"] = outcomes[i % len(outcomes)]
        run = client.create_run(exp, tags=run_tags, run_name=study).info.run_id
        norms = [1.0, 2.0, 4.0, float("nan") if diverged else 8.0]
        with tempfile.TemporaryDirectory() as tmp:
            pd.DataFrame(
                {
                    "step": [0, 1, 2, 3],
                    "weight_norm/total": norms,
                    "grad_norm/total": norms,
                    **{m: norms for m in metrics},
                }
            ).to_csv(Path(tmp) / "history.csv", index=False)
            client.log_artifact(run, str(Path(tmp) / "history.csv"))
        client.set_terminated(run)
        attrs["mlflow_run_id"] = run
        params = {f: choices[(i + j) % len(choices)] for j, f in enumerate(factors)}
        params["lr"] = 10.0 ** (i % 4 - 3)
        s.add_trial(optuna.trial.create_trial(params=params, distributions=dists, value=float(i), user_attrs=attrs))
    client.set_terminated(parent)
    return study, f"journal:{journal}"


# Entries that hold every payload at once in one study (one page per entry); a study has one
# name and one journal, so those two entries get a study per payload.
ALL_AT_ONCE = {
    "param-name": lambda ps: dict(factors=ps),
    "choice": lambda ps: dict(choices=("tanh", *ps), trials=len(ps) + 1),
    "outcome-attr": lambda ps: dict(outcomes=ps, trials=len(ps)),
    "first-nonfinite-attr": lambda ps: dict(first_nonfinite=ps, trials=2 * len(ps)),
    "cause-names-attr": lambda ps: dict(causes=ps, trials=2 * len(ps)),
    "run-tag": lambda ps: dict(tags=ps, trials=2 * len(ps)),
    "metric-key": lambda ps: dict(metrics=tuple("grad_norm/" + p for p in ps)),
}
ONE_AT_A_TIME = {
    "study-name": lambda p: dict(study=p, trials=2),
    "journal-path": lambda p: dict(directory="d/" + p, trials=2),
}
assert set(ALL_AT_ONCE) | set(ONE_AT_A_TIME) == set(ENTRIES)


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> str:
    """One MLflow SQLite store for every hostile study of the module (each has its experiment)."""
    db = tmp_path_factory.mktemp("hostile-mlflow") / "mlflow.db"
    uri = f"sqlite:///{db}"
    mlflow.MlflowClient(uri).search_experiments()  # creates the schema once
    return uri


@pytest.fixture(scope="module")
def page_of(tmp_path_factory, store):
    """The dashboard's text for (entry, payload); each study is made and drawn once."""
    pages: dict[tuple[str, str], str] = {}

    def page(entry: str, payload: str) -> str:
        key = (entry, payload if entry in ONE_AT_A_TIME else "")
        if key not in pages:
            root = tmp_path_factory.mktemp("hostile")
            if entry in ONE_AT_A_TIME:
                kwargs = ONE_AT_A_TIME[entry](payload)
            else:
                kwargs = ALL_AT_ONCE[entry](tuple(PAYLOADS.values()))
            name, storage = hostile_study(root, store, **kwargs)
            pages[key] = write_dashboard(name, root / "page.html", storage, store).read_text(encoding="utf-8")
        return pages[key]

    return page


def shown_forms(payload: str) -> set[str]:
    """How an escaped payload appears in the page: as written by :func:`text` in HTML, and with
    ``/`` as ``\\u002f`` inside plotly's JSON."""
    escaped = text(payload)
    return {escaped, escaped.replace("/", "\\u002f")}


@pytest.mark.parametrize("entry, payload", [pytest.param(e, p, id=i) for i, e, p in CASES])
def test_hostile_string_reaches_the_page_escaped(page_of, entry, payload):
    page = page_of(entry, payload)
    assert payload not in page, "the payload is in the page as written"
    # a metric key with a second "/" is no per-term gradient norm: no view shows it
    if ENTRIES[entry] and not (entry == "metric-key" and "/" in payload):
        assert any(form in page for form in shown_forms(payload)), "the entry did not reach the page"
    assert PAGE_MARKER in page
    assert re.findall(r'<section class="panel" id="([^"]+)">', page) == VIEWS


def test_the_corpus_covers_every_payload_at_every_entry():
    assert len(CASES) == len(PAYLOADS) * len(ENTRIES) >= 100
    assert len({i for i, _, _ in CASES}) == len(CASES)
    # no payload is another's escaped form: a page holding one escaped must not look like the other raw
    assert not {text(p) for p in PAYLOADS.values()} & set(PAYLOADS.values())


def test_text_escapes_for_html_and_plotly():
    assert text("<a href='x'>&\"%{y}</a>") == "&lt;a href=&#39;x&#39;&gt;&amp;&#34;&#37;{y}&lt;/a&gt;"
    assert text(1e-3) == "0.001"


def test_every_payload_at_once_keeps_the_escape_one_to_one(tmp_path, store):
    """Choices that differ only by their special characters stay distinct levels."""
    choices = ("a<b", "a&lt;b", "a&amp;lt;b")
    name, storage = hostile_study(tmp_path, store, choices=choices, trials=6)
    page = write_dashboard(name, tmp_path / "page.html", storage, store).read_text(encoding="utf-8")
    for c in choices:
        assert any(form in page for form in shown_forms(c)), c


# ------------------------------------------------------------------------------ a real browser
def everything_study(root: Path, tracking_uri: str) -> tuple[str, str]:
    """Every payload at every entry at once (the study name: the first one)."""
    values = tuple(PAYLOADS.values())
    return hostile_study(
        root,
        tracking_uri,
        study=values[0],
        factors=values[:3],
        choices=("tanh", *values),
        first_nonfinite=values,
        causes=values,
        metrics=tuple("grad_norm/" + v for v in values),
        directory="d/" + values[1],
        trials=2 * len(values),
    )


@needs_chromium
def test_no_payload_runs_in_chromium_and_every_panel_is_drawn(tmp_path, store):
    name, storage = everything_study(tmp_path, store)
    out = write_dashboard(name, tmp_path / "page.html", storage, store)
    proxy = RecordingProxy()
    try:
        dom = chromium(out.as_uri(), proxy, budget_ms=6000)
    finally:
        proxy.close()
    assert "<html" in dom and not RAN_MARK.search(dom), "a payload ran"
    assert proxy.page_hosts() == [], proxy.requests
    views = sections(dom)
    assert list(views) == VIEWS
    for key, body in views.items():
        assert classes(body, "main-svg"), key
    assert text(next(iter(PAYLOADS.values()))) in dom.split("</title>", 1)[0]  # the study name, shown


@needs_chromium
def test_the_browser_check_catches_a_payload_that_runs(tmp_path):
    """Negative control: the same payload put into a summary line unescaped runs."""
    page = tmp_path / "raw.html"
    page.write_text(render_page("raw", [PAYLOADS["img-onerror"]], []))
    proxy = RecordingProxy()
    try:
        dom = chromium(page.as_uri(), proxy, budget_ms=2000)
    finally:
        proxy.close()
    assert RAN_MARK.search(dom)


# --------------------------------------------------------------------- outputs onto a store
def _digest(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in root.rglob("*")
        if p.is_file() and not p.is_symlink()
    }


STORE = "pinnlab-runs"  # PINNLAB_HOME of the workdir (tests/conftest.py)
REFUSALS = [
    (
        "dashboard-out-own-journal",
        ["dashboard", "s", "--out", f"{STORE}/optuna.journal"],
        ["--out", "optuna.journal", "not a page pinnlab wrote"],
    ),
    (
        "dashboard-out-mlflow-db",
        ["dashboard", "s", "--out", f"{STORE}/mlflow.db"],
        ["--out", "mlflow.db", "not a page pinnlab wrote"],
    ),
    (
        "dashboard-out-given-journal",
        ["dashboard", "s", "--storage", "journal:other.journal", "--out", "other.journal"],
        ["--out", "other.journal", "not a page pinnlab wrote"],
    ),
    (
        "dashboard-out-sqlite-storage",
        ["dashboard", "s", "--storage", "sqlite:///optuna.db", "--out", "optuna.db"],
        ["--out", "optuna.db", "not a page pinnlab wrote"],
    ),
    ("dashboard-out-plain-file", ["dashboard", "s", "--out", "afile"], ["--out", "afile", "not a page pinnlab wrote"]),
    ("dashboard-out-empty-html", ["dashboard", "s", "--out", "empty.html"], ["--out", "empty.html", "not a page"]),
    (
        "dashboard-out-someone-elses-html",
        ["dashboard", "s", "--out", "mine.html"],
        ["--out", "mine.html", "not a page"],
    ),
    ("dashboard-out-link-to-journal", ["dashboard", "s", "--out", "link.html"], ["--out", "link.html", "not a page"]),
    ("dashboard-out-fifo", ["dashboard", "s", "--out", "fifo.html"], ["--out", "fifo.html", "not a regular file"]),
    ("dashboard-out-device", ["dashboard", "s", "--out", "/dev/null"], ["--out", "/dev/null", "not a regular file"]),
    (
        "dashboard-out-in-artifacts",
        ["dashboard", "s", "--out", f"{STORE}/artifacts/1/d.html"],
        ["--out", "inside the MLflow artifact store"],
    ),
    (
        "dashboard-out-in-mlruns",
        ["dashboard", "s", "--out", "mlruns/0/d.html"],
        ["--out", "inside the MLflow artifact"],
    ),
    ("reproduce-out-store-dir", ["reproduce", "seed", "--out", STORE], ["--out", "holds a store", "mlflow.db"]),
    (
        "reproduce-out-link-to-store",
        ["reproduce", "seed", "--out", "storelink"],
        ["--out", "storelink", "holds a store"],
    ),
    (
        "reproduce-out-artifacts",
        ["reproduce", "seed", "--out", f"{STORE}/artifacts/1"],
        ["--out", "inside the MLflow artifact store"],
    ),
    (
        "reproduce-out-run-artifacts",
        ["reproduce", "seed", "--quick", "--out", f"{STORE}/artifacts/1/abc/artifacts"],
        ["--out", "inside the MLflow artifact store"],
    ),
    ("reproduce-out-mlruns", ["reproduce", "seed", "--out", "mlruns/0"], ["--out", "inside the MLflow artifact"]),
    ("reproduce-out-journal", ["reproduce", "seed", "--out", f"{STORE}/optuna.journal"], ["--out", "not a directory"]),
]


@pytest.fixture(scope="module")
def real_stores(tmp_path_factory, store) -> Path:
    """A real Optuna journal (one study) and MLflow database (with runs), made once."""
    root = tmp_path_factory.mktemp("real-stores")
    hostile_study(root, store, study="s", directory=".", trials=2)
    (root / "mlflow.db").write_bytes(Path(store[len("sqlite:///") :]).read_bytes())
    return root


@pytest.fixture
def stores_here(workdir, real_stores) -> Path:
    """The workdir with the stores in its default store directory, a second journal and SQLite
    storage beside it, an MLflow file store, someone's files and links into the store."""
    home = workdir / STORE
    home.mkdir()
    for name in ("optuna.journal", "mlflow.db"):
        (home / name).write_bytes((real_stores / name).read_bytes())
    (workdir / "other.journal").write_bytes((real_stores / "optuna.journal").read_bytes())
    (workdir / "optuna.db").write_bytes((real_stores / "mlflow.db").read_bytes())
    (home / "artifacts" / "1").mkdir(parents=True)
    (home / "artifacts" / "1" / "history.csv").write_text("step,x\n0,1\n")
    (workdir / "mlruns" / "0").mkdir(parents=True)
    (workdir / "mlruns" / "0" / "meta.yaml").write_text("name: Default\n")
    (workdir / "empty.html").write_text("")
    (workdir / "mine.html").write_text("<!DOCTYPE html>\n<html><title>my notes</title></html>\n")
    (workdir / "link.html").symlink_to(home / "optuna.journal")
    os.mkfifo(workdir / "fifo.html")
    (workdir / "storelink").symlink_to(home, target_is_directory=True)
    return workdir


@pytest.mark.parametrize("argv, words", [pytest.param(a, w, id=i) for i, a, w in REFUSALS])
def test_output_onto_a_store_is_refused(stores_here, capsys, argv, words):
    before, digest = _listing(stores_here), _digest(stores_here)
    t0 = time.monotonic()
    rc = _main(argv)
    out, err = capsys.readouterr()
    check_one_line(rc, out, err, argv[0], words, time.monotonic() - t0)
    assert _listing(stores_here) == before and _digest(stores_here) == digest


def test_a_page_pinnlab_wrote_is_replaced(tmp_path, store, capsys):
    name, storage = hostile_study(tmp_path, store)
    out = tmp_path / "page.html"
    argv = ["dashboard", name, "--storage", storage, "--tracking-uri", store, "--out", str(out)]
    assert _main(argv) == 0 and PAGE_MARKER in out.read_text()
    out.write_text(out.read_text().replace("</body>", "<!-- older --></body>"))
    assert _main(argv) == 0 and "<!-- older -->" not in out.read_text()
    assert capsys.readouterr().out.split() == [str(out)] * 2
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".page.html")] == []  # no temporary left


def test_the_page_is_not_written_on_a_full_disk(tmp_path, store):
    """A file size limit (as a full disk): one line naming the page, no page, no temporary file."""
    name, storage = hostile_study(tmp_path, store)
    out = tmp_path / "pages" / "page.html"
    out.parent.mkdir()
    argv = ["dashboard", name, "--storage", storage, "--tracking-uri", store, "--out", str(out)]
    proc = _limited(argv, 100_000, tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.count("\n") == 1 and "pinnlab dashboard: error: --out:" in proc.stderr
    assert str(out) in proc.stderr and "File too large" in proc.stderr
    assert list(out.parent.iterdir()) == []


def _limited(argv: list[str], max_bytes: int, home: Path, after_drawing: bool = False) -> subprocess.CompletedProcess:
    """``pinnlab ARGV`` in a subprocess whose files cannot grow beyond ``max_bytes`` (RLIMIT_FSIZE,
    SIGXFSZ ignored: a write past it fails with EFBIG, as one fails with ENOSPC on a full disk);
    ``after_drawing``: the limit starts once the plots are drawn, so that their copy hits it."""
    limit = f"resource.setrlimit(resource.RLIMIT_FSIZE, ({max_bytes}, resource.RLIM_INFINITY))\n"
    code = "import resource, signal, sys\nsignal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
    if after_drawing:
        code += (
            "import pinnlab.plots\n"
            "_draw = pinnlab.plots.plot_history\n"
            "def plot_history(*args, **kwargs):\n"
            "    paths = _draw(*args, **kwargs)\n"
            f"    {limit}"
            "    return paths\n"
            "pinnlab.plots.plot_history = plot_history\n"
        )
    else:
        code += limit
    code += f"from pinnlab.cli import main\nsys.exit(main({argv!r}))\n"
    return subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PINNLAB_HOME": str(home)},
    )


# ------------------------------------------------------------------------------------ plots
@pytest.fixture(scope="module")
def plots_store(tmp_path_factory) -> tuple[Path, str]:
    """(directory, tracking URI) of one MLflow SQLite store for the plots tests."""
    root = tmp_path_factory.mktemp("plots") / "store"
    root.mkdir()
    uri = f"sqlite:///{root / 'mlflow.db'}"
    mlflow.MlflowClient(uri).search_experiments()  # creates the schema once
    return root, uri


def _run_with_history(tracking_uri: str, artifact_location: str | None) -> str:
    """A finished run with a history.csv, in an experiment keeping its artifacts at ``artifact_location``."""
    client = mlflow.MlflowClient(tracking_uri)
    exp = client.create_experiment(f"plots-{time.time_ns()}", artifact_location=artifact_location)
    run = client.create_run(exp, tags={"problem": "seed", "outcome": "stable"}).info.run_id
    with tempfile.TemporaryDirectory() as tmp:
        pd.DataFrame(
            {
                "step": range(50),
                "loss/total": [1.0 / (s + 1) for s in range(50)],
                "weight_norm/total": [1.0 + s for s in range(50)],
            }
        ).to_csv(Path(tmp) / "history.csv", index=False)
        client.log_artifact(run, str(Path(tmp) / "history.csv"))
    client.set_terminated(run)
    return run


def test_plots_refuse_an_artifact_location_outside_the_store(tmp_path, plots_store, capsys):
    _, uri = plots_store
    elsewhere = tmp_path / "someone-else"
    run = _run_with_history(uri, str(elsewhere))
    capsys.readouterr()  # whatever MLflow printed while the run was made
    before = _digest(tmp_path)
    t0 = time.monotonic()
    rc = _main(["plots", run, "--tracking-uri", uri])
    out, err = capsys.readouterr()
    check_one_line(rc, out, err, "plots", ["RUN_ID", run, str(elsewhere), "outside the store"], time.monotonic() - t0)
    assert _digest(tmp_path) == before and not (elsewhere / run / "artifacts" / "plots").exists()


def test_plots_refuse_a_link_out_of_the_store(tmp_path, plots_store, capsys):
    store, uri = plots_store
    run = _run_with_history(uri, str(store / "artifacts"))
    (tmp_path / "outside").mkdir()
    (store / "artifacts" / run / "artifacts" / "plots").symlink_to(tmp_path / "outside", target_is_directory=True)
    capsys.readouterr()
    rc = _main(["plots", run, "--tracking-uri", uri])
    out, err = capsys.readouterr()
    check_one_line(rc, out, err, "plots", ["RUN_ID", "outside the store"], 0)
    assert list((tmp_path / "outside").iterdir()) == []


def test_plots_inside_the_store_are_written_and_listed(tmp_path, plots_store, capsys):
    store, uri = plots_store
    run = _run_with_history(uri, str(store / "artifacts"))
    assert _main(["plots", run, "--tracking-uri", uri]) == 0
    png = store / "artifacts" / run / "artifacts" / "plots" / "losses.png"
    assert str(png.resolve()) in capsys.readouterr().out.split()  # where it is on this machine
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_plot_that_cannot_be_drawn_in_full_is_named_and_removed(tmp_path, plots_store):
    store, uri = plots_store
    run = _run_with_history(uri, str(store / "artifacts"))
    proc = _limited(["plots", run, "--tracking-uri", uri], 8_000, tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("pinnlab plots: error: ")
    assert ".png" in proc.stderr and "File too large" in proc.stderr and "nothing was logged" in proc.stderr
    assert not (store / "artifacts" / run / "artifacts" / "plots").exists()


def test_a_plot_that_cannot_be_copied_in_full_is_named_and_removed(tmp_path, plots_store):
    """The drawings fit in the temporary directory; the copy into the store hits the limit."""
    store, uri = plots_store
    run = _run_with_history(uri, str(store / "artifacts"))
    proc = _limited(["plots", run, "--tracking-uri", uri], 8_000, tmp_path, after_drawing=True)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("pinnlab plots: error: ")
    plots = store / "artifacts" / run / "artifacts" / "plots"
    assert str(plots) in proc.stderr and ".png" in proc.stderr
    for png in plots.glob("*.png"):  # whatever was copied is whole
        assert png.read_bytes().endswith(b"IEND\xaeB`\x82"), png
