"""What people use and see: classifying images, the results store, figures, label maps and widgets.

``classify`` (files or uploads → ranked labels through a run's scoring path),
``store`` (SQLite results), ``plot`` (every figure), ``labelmap`` (2-D coordinates of
labels), ``widgets`` (ipywidgets apps built from injected callables).
"""
