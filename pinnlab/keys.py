"""Names of the attributes and tags that link Optuna trials, MLflow runs and studies.

One home for every key that more than one module reads or writes, so a rename cannot leave a
reader behind.  TensorFlow-, MLflow- and Optuna-free.
"""

from __future__ import annotations

__all__ = [
    "MLFLOW_RUN_ID",
    "SPEC_ATTR",
    "PARENT_ATTR",
    "TRACKING_ATTR",
    "SLOT_ATTR",
    "SURPLUS_ATTR",
    "WORKER_ATTR",
    "STUDY_TAG",
    "TRIAL_TAG",
    "KIND_TAG",
    "STORAGE_TAG",
    "CLOSED_TAG",
    "FINISHED_TAG",
    "INCOMPLETE_TAG",
    "DIVERGED_TAG",
    "WARNINGS_TAG",
    "PROBLEM_TAG",
    "ERROR_TAG",
    "PLOT_ERROR_TAG",
    "PARENT_RUN_TAG",
]

# trial user attributes
MLFLOW_RUN_ID = "mlflow_run_id"  # the trial's MLflow run (also a field of `pinnlab run --json`)
SLOT_ATTR = "budget_slot"  # which of the n_trials slots the trial fills
SURPLUS_ATTR = "surplus"  # lost the race for the last slot, never trained
WORKER_ATTR = "worker"  # "host:pid" of the process running the trial

# study user attributes
SPEC_ATTR = "pinnlab_spec"  # the validated sweep spec the study was created with
PARENT_ATTR = "mlflow_parent_run_id"  # the study's MLflow parent run
TRACKING_ATTR = "mlflow_tracking_uri"  # where that run lives

# MLflow run tags (besides the summary fields marked `tag` in pinnlab.summary)
STUDY_TAG = "study"
TRIAL_TAG = "trial"
KIND_TAG = "pinnlab.kind"  # "study" on a sweep's parent run
STORAGE_TAG = "storage"  # the study's storage URL (password hidden) on the parent run
CLOSED_TAG = "pinnlab.closed_by"  # why pinnlab closed a run it did not finish (heartbeat, signal, repair)
FINISHED_TAG = "pinnlab.finished_by"  # the worker that closed a study's parent run
INCOMPLETE_TAG = "pinnlab.incomplete"  # a sweep ended with its budget not spent: done/total trials
DIVERGED_TAG = "diverged"  # "true" / "false"
WARNINGS_TAG = "warnings"
PROBLEM_TAG = "problem"  # problem.name, set when a run starts
ERROR_TAG = "error"  # first line of the exception of a FAILED run
PLOT_ERROR_TAG = "plot_error"  # why the run's PNGs are missing
PARENT_RUN_TAG = "mlflow.parentRunId"  # MLflow's own: a trial's run -> its study's parent run
