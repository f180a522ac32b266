"""The vocabulary every layer shares, free of TensorFlow, MLflow and Optuna.

Names of the registered choices (:mod:`.names`, :mod:`.registry`), tag and metric keys
(:mod:`.keys`), outcome classes (:mod:`.outcomes`), the run summary's fields (:mod:`.summary`),
errors (:mod:`.errors`), the validated run config (:mod:`.config`, its sources and YAML safety in
:mod:`.config_sources`, its memory check in :mod:`.resources`), the rules for a set of replicates
(:mod:`.replicates`) and the causes a run's evidence supports (:mod:`.causes`).  Validating a config
or reading a study imports nothing heavier than NumPy and pydantic (tests/test_imports.py).
"""
