"""The MLflow UI as the place to compare a sweep's runs, checked in a real browser.

The tiny grid sweep of tests/analysis/test_analysis.py (learning rate 1e-3 stays finite, 1e19 goes NaN at
step 1; width 5 or 10) runs through ``pinnlab sweep`` in two parts (3 trials, then resumed to 4)
into a real SQLite store; ``mlflow ui`` serves that store on a free 127.0.0.1 port and headless Chromium opens:

* the address the sweep printed last: the runs table (not MLflow's GenAI view), every trial a row
  whose name starts with its number and outcome (``t0 nan lr=1e19 w=5``), divergent ones first;
* *Group by* → ``outcome``, clicked: one group per outcome (the two clicks docs/analysis.md gives);
* a NaN run's page: it renders with its tags and metrics (only finite values are ever logged);
* the parent run's artifacts: the report, and the dashboard drawn in MLflow's HTML viewer (the
  heatmap's colours in the screenshot), both refreshed by the resumed sweep.

Screenshots (PNG) of the four pages are written to the test's temporary directory.  The naming
and URL rules themselves are pure logic, tested without a store.
"""

from __future__ import annotations

import base64
import json
import math
import os
import re
import subprocess
import time
from pathlib import Path

import mlflow
import numpy as np
import pytest
import yaml
from PIL import Image

from pinnlab.cli import main
from pinnlab.tracking.store import EXPERIMENT_KIND, EXPERIMENT_KIND_TAG
from pinnlab.tracking.uri import BY_OUTCOME, RUNS_VIEW, UI_ADDRESS, runs_url, ui_command
from pinnlab.tracking.writer import NAME_LIMIT, abbreviations, run_label
from tests.analysis.test_analysis import TINY
from tests.dashboards.test_dashboard_browser import (
    BIN,
    CHROMIUM,
    HEADLESS,
    HEATMAP_GREEN,
    HEATMAP_RED,
    RecordingProxy,
    Server,
    free_port,
    needs_chromium,
)

STUDY = "ui_tiny"


# ------------------------------------------------------------------------------ pure logic
@pytest.mark.parametrize(
    "paths, expected",
    [
        (["optimizer.learning_rate", "model.width"], ["lr", "w"]),
        (["model.width", "model.depth", "training.seed", "regularization.l2"], ["w", "d", "s", "l2"]),
        (["model.width", "optimizer.weight_decay", "problem.params.wave"], ["width", "wd", "wave"]),
        (["model.width", "problem.params.width"], ["model.width", "params.width"]),
        (["loss.weights.residual", "loss.weights.ramp"], ["residual", "ramp"]),
    ],
    ids=["initials", "single-words", "initials-clash", "last-part-clash", "initials-then-words"],
)
def test_abbreviations_are_derived_from_the_path_and_unique(paths, expected):
    got = abbreviations(paths)
    assert [got[p] for p in paths] == expected
    assert len(set(got.values())) == len(paths)


def test_run_names_put_the_trial_and_outcome_first():
    tags = {"study": "s", "trial": "7", "optimizer.learning_rate": "0.1", "model.width": "16"}
    factors = ["optimizer.learning_rate", "model.width"]
    assert run_label("ignored", tags, factors) == "t7 lr=0.1 w=16"
    assert run_label("ignored", tags, factors, "nan") == "t7 nan lr=0.1 w=16"
    assert run_label(None, {**tags, "optimizer.learning_rate": "3.1622776601683795e-05"}, factors, "stable") == (
        "t7 stable lr=3.16e-5 w=16"
    )
    assert run_label(None, {**tags, "replicate": "1"}, factors, "blowup", seed=3) == "t7s3 blowup lr=0.1 w=16"
    assert run_label("seed", {}, [], "nan") == "seed nan" and run_label("seed", {}, []) == "seed"
    many = {"trial": "12", **{f"a.factor_{i}": str(i * 1000.5) for i in range(12)}}
    name = run_label(None, many, list(many)[1:], "silent_failure")
    assert name.startswith("t12 silent_failure ") and len(name) <= NAME_LIMIT


def test_runs_urls_open_the_runs_table():
    assert runs_url("sqlite:////a/mlflow.db", "3") == f"{UI_ADDRESS}/#/experiments/3/runs?{RUNS_VIEW}"
    assert runs_url("http://h:5000/", "3", by_outcome=True) == (
        f"http://h:5000/#/experiments/3/runs?workflowType=machine_learning&{BY_OUTCOME}"
    )
    assert ui_command("sqlite:////a/mlflow.db", "3") == (
        "mlflow ui --backend-store-uri sqlite:////a/mlflow.db, then open "
        "http://127.0.0.1:5000/#/experiments/3/runs?workflowType=machine_learning"
    )


# ------------------------------------------------------------------------------ a real sweep
def _sweep(tmp_path: Path, capsys, *extra: str) -> list[str]:
    argv = [
        "sweep",
        str(tmp_path / "tiny.yaml"),
        "--study-name",
        STUDY,
        "--storage",
        f"journal:{tmp_path / 'optuna.journal'}",
        "--tracking-uri",
        f"sqlite:///{tmp_path / 'mlflow.db'}",
        "--quiet",
        *extra,
    ]
    assert main(argv) == 0
    return capsys.readouterr().out.strip().splitlines()


