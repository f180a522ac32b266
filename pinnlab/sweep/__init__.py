"""Optuna sweeps over run configs.  The only package that imports optuna.

``load_sweep(path)`` validates a sweep file into a :class:`SweepSpec`; ``run_sweep(spec, ...)``
creates or resumes its study and runs the missing trials; ``run_worker(...)`` joins a study from
any machine.
"""

from pinnlab.sweep.runner import SweepReport, run_sweep, run_worker
from pinnlab.sweep.spec import SweepSpec, load_sweep

__all__ = ["SweepSpec", "SweepReport", "load_sweep", "run_sweep", "run_worker"]
