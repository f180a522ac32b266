"""TensorFlow, imported once and quietly.

Importing TensorFlow on a machine without a GPU prints C++ and absl start-up lines to the process's
standard error (``Could not find cuda drivers``, the CPU-instructions notice, and at the first
tensor ``failed call to cuInit``).  ``TF_CPP_MIN_LOG_LEVEL`` does not reach the lines written
before absl's logging is initialised, so :func:`import_tensorflow` redirects file descriptor 2
while it imports TensorFlow and initialises its CPU device, then writes back every captured line
that is not one of those known notices: an error is one line in a terminal, a run's output is
pinnlab's own, and nothing unexpected is hidden.

Every pinnlab path that trains imports TensorFlow through here first (``pinnlab.training``'s lazy
``Trainer``); a module that imports ``tensorflow`` afterwards gets the already-loaded module.
"""

from __future__ import annotations

import os
import re
import sys
import tempfile
from types import ModuleType

__all__ = ["import_tensorflow", "NOISE"]

# start-up notices of TensorFlow's C++ runtime on a CPU-only machine (matched per line)
NOISE = re.compile(
    r"All log messages before absl::InitializeLog\(\)"
    r"|cudart_stub\.cc|cuda_platform\.cc|cuda_executor\.cc|cuda_dnn\.cc|cuda_fft\.cc|cuda_blas\.cc"
    r"|failed call to cuInit|Could not find cuda drivers|Unable to register cu\w+ factory"
    r"|cpu_feature_guard\.cc|To enable the following instructions|rebuild TensorFlow with the appropriate"
    r"|oneDNN custom operations are on|TF_ENABLE_ONEDNN_OPTS|computation_placer\.cc"
)


def import_tensorflow() -> ModuleType:
    """``import tensorflow`` with its start-up notices dropped (other output is passed through)."""
    if "tensorflow" in sys.modules:
        return sys.modules["tensorflow"]
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")  # C++ INFO lines after start-up
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile(mode="w+b") as capture:
        os.dup2(capture.fileno(), 2)
        try:
            import tensorflow as tf

            tf.constant(0.0)  # initialises the CPU device (the cuInit line) inside the redirect
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            capture.seek(0)
            kept = [line for line in capture.read().decode(errors="replace").splitlines() if not NOISE.search(line)]
    if kept:
        print("\n".join(kept), file=sys.stderr)
    return tf
