"""The vocabulary every layer shares, free of TensorFlow, MLflow and Optuna.

Errors (:mod:`.errors`) and the bounds of a config's numbers (:mod:`.validation`), the registered
choices (:mod:`.names`, :mod:`.registry`), tag and attribute keys (:mod:`.keys`), outcome classes
(:mod:`.outcomes`), the run summary's fields (:mod:`.summary`), a clean stop on SIGTERM / SIGINT
(:mod:`.signals`) and the checks made before anything is created (:mod:`.preflight`).
"""
