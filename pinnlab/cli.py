"""Command line: parses arguments and delegates; no logic here.

Exit codes: 0 when a run completed (a diverging run is data, not an error), 2 for bad input or a
store that cannot be used (one line on stderr naming the field or store, the value and what is
allowed), 3 when a sweep ended with trials of its budget missing (its parent run is then not
FINISHED), 130 when stopped by Ctrl-C or SIGTERM, 1 for anything unexpected: one line naming the
exception and ``--debug``, which shows the traceback instead (so does ``PINNLAB_DEBUG=1``).

Before any command runs, :func:`prepare_process` sets what every pinnlab process needs: the
current directory importable (``problem.name: mymodule:MyProblem`` works from where the command
runs, as with ``python -m``), MLflow's usage telemetry off and its HTTP retries short (see its
docstring); spawned sweep workers inherit both.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import sys

from pinnlab.core.errors import ConfigError, PinnlabError, first_line
from pinnlab.core.preflight import check_name
from pinnlab.core.signals import Terminate as _Terminate

__all__ = ["main", "build_parser"]


class _Parser(argparse.ArgumentParser):
    """Usage errors as one line, like every other pinnlab error."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


# MLflow settings pinnlab changes unless the user set them.  Telemetry: MLflow 3 sends usage data
# by default; pinnlab's runs happen on machines without network, and a sweep must not phone home
# (MLflow also honours DO_NOT_TRACK, so a user who set either keeps their choice).  HTTP: MLflow
# retries a request 7 times with a backoff factor of 2 and waits 120 s for an answer, about 280 s
# before a refused connection is an error; pinnlab first checks that a tracking server answers
# (pinnlab.tracking.uri.check_tracking_store), and a server lost mid-run costs a metric flush
# (retried at the next one), so 2 retries and a 30 s timeout are enough.
MLFLOW_DEFAULTS = {
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "30",
    "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",  # no download bars on stderr (report, plots)
    "MLFLOW_LOGGING_LEVEL": "WARNING",  # not "Creating initial MLflow database tables..." and its other INFO lines
}


def prepare_process() -> None:
    """The current directory on ``sys.path`` (appended: it never shadows an installed package),
    :data:`MLFLOW_DEFAULTS` in the environment where the user has not set them, and the libraries'
    start-up notices dropped (:func:`pinnlab.backend.quiet_process`)."""
    from pinnlab.backend import quiet_process

    quiet_process()
    cwd = os.getcwd()
    if "" not in sys.path and cwd not in sys.path:
        sys.path.append(cwd)
    user_opted = "DO_NOT_TRACK" in os.environ
    for name, value in MLFLOW_DEFAULTS.items():
        if name == "MLFLOW_DISABLE_TELEMETRY" and user_opted:
            continue
        os.environ.setdefault(name, value)


