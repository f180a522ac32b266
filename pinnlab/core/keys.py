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
    "BATCH_ATTR",
    "REPLICATES_ATTR",
    "DIVERGENCE_RATE_ATTR",
    "REPLICATE_SEEDS_ATTR",
    "REPLICATE_OUTCOMES_ATTR",
    "REPLICATE_ONSETS_ATTR",
    "REPLICATE_STEPS_ATTR",
    "REPLICATE_VALUES_ATTR",
    "REPLICATE_RUNS_ATTR",
    "REPLICATE_TAG",
    "REPLICATE_ATTRS",
]

# trial user attributes
MLFLOW_RUN_ID = "mlflow_run_id"  # the trial's MLflow run (also a field of `pinnlab run --json`)
SLOT_ATTR = "budget_slot"  # which of the n_trials slots the trial fills
SURPLUS_ATTR = "surplus"  # lost the race for the last slot, never trained
WORKER_ATTR = "worker"  # "host:pid" of the process running the trial
BATCH_ATTR = "stacked_with"  # the trials (numbers) a batched sweep trained in one stacked step with this one

# study user attributes
SPEC_ATTR = "pinnlab_spec"  # the validated sweep spec the study was created with
PARENT_ATTR = "mlflow_parent_run_id"  # the study's MLflow parent run
TRACKING_ATTR = "mlflow_tracking_uri"  # where that run lives

# MLflow run tags (besides the summary fields marked `tag` in pinnlab.core.summary)
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

# trial user attributes of a sweep with `replicates: k` (pinnlab.config.replicates)
REPLICATES_ATTR = "replicates"  # k, the seeds run for the trial's configuration
DIVERGENCE_RATE_ATTR = "divergence_rate"  # share of those seeds whose outcome is divergent
REPLICATE_SEEDS_ATTR = "replicate_seeds"  # training.seed of each seed, in run order
REPLICATE_OUTCOMES_ATTR = "replicate_outcomes"  # each seed's Outcome
REPLICATE_ONSETS_ATTR = "replicate_onsets"  # each seed's divergence step (null if it did not diverge)
REPLICATE_STEPS_ATTR = "replicate_steps_run"  # each seed's steps trained
REPLICATE_VALUES_ATTR = "replicate_values"  # each seed's objective value (null if not finite)
REPLICATE_RUNS_ATTR = "replicate_run_ids"  # each seed's MLflow run
REPLICATE_TAG = "replicate"  # MLflow run tag: which seed of its trial (0 .. k-1)
REPLICATE_ATTRS = (  # every per-trial attribute above, in this order (columns of the trials frame)
    REPLICATES_ATTR,
    DIVERGENCE_RATE_ATTR,
    REPLICATE_SEEDS_ATTR,
    REPLICATE_OUTCOMES_ATTR,
    REPLICATE_ONSETS_ATTR,
    REPLICATE_STEPS_ATTR,
    REPLICATE_VALUES_ATTR,
    REPLICATE_RUNS_ATTR,
)
