"""The dashboard in a real browser, the MLflow and Optuna servers on a real sweep, the README guide.

* headless Chromium (Debian's ``chromium``; ``.ci/run`` installs it) opens the dashboard file from
  disk, with every network request sent to a local recording proxy: the six views must be drawn
  (plotly's SVG / WebGL elements in the DOM), the screenshot must show them (pixels of the heatmap's
  colours), and the page must request nothing from the network;
* ``mlflow server`` on 127.0.0.1 serves the sweep's parent run and its children with outcome tags;
* the commands of the README's "Is my run diverging?" section run as written in the directory of
  the sweep (``./pinnlab-runs``), the long-running ones until they answer.

The study is the tiny one of ``tests/analysis/test_analysis.py`` (built once per session).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from pinnlab.analysis import trials_frame
from pinnlab.cli import main
from tests.analysis.test_analysis import STUDY, VIEWS, build_study

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None, reason="Debian's chromium is not installed (apt-get install -y chromium; .ci/run does it)"
)
# Chromium's own background traffic (component updates, time sync, sign-in), not the page's
BROWSER_HOSTS = re.compile(r"(^|\.)(google\.com|googleapis\.com|gvt1\.com|gstatic\.com)$")
HEATMAP_RED, HEATMAP_GREEN = (0xD6, 0x27, 0x28), (0x2C, 0xA0, 0x2C)


@pytest.fixture(scope="session")
def study(tmp_path_factory) -> dict:
    return build_study(tmp_path_factory.getbasetemp() / "analysis-study")


def clean_env() -> dict[str, str]:
    """The environment of a user in the sweep's directory: the venv first, the default stores."""
    env = {k: v for k, v in os.environ.items() if k not in ("PINNLAB_HOME", "MLFLOW_TRACKING_URI")}
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    return env


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ------------------------------------------------------------------------------------ browser
class RecordingProxy:
    """An HTTP proxy that answers nothing and records the first line of every request."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.requests: list[str] = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                conn.settimeout(2)
                try:
                    self.requests.append(conn.recv(4096).split(b"\r\n")[0].decode("latin-1"))
                except OSError:
                    pass

    def hosts(self) -> list[str]:
        out = []
        for line in self.requests:
            parts = line.split()
            if len(parts) >= 2:
                target = parts[1]
                host = re.sub(r"^[a-z]+://", "", target).split("/")[0].rsplit(":", 1)[0]
                out.append(host)
        return out

    def page_hosts(self) -> list[str]:
        return [h for h in self.hosts() if not BROWSER_HOSTS.search(h)]

    def close(self):
        self.sock.close()


# headless Chromium without a GPU, a sandbox (root in containers) or any background traffic
HEADLESS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--enable-unsafe-swiftshader",
    "--hide-scrollbars",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--disable-dev-shm-usage",
]


def chromium(url: str, proxy: RecordingProxy, screenshot: Path | None = None, budget_ms: int = 8000) -> str:
    """Load ``url`` headless (every request through ``proxy``); returns the DOM after rendering."""
    cmd = [
        CHROMIUM,
        *HEADLESS,
        f"--proxy-server=http://127.0.0.1:{proxy.port}",
        "--proxy-bypass-list=<-loopback>",
        "--window-size=1400,3000",
        f"--virtual-time-budget={budget_ms}",
        "--dump-dom",
    ]
    if screenshot is not None:
        cmd.append(f"--screenshot={screenshot}")
    proc = subprocess.run([*cmd, url], capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


def sections(dom: str) -> dict[str, str]:
    """Panel id -> its DOM (scripts removed: plotly.js itself contains every class name)."""
    out = {}
    for key, body in re.findall(r'<section class="panel" id="([^"]+)">(.*?)</section>', dom, re.S):
        out[key] = re.sub(r"<script\b.*?</script>", "", body, flags=re.S)
    return out


def classes(dom: str, name: str) -> int:
    """How many elements have the class ``name``."""
    return len(re.findall(r'class="(?:[^"]*\s)?' + re.escape(name) + r'(?:\s[^"]*)?"', dom))


@needs_chromium
def test_dashboard_renders_offline_in_chromium(study, tmp_path):
    out = tmp_path / "dashboard.html"
    argv = [
        "dashboard",
        STUDY,
        "--out",
        str(out),
        "--storage",
        f"journal:{study['journal']}",
        "--tracking-uri",
        study["tracking_uri"],
    ]
    assert main(argv) == 0
    html = out.read_text()
    assert not re.search(r"<script[^>]+src=", html) and not re.search(r"<link[^>]+href=\"?https?:", html)

    png = tmp_path / "dashboard.png"
    proxy = RecordingProxy()
    try:
        dom = chromium(out.as_uri(), proxy, png)
    finally:
        proxy.close()
    assert proxy.page_hosts() == [], f"the page made network requests: {proxy.requests}"

    views = sections(dom)
    assert list(views) == VIEWS
    drawn = {  # elements (by class) that plotly adds only when it draws a trace of that kind
        "heatmap": ["hm"],
        "trajectories": ["js-line", "point"],  # lines, and the NaN-onset markers
        "nan-onset": ["bars", "point"],
        "parallel": ["gl-canvas-context", "y-axis"],
        "grad-terms": ["boxes", "box"],
        "causes": [],  # stacked bars, or the panel's note when no cause was found
        "survival": ["js-line"],  # Kaplan-Meier step lines
        "aligned": ["point"],  # the NaN-at-step-0 trials: one point each at x = 0
        "boundary-plane": [],  # two learning rates are no range to fit: the panel says so
    }
    for key, body in views.items():
        assert classes(body, "main-svg") and classes(body, "plot-container"), key
        for name in drawn[key]:
            assert classes(body, name), (key, name)
        assert "WebGL is not supported" not in body, key
    assert classes(views["trajectories"], "js-line") >= 4  # 2 stable trials x (weight norm, grad norm)

    from PIL import Image

    img = np.asarray(Image.open(png).convert("RGB"))
    assert img.shape[:2] == (3000, 1400)
    colours = np.unique(img.reshape(-1, 3), axis=0)
    assert len(colours) > 500, "screenshot is (nearly) blank"

    def share(rgb):
        return float((np.abs(img.astype(int) - rgb).sum(axis=2) < 30).mean())

    assert share(HEATMAP_RED) > 0.002 and share(HEATMAP_GREEN) > 0.002  # lr 1e19: 100 %; lr 1e-3: 0 %


@needs_chromium
def test_the_network_check_catches_a_cdn_script(tmp_path):
    """The negative control of the offline check above."""
    page = tmp_path / "cdn.html"
    page.write_text('<html><body><script src="https://cdn.plot.ly/plotly-2.35.2.min.js"></script></body></html>')
    proxy = RecordingProxy()
    try:
        chromium(page.as_uri(), proxy, budget_ms=1000)
    finally:
        proxy.close()
    assert "cdn.plot.ly" in proxy.page_hosts()


# ------------------------------------------------------------------------------------ servers
def guide_commands() -> list[str]:
    """The ``$ `` lines of the console blocks in README's "Is my run diverging?" section."""
    text = (ROOT / "README.md").read_text()
    section = text.split("## Is my run diverging?", 1)[1].split("\n## ", 1)[0]
    cmds = []
    for block in re.findall(r"```console\n(.*?)```", section, re.S):
        for line in block.splitlines():
            if line.startswith("$ "):
                cmds.append(line[2:].split("  #")[0].strip())
    return cmds


