"""Evaluation: measuring embeddings and trained runs (Keras-free as a folder).

``metrics`` (MAP@k, AP, label-set metrics), ``statistics`` (final values, bootstrap
intervals, paired tests), ``calibration`` (a run's operating points), ``ceiling`` (the best
an embedding allows, no training) and ``analysis`` (per-label AP and confident errors of a
run). Functions that measure a run take a loaded :class:`~workbench.learning.runs.TrainedRun`
and call its scoring methods, so nothing here imports Keras (``tests/test_project.py``).
"""
