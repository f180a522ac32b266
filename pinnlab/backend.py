"""TensorFlow imported once and quietly, and the third-party notices a pinnlab process drops.

Importing TensorFlow on a machine without a GPU prints C++ and absl start-up lines to the process's
standard error (``Could not find cuda drivers``, the oneDNN and CPU-instructions notices, and at
the first tensor ``failed call to cuInit``).  ``TF_CPP_MIN_LOG_LEVEL`` does not reach the lines
written before absl's logging is initialised, so the import runs with file descriptor 2 redirected
into a temporary file, its CPU device initialised inside; afterwards every captured line that is
not one of those known notices is written back (all of them when the import failed): an error is
one line in a terminal, a run's output is pinnlab's own, and nothing unexpected is hidden.

Two ways in, one mechanism (:func:`_stderr_filtered`):

* :func:`import_tensorflow`: what pinnlab's training path calls before it touches TensorFlow, so a
  library caller gets the quiet import too;
* :func:`quiet_process`: called first by every pinnlab process (the command line, a spawned sweep
  worker).  It puts a finder on ``sys.meta_path`` that makes the process's first ``import
  tensorflow``, wherever it happens (``import keras``, a module importing it at its top), the quiet
  import; sets Optuna's logger to warnings once Optuna is loaded (its "A new study created" and
  per-trial INFO lines; pinnlab prints its own progress); and drops TensorFlow's "triggered
  tf.function retracing" warning (each trainer owns its compiled functions and traces them once,
  which TensorFlow counts as retracing once a process built five trainers).

Only those named notices are dropped: warnings from the user's own code, and any other warning of
these libraries, are shown, each once per process and on a line of its own (:func:`_show_once`).  MLflow's INFO lines are set off by the command line through
``MLFLOW_LOGGING_LEVEL`` (``pinnlab.cli.MLFLOW_DEFAULTS``), which a user can set to see them.
"""

from __future__ import annotations

import contextlib
import importlib.abc
import logging
import os
import re
import sys
import tempfile
import warnings
from collections.abc import Callable, Iterator
from types import ModuleType

__all__ = ["import_tensorflow", "quiet_process", "NOISE"]

# start-up notices of TensorFlow's C++ runtime on a CPU-only machine (matched per line)
NOISE = re.compile(
    r"All log messages before absl::InitializeLog\(\)"
    r"|cudart_stub\.cc|cuda_platform\.cc|cuda_executor\.cc|cuda_dnn\.cc|cuda_fft\.cc|cuda_blas\.cc"
    r"|failed call to cuInit|Could not find cuda drivers|Unable to register cu\w+ factory"
    r"|cpu_feature_guard\.cc|To enable the following instructions|rebuild TensorFlow with the appropriate"
    r"|oneDNN custom operations are on|TF_ENABLE_ONEDNN_OPTS|computation_placer\.cc"
)

# TensorFlow's Python-logger warning dropped by quiet_process (see the module docstring)
RETRACING = "triggered tf.function retracing"


@contextlib.contextmanager
def _stderr_filtered() -> Iterator[None]:
    """File descriptor 2 into a temporary file for the block; then the captured lines that are not
    :data:`NOISE` are written to ``sys.stderr``, every captured line when the block raised."""
    sys.stderr.flush()
    saved = os.dup(2)
    failed = True
    with tempfile.TemporaryFile(mode="w+b") as capture:
        os.dup2(capture.fileno(), 2)
        try:
            yield
            failed = False
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            capture.seek(0)
            lines = capture.read().decode(errors="replace").splitlines()
            kept = lines if failed else [line for line in lines if not NOISE.search(line)]
            if kept:
                print("\n".join(kept), file=sys.stderr, flush=True)


