"""PMI label-embedding research workbench.

``import workbench as wb`` gives one call per step of the method (:mod:`workbench.api`):
``wb.scenes``/``wb.load_dataset`` → ``wb.count`` → ``wb.pmi`` → ``wb.embed`` → ``wb.ceiling`` →
``wb.train``/``wb.compare``/``wb.experiment`` → ``wb.calibrate`` → ``wb.classify``, and
``wb.explore`` to see the label space. Each returns an object that shows itself in a
notebook and has ``to_frame()``, ``table()`` and, where a picture means something,
``plot()`` (:mod:`workbench.results`). The names are loaded on first use: importing
:mod:`workbench` is cheap and never imports Keras.
"""

__version__ = "0.1.0"

#: The public API: name → module that defines it (loaded on first access).
_API = {name: "workbench.api" for name in (
    "load_dataset", "scenes", "count", "load_counts", "pmi", "embed", "ceiling", "train", "compare", "experiment", "calibrate", "classify",
    "classify_app", "explore", "load_run", "load_experiment", "device", "VALIDATION_FRACTION",
)}
_API.update({name: "workbench.session" for name in ("workspace", "Workspace")})
_API.update({name: "workbench.notebook.profiles" for name in ("get_profile", "PROFILE_NAMES")})
_API.update({name: "workbench.method.embed" for name in ("EmbeddingOptions",)})
_API.update({name: "workbench.learning.config" for name in ("ModelConfig", "TrainConfig")})

__all__ = ["__version__", *_API]


def __getattr__(name):
    module = _API.get(name)
    if module is None:
        raise AttributeError(f"module 'workbench' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_API))