def guide_command(prefix: str) -> str:
    (cmd,) = [c for c in guide_commands() if c.startswith(prefix)]
    return cmd


def fetch(url: str, body: dict | None = None):
    req = urllib.request.Request(
        url, data=None if body is None else json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.load(resp)


class Server:
    """A server process started in the sweep's directory; :meth:`answer` waits until it serves."""

    def __init__(self, argv: list[str], cwd: str | Path, port: int):
        self.argv, self.port = argv, port
        self.log = Path(cwd) / f"server-{port}.log"
        with open(self.log, "w") as out:
            self.proc = subprocess.Popen(
                argv, cwd=cwd, env=clean_env(), stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )

    def answer(self, path: str, body: dict | None = None, timeout: float = 180):
        deadline = time.monotonic() + timeout
        while True:
            try:
                return fetch(f"http://127.0.0.1:{self.port}{path}", body)
            except (OSError, ValueError):
                if self.proc.poll() is not None:
                    pytest.fail(
                        f"{shlex.join(self.argv)} exited with {self.proc.returncode}:\n{self.log.read_text()[-3000:]}"
                    )
                if time.monotonic() > deadline:
                    pytest.fail(
                        f"{shlex.join(self.argv)} did not answer in {timeout} s:\n{self.log.read_text()[-3000:]}"
                    )
                time.sleep(0.25)

    def stop(self):
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)