def _start_device(tf: ModuleType) -> None:
    """Create the first tensor, which initialises the CPU device (the cuInit line), with the thread
    pools ``TF_NUM_INTRAOP_THREADS`` / ``TF_NUM_INTEROP_THREADS`` ask for (a sweep worker sets them
    before its import; a pool cannot change once the device exists)."""
    for name, setter in (
        ("TF_NUM_INTRAOP_THREADS", tf.config.threading.set_intra_op_parallelism_threads),
        ("TF_NUM_INTEROP_THREADS", tf.config.threading.set_inter_op_parallelism_threads),
    ):
        value = os.environ.get(name, "")
        if value.isdigit() and int(value) > 0:
            setter(int(value))
    tf.constant(0.0)


def import_tensorflow() -> ModuleType:
    """``import tensorflow`` with its start-up notices dropped (other output is passed through)."""
    if "tensorflow" in sys.modules:
        return sys.modules["tensorflow"]
    with _stderr_filtered():
        import tensorflow as tf

        _start_device(tf)
    return tf


class _Loaded(importlib.abc.Loader):
    """The loader of a module :class:`_QuietImports` watches: the real loader, then ``after``."""

    def __init__(self, loader: importlib.abc.Loader, after: Callable[[importlib.abc.Loader, ModuleType], None]):
        self.loader = loader
        self.after = after

    def create_module(self, spec):
        return self.loader.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        module.__loader__ = module.__spec__.loader = self.loader  # as if imported without us
        self.after(self.loader, module)


def _tensorflow_loaded(loader: importlib.abc.Loader, module: ModuleType) -> None:
    with _stderr_filtered():
        loader.exec_module(module)
        _start_device(module)


def _optuna_loaded(loader: importlib.abc.Loader, module: ModuleType) -> None:
    loader.exec_module(module)
    _optuna_warnings_only(module)


def _optuna_warnings_only(optuna: ModuleType) -> None:
    optuna.logging.set_verbosity(optuna.logging.WARNING)


class _QuietImports(importlib.abc.MetaPathFinder):
    """First on ``sys.meta_path``: the import of a module named in :data:`_AFTER` runs through its
    function (the real import, and what follows it); every other import is left to the finders
    after this one."""

    def find_spec(self, fullname, path=None, target=None):
        after = _AFTER.get(fullname)
        if after is None:
            return None
        for finder in sys.meta_path:  # the spec the import would have used without this finder
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None:
                if spec.loader is not None:
                    spec.loader = _Loaded(spec.loader, after)
                return spec
        return None


_AFTER = {"tensorflow": _tensorflow_loaded, "optuna": _optuna_loaded}


class _NoRetracingWarning(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return RETRACING not in record.getMessage()


_SHOWN: set[tuple[str, type, str, int]] = set()


def _show_once(message, category, filename, lineno, file=None, line=None) -> None:
    """``warnings.showwarning`` of a pinnlab process: each warning (text, category, place) once,
    and on a line of its own while a progress bar is drawn (the bar is cleared and redrawn around
    it, ``tqdm.external_write_mode``).  Python's own "once per place" is not enough: every
    ``warnings.catch_warnings()`` (TensorFlow enters some while it traces) resets it, so a warning
    in a user's ``pde`` came back at each trace."""
    key = (str(message), category, str(filename), lineno)
    if key in _SHOWN:
        return
    _SHOWN.add(key)
    stream = sys.stderr if file is None else file
    if stream is None:
        return
    text = warnings.formatwarning(message, category, filename, lineno, line)
    bars = sys.modules.get("tqdm.std")
    try:
        with bars.tqdm.external_write_mode(file=stream) if bars else contextlib.nullcontext():
            stream.write(text)
    except OSError:  # a closed stream: as the default showwarning, the warning is lost
        pass


def quiet_process() -> None:
    """Drop, in this process, the third-party notices named in the module docstring, and show each
    warning once (:func:`_show_once`); idempotent."""
    warnings.showwarning = _show_once
    if "optuna" in sys.modules:
        _optuna_warnings_only(sys.modules["optuna"])
    if not any(isinstance(f, _QuietImports) for f in sys.meta_path):
        sys.meta_path.insert(0, _QuietImports())
    tf_logger = logging.getLogger("tensorflow")
    if not any(isinstance(f, _NoRetracingWarning) for f in tf_logger.filters):
        tf_logger.addFilter(_NoRetracingWarning())