class Browser:
    """Headless Chromium driven over the DevTools protocol on a pipe (``--remote-debugging-pipe``:
    no port, no client library): pages load in real time (MLflow's artifact viewer draws the
    dashboard's plots in an iframe, which a virtual-time ``--dump-dom`` leaves blank), clicks are
    real mouse events (MLflow's menus open on pointer down).  Requests to any host but 127.0.0.1
    go to ``proxy``, which answers nothing and records them."""

    def __init__(self, proxy: RecordingProxy):
        to_chrome, self._out = os.pipe()
        self._in, from_chrome = os.pipe()

        def wire():  # Chromium reads commands on fd 3 and answers on fd 4
            a, b = os.dup(to_chrome), os.dup(from_chrome)
            os.dup2(a, 3)
            os.dup2(b, 4)

        self.proc = subprocess.Popen(
            [
                CHROMIUM,
                *HEADLESS,
                "--remote-debugging-pipe",
                f"--proxy-server=http://127.0.0.1:{proxy.port}",
                "--proxy-bypass-list=127.0.0.1",
                "--window-size=1400,1000",
                "about:blank",
            ],
            preexec_fn=wire,
            close_fds=False,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        os.close(to_chrome)
        os.close(from_chrome)
        self._buffer, self._id, self.session = b"", 0, None

    def send(self, method: str, **params):
        self._id += 1
        message = {"id": self._id, "method": method, "params": params}
        if self.session:
            message["sessionId"] = self.session
        os.write(self._out, json.dumps(message).encode() + b"\0")
        while True:
            while b"\0" not in self._buffer:
                chunk = os.read(self._in, 1 << 20)
                assert chunk, "chromium closed the DevTools pipe"
                self._buffer += chunk
            raw, self._buffer = self._buffer.split(b"\0", 1)
            answer = json.loads(raw)
            if answer.get("id") == self._id:
                assert "error" not in answer, answer["error"]
                return answer["result"]

    def open(self, url: str) -> None:
        if self.session is None:
            target = self.send("Target.createTarget", url=url)["targetId"]
            self.session = self.send("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        else:
            # a new hash route alone does not reload MLflow's single-page app (and a reload right after
            # it may reload the old route): leave the page, then load the address afresh
            self.send("Page.navigate", url="about:blank")
            self.send("Page.navigate", url=url)

    def js(self, expression: str):
        return self.send("Runtime.evaluate", expression=expression, returnByValue=True)["result"].get("value")

    def text(self) -> str:
        return self.js("document.body ? document.body.innerText : ''") or ""

    def wait_for(self, *texts: str, timeout: float = 180) -> str:
        """The page's text once it shows every one of ``texts``."""
        deadline = time.monotonic() + timeout
        while not all(t in (page := self.text()) for t in texts):
            assert time.monotonic() < deadline, f"not shown within {timeout} s: {texts}\n{page[-2000:]}"
            time.sleep(0.5)
        return page

    def click(self, text: str) -> None:
        """Press and release the mouse on the last visible element whose text is ``text``."""
        xy = self.js(
            "(t => { const e = [...document.querySelectorAll('*')].filter(e => e.children.length < 3 && "
            "e.innerText && e.innerText.trim() === t && e.getBoundingClientRect().width > 0).pop();"
            " if (!e) return null; const r = e.getBoundingClientRect(); return [r.x + r.width / 2, r.y + r.height / 2];"
            f" }})({json.dumps(text)})"
        )
        assert xy, f"nothing to click named {text!r}"
        for kind in ("mouseMoved", "mousePressed", "mouseReleased"):
            self.send("Input.dispatchMouseEvent", type=kind, x=xy[0], y=xy[1], button="left", clickCount=1)

    def screenshot(self, path: Path) -> np.ndarray:
        path.write_bytes(base64.b64decode(self.send("Page.captureScreenshot", format="png")["data"]))
        return np.asarray(Image.open(path).convert("RGB"))

    def close(self) -> None:
        self.proc.kill()
        self.proc.wait(10)
        os.close(self._in)
        os.close(self._out)


def _artifact_text(client: mlflow.MlflowClient, run_id: str, path: str, tmp_path: Path) -> str:
    return Path(client.download_artifacts(run_id, path, str(tmp_path))).read_text()


@needs_chromium
def test_the_sweeps_runs_in_the_mlflow_ui(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump(TINY, sort_keys=False))  # the space in its order
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = mlflow.MlflowClient(tracking_uri=uri)

    # three trials, then the resume that completes the budget: both end by attaching the analysis
    _sweep(tmp_path, capsys, "--n-trials", "3")
    (exp,) = [e for e in client.search_experiments() if e.name == STUDY]
    assert exp.tags[EXPERIMENT_KIND_TAG] == EXPERIMENT_KIND
    (parent,) = client.search_runs([exp.experiment_id], "tags.`pinnlab.kind` = 'study'")
    assert f"study {STUDY}: 3 trials" in _artifact_text(client, parent.info.run_id, "report.md", tmp_path / "first")
    out = _sweep(tmp_path, capsys)
    assert f"study {STUDY}: 4 trials" in _artifact_text(client, parent.info.run_id, "report.md", tmp_path / "again")
    dashboard = _artifact_text(client, parent.info.run_id, "dashboard.html", tmp_path / "again")
    assert "pinnlab divergence dashboard" in dashboard and "4 trials" in dashboard

    # the output ends with the runs table's address
    command = out[-1]
    assert command.startswith(f"to look: mlflow ui --backend-store-uri {uri}, then open ")
    url = command.rsplit(" ", 1)[-1]
    assert url == runs_url(uri, exp.experiment_id, by_outcome=True)

    children = client.search_runs([exp.experiment_id], f"tags.`mlflow.parentRunId` = '{parent.info.run_id}'")
    assert len(children) == 4
    names = {}
    for run in children:
        tags = run.data.tags
        names[run.info.run_id] = run.info.run_name
        lr, width = float(tags["optimizer.learning_rate"]), tags["model.width"]
        assert run.info.run_name == f"t{tags['trial']} {tags['outcome']} lr={lr:.3g} w={width}".replace("e+", "e")
        assert tags["outcome"] == ("nan" if lr > 1 else "stable") and tags["diverged"] == str(lr > 1).lower()
        for key in run.data.metrics:  # never a non-finite value, at any step (summary/* included)
            assert all(math.isfinite(m.value) for m in client.get_metric_history(run.info.run_id, key)), key
    nan_run = next(r for r in children if r.data.tags["outcome"] == "nan")
    assert nan_run.data.metrics["summary/nan_onset_step"] == 1  # the onset as a number; the values stay finite

    port = free_port()
    server = Server(
        [
            str(BIN / "mlflow"),
            "ui",
            "--backend-store-uri",
            uri,
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
        ],
        tmp_path,
        port,
    )
    proxy = RecordingProxy()
    browser = None
    try:
        server.answer("/api/2.0/mlflow/experiments/search", {"max_results": 10})
        base = f"http://127.0.0.1:{port}"
        browser = Browser(proxy)

        # the printed address: the runs table, every trial a row named by number and outcome
        browser.open(url.replace(UI_ADDRESS, base))
        page = browser.wait_for("Run Name", *names.values(), parent.info.run_name)
        assert "Sort: outcome" in page
        rows = re.findall(r"^(t\d+ (?:nan|stable)\b.*)$", page, re.M)
        assert [r.split()[1] for r in rows] == ["nan", "nan", "stable", "stable"]  # divergent first
        img = browser.screenshot(tmp_path / "runs-table.png")
        assert len(np.unique(img.reshape(-1, 3), axis=0)) > 100, "screenshot is (nearly) blank"

        # "group by outcome" in two clicks: Group by, then the tag outcome
        browser.click("Group by")
        browser.wait_for("Tags", "outcome", "diverged")
        browser.click("outcome")
        page = browser.wait_for("Group: nan", "Group: stable")
        assert page.index("Group: nan") < page.index(names[nan_run.info.run_id]) < page.index("Group: stable")
        browser.screenshot(tmp_path / "grouped-by-outcome.png")

        # a NaN run's page renders: its name, its tags, its (finite) metrics
        browser.open(f"{base}/#/experiments/{exp.experiment_id}/runs/{nan_run.info.run_id}?{RUNS_VIEW}")
        page = browser.wait_for(
            names[nan_run.info.run_id],
            "nan_onset_step",
            "first_nonfinite",
            "summary/nan_onset_step",
            "weight_norm/total",
        )
        assert "Oops" not in page
        browser.screenshot(tmp_path / "nan-run.png")

        # the parent run's artifacts: the dashboard drawn inside MLflow's HTML viewer, and the report
        browser.open(
            f"{base}/#/experiments/{exp.experiment_id}/runs/{parent.info.run_id}/artifacts/dashboard.html?{RUNS_VIEW}"
        )
        browser.wait_for("report.md", "dashboard.html")
        deadline = time.monotonic() + 180  # a loaded machine draws slowly
        while True:  # the heatmap's red (lr 1e19: 100 %) and green (lr 1e-3: 0 %) cells
            img = browser.screenshot(tmp_path / "parent-dashboard.png")
            shares = [
                float((np.abs(img.astype(int) - rgb).sum(axis=2) < 30).mean()) for rgb in (HEATMAP_RED, HEATMAP_GREEN)
            ]
            if min(shares) > 0.002 or time.monotonic() > deadline:
                break
            time.sleep(1)
        assert min(shares) > 0.002, shares
        assert proxy.page_hosts() == []  # the UI and the dashboard load nothing from the network
    finally:
        if browser is not None:
            browser.close()
        proxy.close()
        server.stop()