@pytest.fixture(scope="module")
def servers(study) -> Iterator[dict[str, Server]]:
    """``mlflow server`` on the sweep's store, and the guide's ``mlflow ui`` and ``optuna-dashboard``
    commands as written (plus a free port on 127.0.0.1), all started at once (each takes seconds)."""
    started: dict[str, Server] = {}
    try:
        port = free_port()
        started["mlflow server"] = Server(
            [
                str(BIN / "mlflow"),
                "server",
                "--backend-store-uri",
                study["tracking_uri"],
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--workers",
                "1",
            ],
            study["project"],
            port,
        )
        for prefix, extra in (("mlflow ui", ["--workers", "1"]), ("optuna-dashboard", [])):
            port = free_port()
            argv = shlex.split(guide_command(prefix)) + ["--host", "127.0.0.1", "--port", str(port), *extra]
            argv[0] = str(BIN / argv[0])  # the venv's console script, as on an activated venv's PATH
            started[prefix] = Server(argv, study["project"], port)
        yield started
    finally:
        for server in started.values():
            server.stop()


def test_mlflow_server_serves_the_parent_run_and_its_children(study, servers):
    server = servers["mlflow server"]
    answer = server.answer("/api/2.0/mlflow/experiments/search", {"max_results": 100})
    (exp,) = [e for e in answer["experiments"] if e["name"] == STUDY]
    runs = server.answer("/api/2.0/mlflow/runs/search", {"experiment_ids": [exp["experiment_id"]], "max_results": 100})
    tags = {r["info"]["run_id"]: {t["key"]: t["value"] for t in r["data"].get("tags", [])} for r in runs["runs"]}
    trials = trials_frame(STUDY, f"journal:{study['journal']}", study["tracking_uri"])
    parents = [rid for rid, t in tags.items() if "mlflow.parentRunId" not in t]
    assert len(parents) == 1 and tags[parents[0]]["study"] == STUDY
    children = {rid: t for rid, t in tags.items() if t.get("mlflow.parentRunId") == parents[0]}
    assert set(children) == set(trials["mlflow_run_id"]) and len(children) == 4
    for row in trials.to_dict("records"):
        t = children[row["mlflow_run_id"]]
        assert t["outcome"] == row["outcome"] and t["trial"] == str(row["trial"])
        assert t["first_nonfinite"] == (row["first_nonfinite"] if isinstance(row["first_nonfinite"], str) else "none")


# ------------------------------------------------------------------------------ the README guide
def test_the_guide_has_the_four_commands():
    starts = [" ".join(c.split()[:2]) for c in guide_commands()]
    assert starts == [
        "pinnlab report",
        "pinnlab dashboard",
        "mlflow ui",
        "optuna-dashboard pinnlab-runs/optuna.journal",
    ]


def test_guide_report_and_dashboard_commands_work_as_written(study, capsys, monkeypatch):
    """In the sweep's directory with the default stores; in-process (the `pinnlab` console script is
    ``pinnlab.cli:main``, and a subprocess would pay TensorFlow's import, ~8 s, per command)."""
    monkeypatch.delenv("PINNLAB_HOME", raising=False)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.chdir(study["project"])
    cmds = [c for c in guide_commands() if c.startswith("pinnlab ")]
    assert len(cmds) == 2
    for cmd in cmds:
        argv = shlex.split(cmd)
        assert argv[0] == "pinnlab"
        assert main(argv[1:]) == 0, cmd
        out = capsys.readouterr().out
        if argv[1] == "report":
            assert f"study {STUDY}: 4 trials" in out and "What drives divergence" in out
        else:
            path = Path(out.strip())
            assert path == Path(study["project"]) / "pinnlab-runs" / "dashboards" / f"{STUDY}.html"
            assert path.stat().st_size > 1_000_000  # plotly.js inlined


def test_guide_mlflow_ui_command_works_as_written(servers):
    answer = servers["mlflow ui"].answer("/api/2.0/mlflow/experiments/search", {"max_results": 100})
    assert STUDY in [e["name"] for e in answer["experiments"]]


def test_guide_optuna_dashboard_command_works_as_written(servers):
    answer = servers["optuna-dashboard"].answer("/api/studies")
    assert STUDY in [s["study_name"] for s in answer["study_summaries"]]