# The studies of `pinnlab reproduce` (pinnlab.reproduce.STUDIES), for its --help without importing them.
REPRODUCTIONS = """studies (NAME):
  seed        the Stack Overflow question pinnlab grew from and its accepted answer
  convection  Krishnapriyan et al. 2021: convection failure modes, curriculum, L-BFGS
  helmholtz   Wang, Teng & Perdikaris 2021: gradient pathologies, learning-rate annealing
  ntk         Wang, Yu & Perdikaris 2022: the neural tangent kernel, NTK loss weighting
  causal      Wang, Sankaran & Perdikaris 2024: causal weighting of the residual in time
  optimizers  Rathore et al. 2024: Adam, then L-BFGS, then Nystrom-preconditioned Newton-CG
(docs/reproductions.md: what each claims and what we measured)"""


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="pinnlab", description="Sweeps and diagnostics for networks trained on derivative losses.")
    sub = parser.add_subparsers(dest="command", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--debug", action="store_true", help="show the traceback of an unexpected error")

    def add(name: str, **kwargs) -> argparse.ArgumentParser:  # --debug on every command
        return sub.add_parser(name, parents=[common], **kwargs)

    run = add("run", help="train one configuration and report its outcome")
    run.add_argument("config", metavar="CONFIG_OR_PRESET", help="a YAML file or a preset name (see `pinnlab presets`)")
    run.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config entry by dotted path, e.g. --set model.width=20 (repeatable)",
    )
    run.add_argument("--json", action="store_true", help="print the result summary as one JSON object")
    run.add_argument("--quiet", action="store_true", help="no progress bar")
    run.add_argument("--print-config", action="store_true", help="print the resolved config as YAML and exit")
    run.add_argument(
        "--tracking-uri",
        metavar="URI",
        default=None,
        help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI, else SQLite in $PINNLAB_HOME or ./pinnlab-runs)",
    )
    run.add_argument("--experiment", metavar="NAME", default="pinnlab", help="MLflow experiment (default: pinnlab)")
    run.add_argument("--no-track", action="store_true", help="do not record the run in MLflow")

    sweep = add("sweep", help="run (or resume) an Optuna sweep described by a sweep file")
    sweep.add_argument("file", metavar="FILE", help="a sweep YAML file (see sweeps/)")
    sweep.add_argument("--n-trials", type=int, help="total trials of the study (default: the file's n_trials)")
    sweep.add_argument(
        "--workers",
        type=int,
        default=1,
        help="worker processes on this machine (default 1; 0: only create the study, for `pinnlab worker`)",
    )
    sweep.add_argument(
        "--batch",
        type=int,
        help="trials a worker trains at a time, stacked when they share a network (default: the file's batch, 1)",
    )
    sweep.add_argument("--storage", help="Optuna storage URL (default: journal file in the local store)")
    sweep.add_argument("--study-name", help="study name (default: the file's study_name or its stem)")
    sweep.add_argument("--tracking-uri", help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI or the local store)")
    sweep.add_argument("--no-track", action="store_true", help="do not log to MLflow")
    sweep.add_argument("--smoke", action="store_true", help="a tiny variant: few trials of a few steps")
    sweep.add_argument("--json", action="store_true", help="print the sweep report as one JSON object")
    sweep.add_argument("--quiet", action="store_true", help="no progress line")
    sweep.add_argument(
        "--repair",
        action="store_true",
        help="first mark FAIL (and queue again) the RUNNING trials of workers that are gone, close their MLflow runs",
    )

    worker = add("worker", help="join a study from any machine and run its trials until its budget is spent")
    worker.add_argument("--study-name", required=True, help="the study (a sweep file's study_name or stem)")
    worker.add_argument(
        "--storage", required=True, help="the study's Optuna storage URL (postgresql://…, journal:PATH)"
    )
    worker.add_argument(
        "--tracking-uri",
        help="how this machine reaches the study's MLflow store (default: the URI the study was created with)",
    )
    worker.add_argument(
        "--n-trials", type=int, help="stop after this many trials of this worker (default: until the budget is spent)"
    )
    worker.add_argument(
        "--threads", type=int, help="TensorFlow threads (default: all cores; cores / workers per machine)"
    )
    worker.add_argument("--batch", type=int, help="trials trained at a time (default: the study's batch)")
    worker.add_argument("--json", action="store_true", help="print the study report as one JSON object")

    add("presets", help="list the shipped presets")

    plots = add("plots", help="draw and log the PNG plots of a recorded run (sweep trials skip them)")
    plots.add_argument("run_id", metavar="RUN_ID", help="the MLflow run id (a trial's user attribute mlflow_run_id)")
    plots.add_argument("--tracking-uri", help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI or the local store)")

    report = add("report", help="divergence rates, onsets, weight growth and importance of a study")
    report.add_argument("study", metavar="STUDY", help="the study name (a sweep file's study_name or stem)")
    report.add_argument("--storage", help="Optuna storage URL (default: journal file in the local store)")
    report.add_argument("--tracking-uri", help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI or the local store)")
    report.add_argument(
        "--format", choices=["table", "markdown", "csv", "json"], default="table", help="default: table"
    )

    dash = add("dashboard", help="write a study's divergence dashboard (one offline HTML file)")
    dash.add_argument("study", metavar="STUDY", help="the study name (a sweep file's study_name or stem)")
    dash.add_argument("--out", metavar="FILE.html", help="default: <store>/dashboards/<STUDY>.html")
    dash.add_argument("--storage", help="Optuna storage URL (default: journal file in the local store)")
    dash.add_argument("--tracking-uri", help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI or the local store)")
    dash.add_argument(
        "--factors", nargs=2, metavar=("A", "B"), help="heatmap factors (default: the two most important)"
    )

    rep = add(
        "reproduce",
        help="reproduce a published divergence study: claim / source / ours",
        epilog=REPRODUCTIONS,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    rep.add_argument("study", metavar="NAME", help="seed, convection, helmholtz or ntk (described below)")
    rep.add_argument("--quick", action="store_true", help="a reduced variant (fewer seeds and steps) for CI")
    rep.add_argument("--json", action="store_true", help="print the measured figures as one JSON object")
    rep.add_argument("--out", metavar="DIR", help="where figures and tables go (default: <store>/reproductions/NAME)")
    rep.add_argument("--tracking-uri", help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI or the local store)")
    rep.add_argument("--no-track", action="store_true", help="do not log to MLflow")
    rep.add_argument("--quiet", action="store_true", help="no progress output")
    return parser


def _cmd_run(args) -> int:
    from pinnlab.config import load_config

    cfg = load_config(args.config, args.overrides)
    if not args.no_track:
        check_name("--experiment", args.experiment)
    if args.print_config:
        print(cfg.to_yaml(), end="")
        return 0
    from pinnlab.runs import Tracking, run_config
    from pinnlab.training import ProgressBar
    from pinnlab.training.causes import static_causes

    callbacks = [] if args.quiet else [ProgressBar(desc=cfg.name or str(args.config))]
    tracking = None
    if not args.no_track:
        from pinnlab.tracking.uri import check_tracking_store

        check_tracking_store(args.tracking_uri)  # an unreachable server: one line now, not after retries
        tracking = Tracking(
            tracking_uri=args.tracking_uri,
            experiment=args.experiment,
            run_name=cfg.name or str(args.config),
            tags={"config": str(args.config), "overrides": " ".join(args.overrides)},
            background_plots=True,  # the summary prints first; the process ends once they are logged
        )
    # known before training, said before the run spends its budget (and after the store answered:
    # a store error stays one line)
    for c in static_causes(cfg):  # known before training: said before the run spends its budget
        print(f"known cause before training: {c.cause}: {c.evidence} (remedy: {c.remedy})", file=sys.stderr)
    _SIGTERM.check()  # a stop during start-up: before any run exists
    run = run_config(cfg, tracking=tracking, callbacks=[*callbacks, _SIGTERM], guard=_SIGTERM.deferred())
    summary = run.summary()
    if summary.get("replicates") is None:  # one run: a rate of one seed says no more than `outcome`
        del summary["replicates"], summary["divergence_rate"]
    if args.json:
        print(json.dumps(summary))
    else:
        _print_summary(summary)
    if run.tracker is not None:
        print(run.tracker.describe(), file=sys.stderr)
    return 0


def _print_summary(s: dict) -> None:
    keys = [
        "outcome",
        "reason",
        "steps_run",
        "steps_budget",
        "nan_onset_step",
        "first_nonfinite",
        "final_loss",
        "weight_norm_initial",
        "weight_norm_final",
        "rel_l2_error",
        "heldout_ratio",
        "wall_seconds",
        "divergence_rate",
    ]
    width = max(map(len, keys))
    for k in (k for k in keys if k in s):
        v = s[k]
        text = f"{v:.4g}" if isinstance(v, float) else ("-" if v is None else str(v))
        print(f"{k:<{width}}  {text}")
    alarm = s.get("forecast") or {}
    if alarm.get("first_alarm_step") is not None:
        print(
            f"{'forecast':<{width}}  alarm at step {alarm['first_alarm_step']} ({alarm['signal']} = {alarm['value']:.3g})"
        )
    for c in s.get("causes") or []:
        print(f"cause: {c['cause']}: {c['evidence']}\n  remedy: {c['remedy']}")
    if s.get("risks"):  # the rules held, but the run worked
        print("(risks: cause rules that held on a run that worked; a cause is listed only for a failure)")
    for c in s.get("risks") or []:
        print(f"risk: {c['cause']}: {c['evidence']}\n  remedy: {c['remedy']}")
    for row in s.get("replicates") or []:  # training.replicates > 1: one line per seed
        onset = row["nan_onset_step"] if row["nan_onset_step"] is not None else row["divergence_step"]
        loss = "-" if row["final_loss"] is None else f"{row['final_loss']:.4g}"
        print(
            f"  seed {row['seed']:<6} {row['outcome']:<15} onset {'-' if onset is None else onset:<8} final_loss {loss}"
        )
    said = " ".join(c["evidence"] for c in [*(s.get("causes") or []), *(s.get("risks") or [])])
    for w in s["warnings"]:
        if w not in said:  # a static cause's evidence is its warning: said once, as the cause
            print(f"warning: {w}")


def _at_least(flag: str, value: int | None, low: int) -> None:
    if value is not None and value < low:
        raise ConfigError(flag, f"{value} is not allowed: must be >= {low}")


def _not_empty(flag: str, value: str | None) -> None:
    if value is not None and not value.strip():
        raise ConfigError(flag, f"{value!r} is not allowed: give a value, or leave the option out for the default")


# More local workers than this only compete for the cores (each starts its own TensorFlow).
MAX_WORKERS = 4 * (os.cpu_count() or 1)


def _at_most(flag: str, value: int | None, high: int) -> None:
    if value is not None and value > high:
        raise ConfigError(flag, f"{value} is not allowed: must be <= {high} (4 per core on this machine)")


def _at_most_batch(value: int | None) -> None:
    from pinnlab.sweep.spec import MAX_BATCH

    if value is not None and value > MAX_BATCH:
        raise ConfigError("--batch", f"{value} is not allowed: must be <= {MAX_BATCH}")


def _cmd_sweep(args) -> int:
    from pinnlab.sweep import load_sweep, run_sweep

    _at_least("--workers", args.workers, 0)
    _at_most("--workers", args.workers, MAX_WORKERS)
    _at_least("--n-trials", args.n_trials, 1)
    _not_empty("--storage", args.storage)
    _at_least("--batch", args.batch, 1)
    _at_most_batch(args.batch)
    spec = load_sweep(args.file, {"n_trials": args.n_trials, "study_name": args.study_name, "batch": args.batch})
    if args.smoke:
        spec = spec.for_smoke()
    report = run_sweep(
        spec,
        workers=args.workers,
        storage=args.storage,
        tracking_uri=args.tracking_uri,
        track=not args.no_track,
        progress=not args.quiet,
        repair=args.repair,
    )
    if args.json:
        print(json.dumps(report.to_dict()))
    else:
        if args.repair or report.repaired:
            numbers = f" ({', '.join(map(str, report.repaired))})" if report.repaired else ""
            print(
                f"repaired: {len(report.repaired)} trials marked FAIL{numbers}, "
                f"{report.closed_runs} other MLflow runs closed KILLED"
            )
        _print_sweep(report)
        if args.workers == 0 and report.done < report.n_trials:
            print(f"run workers with: pinnlab worker --study-name {report.study_name} --storage {report.storage}")
            if report.tracking_uri and not report.tracking_uri.startswith(("http://", "https://")):
                print("(the MLflow store is a local file: workers on other machines need --tracking-uri of a server)")
    if args.workers > 0 and report.done < report.n_trials:
        print(
            f"pinnlab sweep: study {report.study_name} is incomplete: {report.done}/{report.n_trials} trials; "
            "run the same command again to finish it",
            file=sys.stderr,
        )
        return 3
    return 0


def _cmd_worker(args) -> int:
    from pinnlab.sweep import run_worker

    _at_least("--n-trials", args.n_trials, 1)
    _at_least("--threads", args.threads, 1)
    _not_empty("--storage", args.storage)
    check_name("--study-name", args.study_name)
    _at_least("--batch", args.batch, 1)
    _at_most_batch(args.batch)
    report = run_worker(
        args.study_name,
        args.storage,
        tracking_uri=args.tracking_uri,
        n_trials=args.n_trials,
        threads=args.threads,
        batch=args.batch,
    )
    if args.json:
        print(json.dumps(report.to_dict()))
    else:
        _print_sweep(report, f"this worker ran {report.ran_now}")
    return 0


# Budget kinds that `study_report` counts beside the outcomes (pinnlab.core.outcomes.trial_outcome): FAIL
# trials that never produced a result, shown apart from the outcomes in the summary.
_UNCOUNTED = {"retried": "run again after their worker died or was stopped", "surplus": "never trained"}


def _print_sweep(r, ran: str | None = None) -> None:
    states = ", ".join(f"{k} {v}" for k, v in sorted(r.counts.items()))
    uncounted = {k: v for k, v in r.outcomes.items() if k in _UNCOUNTED}  # trials that produced no result
    outcomes = ", ".join(f"{k} {v}" for k, v in sorted(r.outcomes.items()) if k not in uncounted)
    print(f"study {r.study_name}: {r.done}/{r.n_trials} trials ({states}); {ran or f'ran {r.ran_now} now'}")
    print(f"outcomes: {outcomes or '-'}")
    if uncounted:
        print("not counted: " + ", ".join(f"{k} {v} ({_UNCOUNTED[k]})" for k, v in sorted(uncounted.items())))
    for title, table in (
        ("known before training", r.known_causes),
        ("causes found", r.causes),
        ("risks (in trials that worked)", r.risks),
    ):
        if table:
            print(f"{title}: " + ", ".join(f"{k} {v}" for k, v in sorted(table.items())))
    if r.best_value is not None:
        print(f"best value {r.best_value:.4g} with {r.best_params}")
    print(f"optuna storage: {r.storage}")
    if r.counts.get("RUNNING") and r.done < r.n_trials:
        print(f"{r.counts['RUNNING']} trials RUNNING: if no worker of this study is alive, resume with --repair")
    if r.tracking_uri:  # last: the address of the runs table
        from pinnlab.tracking.uri import ui_command

        where = f"experiment {r.experiment}, " if r.experiment else ""
        print(f"mlflow: {r.tracking_uri} ({where}parent run {r.parent_run_id})")
        print(f"to look: {ui_command(r.tracking_uri, r.experiment_id, by_outcome=True)}")


def _cmd_presets(args) -> int:
    import shutil
    import textwrap
    from importlib import resources

    from pinnlab.config import preset_names

    names = preset_names()
    width = max(map(len, names))
    columns = max(60, min(shutil.get_terminal_size((100, 24)).columns, 120))
    for name in names:  # each preset's leading comment says what it is: its first sentence, wrapped
        text = resources.files("pinnlab.presets").joinpath(f"{name}.yaml").read_text()
        first = _first_sentence(text)
        lines = textwrap.wrap(first, columns - width - 2) or [""]
        print(f"{name:<{width}}  {lines[0]}".rstrip())
        for line in lines[1:]:
            print(" " * (width + 2) + line)
    return 0


def _first_sentence(yaml_text: str) -> str:
    """The first sentence of a YAML file's leading comment block, its lines joined: up to a full stop
    that ends a line or is followed by two spaces or a capital letter (not "et al. 2021")."""
    import re

    comment = []
    for line in yaml_text.splitlines():
        if not line.startswith("#"):
            break
        comment.append(line.lstrip("#").strip())
    text = "\n".join(comment)
    end = re.search(r"\.(?=\n|\s{2}|\s+[A-Z]|$)", text)
    return " ".join((text[: end.end()] if end else text).split())


def _cmd_plots(args) -> int:
    from pinnlab.tracking.uri import check_tracking_store

    check_tracking_store(args.tracking_uri, create=False)  # read-only: never creates or migrates a store
    from pinnlab.tracking.replot import plot_run

    print("\n".join(plot_run(args.run_id, args.tracking_uri)))
    return 0


def _cmd_report(args) -> int:
    from pinnlab.analysis import report

    check_name("STUDY", args.study)
    _not_empty("--storage", args.storage)
    print(report(args.study, args.storage, args.tracking_uri, args.format), end="")
    return 0


def _cmd_dashboard(args) -> int:
    from pinnlab.core.preflight import check_output_file
    from pinnlab.dashboards.divergence import write_dashboard

    check_name("STUDY", args.study)
    _not_empty("--storage", args.storage)
    if args.out is not None:
        check_output_file("--out", args.out)
    print(write_dashboard(args.study, args.out, args.storage, args.tracking_uri, args.factors))
    return 0


def _cmd_reproduce(args) -> int:
    from pinnlab.reproduce import reproduce

    study = reproduce(
        args.study,
        quick=args.quick,
        out=args.out,
        tracking_uri=args.tracking_uri,
        track=not args.no_track,
        progress=not args.quiet,
        interrupt=_SIGTERM,
    )
    print(json.dumps(study.to_dict()) if args.json else study.table())
    return 0


COMMANDS = {
    "run": _cmd_run,
    "sweep": _cmd_sweep,
    "worker": _cmd_worker,
    "presets": _cmd_presets,
    "plots": _cmd_plots,
    "report": _cmd_report,
    "dashboard": _cmd_dashboard,
    "reproduce": _cmd_reproduce,
}


_SIGTERM = _Terminate()
DEFERRED = {"run", "sweep", "worker", "reproduce"}  # commands whose stop waits for a safe point


def _wait_background() -> None:
    """Wait, inside the signal handling, for the plots a tracked run draws on its background
    thread (the interpreter would wait for them at exit, where a Ctrl-C shows a traceback)."""
    background = sys.modules.get("pinnlab.tracking.background")
    if background is not None:
        background.wait()


def _exit_on_signal(command: str) -> None:
    """Once :func:`main`, as the process's entry, is done: from here on a SIGINT or SIGTERM ends
    the process at once with one line and code 130, not a traceback from the interpreter's
    teardown (which takes seconds with TensorFlow loaded)."""

    def stop(signum, frame):
        os.write(2, f"pinnlab {command}: interrupted by {signal.Signals(signum).name}\n".encode())
        os._exit(130)

    for s in (signal.SIGINT, signal.SIGTERM):
        signal.signal(s, stop)


def main(argv: list[str] | None = None) -> int:
    prepare_process()
    args = build_parser().parse_args(argv)
    debug = args.debug or os.environ.get("PINNLAB_DEBUG", "") not in ("", "0")
    # SIGTERM and Ctrl-C alike: the commands that write are stopped at a safe point (runs KILLED,
    # trials FAIL, never RUNNING), or by the stop watchdog after its grace (pinnlab.core.signals)
    _SIGTERM.reset()
    _SIGTERM.label = f"pinnlab {args.command}"
    try:
        with (
            _SIGTERM.installed([signal.SIGTERM, signal.SIGINT]),
            _SIGTERM.deferred() if args.command in DEFERRED else contextlib.nullcontext(),
        ):
            code = COMMANDS[args.command](args)
            _wait_background()
            return code
    except PinnlabError as exc:
        print(f"pinnlab {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:
        print(f"pinnlab {args.command}: {str(exc) or 'interrupted'}", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader went away (`pinnlab presets | head`): nothing more to say
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # so the exit's flush is quiet
        return 1
    except Exception as exc:  # last resort: a bug or an unforeseen failure is one line, not a traceback
        if debug:
            raise
        hidden = _hidden_error(exc)
        if hidden is not None:
            print(f"pinnlab {args.command}: error: {hidden}", file=sys.stderr)
            return 2
        print(f"pinnlab {args.command}: internal error: {unexpected(exc)}", file=sys.stderr)
        return 1
    finally:
        if argv is None:  # the process's own command: a signal once it is over must not show a traceback
            _exit_on_signal(args.command)


def _hidden_error(exc: BaseException) -> PinnlabError | None:
    """A pinnlab error that a library's clean-up code replaced while handling it (Optuna's
    ``finally`` asserts "Should not reach." when a trial's result could not be stored), else None."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, PinnlabError):
            return exc
        seen.add(id(exc))
        exc = exc.__context__
    return None


def unexpected(exc: BaseException) -> str:
    """The one line of an unexpected exception, with how to see more."""
    what = "out of memory" if isinstance(exc, MemoryError) else f"{type(exc).__name__}: {first_line(exc)}"
    return f"{what} (run again with --debug for the traceback, and report it if the input was valid)"


if __name__ == "__main__":
    sys.exit(main())
