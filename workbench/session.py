"""The notebooks' workspace: each notebook reads its predecessors' artefacts from ``RESULTS``, or builds them.

``wb.workspace(RESULTS, profile=PROFILE)`` knows the results folder, the profile and the
settings recorded there by the notebooks before (notebook 01's data settings, notebook 02's
embedding options), so a notebook asks for ``ws.scenes()``, ``ws.counts()``,
``ws.embedding()``, ``ws.run()``, ``ws.comparison()`` or ``ws.ceiling()`` without repeating a keyword (and
``ws.fresh_scenes()``, ``ws.companions()``, ``ws.compose_app()`` for classifying): the
load-or-build rules are :mod:`workbench.notebook.workspace`'s (an artefact made with other
settings is rebuilt and the notebook is told which settings differ). Every call returns a
result object (:mod:`workbench.results`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from workbench.results import Ceiling, Comparison, Counts, Dataset, Embedding, Run

__all__ = ["Workspace", "workspace"]


def _keras():
    """Keras imported without TensorFlow's start-up notices, before a model is trained or loaded."""
    from workbench.learning.startup import import_keras_quietly

    return import_keras_quietly()


#: Keys of a data-settings dict that are not scene settings.
_SPLIT_KEYS = ("validation_fraction",)


class Workspace:
    """Load-or-build access to one results folder with one profile's sizes.

    Parameters
    ----------
    results : path
        The results folder (``RESULTS``).
    profile : str or Profile, default="workshop"
        Sizes of everything not recorded yet (:func:`workbench.notebook.profiles.get_profile`).
    data : dict, optional
        The data settings to use (notebook 01 gives its own: ``num_images``, ``num_labels``,
        ``image_size``, ``max_labels``, ``missing_rate``, ``spurious_rate``, ``random_state``,
        ``validation_fraction``); default: those recorded in ``RESULTS`` by notebook 01, else
        the profile's.
    embedding : EmbeddingOptions, optional
        The embedding options to use (notebook 02 gives its own); default: those recorded with
        ``RESULTS/embedding``, else the profile's.
    verbose : bool, default=True
        Say where settings came from and whether each artefact was read or built.
    """

    def __init__(self, results, *, profile="workshop", data: dict | None = None, embedding=None, verbose: bool = True):
        from workbench.notebook.profiles import Profile, get_profile
        from workbench.notebook.workspace import recorded_data_settings

        self.results = Path(results)
        self.profile = profile if isinstance(profile, Profile) else get_profile(profile)
        self.verbose = bool(verbose)
        defaults = self.profile.data_settings(random_state=0)
        if data is None:
            data = recorded_data_settings(self.results, default=defaults, verbose=self.verbose)
        unknown = sorted(set(data) - set(defaults))
        if unknown:
            raise ValueError(f"Unknown data setting(s) {unknown}; use {', '.join(defaults)}.")
        self.data = {**defaults, **data}
        self._embedding_options = embedding
        self._cache: dict = {}

    def __repr__(self) -> str:
        return f"Workspace({str(self.results)!r}, profile={self.profile.name!r})"

    # -- settings ------------------------------------------------------------------
    @property
    def seed(self) -> int:
        """The data seed: it seeds the scenes, the train/validation split and the main run."""
        return int(self.data["random_state"])

    @property
    def validation_fraction(self) -> float:
        return float(self.data["validation_fraction"])

    @property
    def embedding_options(self):
        """The :class:`~workbench.method.embed.EmbeddingOptions` in use (given, recorded by notebook 02, or the profile's)."""
        if self._embedding_options is None:
            from workbench.notebook.workspace import recorded_embedding_options

            self._embedding_options = recorded_embedding_options(self.results, default=self.profile.embedding_options(),
                                                                 verbose=self.verbose)
        return self._embedding_options

    def model_config(self, **changes):
        """The profile's trunk at the data's image size (:class:`~workbench.learning.config.ModelConfig`), with ``changes``."""
        from workbench.learning.config import ModelConfig

        profile = self.profile
        return ModelConfig(**{"image_size": self.data["image_size"], "width": profile.trunk_width,
                              "depth": profile.trunk_depth, "batchnorm_momentum": profile.batchnorm_momentum, **changes})

    def train_config(self):
        """The pmi head's :class:`~workbench.learning.config.TrainConfig`: the comparison's pmi run for the data seed."""
        from workbench.notebook.workspace import pmi_train_config

        return pmi_train_config(epochs=self.profile.epochs, batch_size=self.profile.batch_size, model=self.model_config(),
                                validation_fraction=self.validation_fraction, split_random_state=self.seed,
                                random_state=self.seed)

    # -- artefacts -----------------------------------------------------------------
    def _once(self, key, build):
        if key not in self._cache:
            self._cache[key] = build()
        return self._cache[key]

    def _scene_settings(self) -> dict:
        return {key: value for key, value in self.data.items() if key not in _SPLIT_KEYS}

    def scenes(self) -> Dataset:
        """The emoji scenes of ``RESULTS/data`` (read, or generated with :attr:`data`)."""
        from workbench.notebook.workspace import ensure_scenes

        settings = self._scene_settings()
        return self._once("scenes", lambda: Dataset(ensure_scenes(self.results, verbose=self.verbose, **settings)))

    def fresh_scenes(self, num_images: int, *, folder: str = "fresh_scenes") -> Dataset:
        """``num_images`` scenes that :meth:`scenes` does not hold, with its labels, as files in ``RESULTS/folder``.

        The generator draws scenes in a fixed order, so it continues past the data set's images
        with the same settings and seed (the same vocabulary, images never seen). They are
        written as PNG files and read back, to be classified from their files as uploads are.
        """
        from workbench.data.datasets import read_scenes
        from workbench.data.scenes import generate_scenes, write_scenes

        settings = self._scene_settings()
        first = settings["num_images"]
        extended = generate_scenes(**{**settings, "num_images": first + int(num_images)})
        write_scenes(extended.subset(np.arange(first, first + int(num_images)), name="fresh scenes"), self.results / folder)
        return Dataset(read_scenes(self.results / folder))

    def split(self):
        """``(train_set, validation_set)`` of :meth:`scenes`, the split every notebook and run uses."""
        return self.scenes().artefact.split(validation_fraction=self.validation_fraction, random_state=self.seed)

    def counts(self) -> Counts:
        """Co-occurrence counts of the training split (``RESULTS/counts``)."""
        from workbench.notebook.workspace import ensure_counts

        return self._once("counts", lambda: Counts(ensure_counts(
            self.results, self.scenes().artefact, validation_fraction=self.validation_fraction,
            split_random_state=self.seed, verbose=self.verbose)))

    def embedding(self) -> Embedding:
        """The label embedding of ``RESULTS/embedding`` with :attr:`embedding_options` (recorded for later notebooks)."""
        from workbench.notebook.workspace import ensure_embedding

        return self._once("embedding", lambda: Embedding(ensure_embedding(
            self.results, self.counts().artefact, options=self.embedding_options, verbose=self.verbose)))

    def model(self):
        """The Keras model that :meth:`run` trains (the pmi head on :meth:`model_config`'s trunk), untrained."""
        _keras()
        from workbench.learning.models import build_model

        return build_model(self.model_config(), head="pmi", embedding_dim=self.embedding().embedding_dim,
                           random_state=self.seed)

    def run(self, *, callbacks=(), live=None) -> Run:
        """The pmi head trained on the split (``RESULTS/run``): read when finished, resumed, or trained.

        ``live``: metric names (say ``("loss", "map_at_100")``) drawn in one figure that is
        redrawn after every epoch while training and then holds the run's curves, also when
        the run was read back.
        """
        _keras()
        from workbench.notebook.helpers import live_history
        from workbench.notebook.workspace import ensure_run

        curves = None
        if live:
            curves = live_history(metrics=tuple(live), title=f"pmi head on {len(self.split()[0])} training images")
        run = self._once("run", lambda: Run(ensure_run(
            self.results, self.scenes().artefact, self.embedding().artefact, config=self.train_config(),
            callbacks=[*callbacks, *([curves] if curves else [])], verbose=int(self.verbose))))
        if curves is not None:
            curves.show(run.history)
        return run

    def comparison(self) -> Comparison:
        """Every head of the profile with every seed against :meth:`embedding` (``RESULTS/comparison``)."""
        from workbench.notebook.workspace import ensure_comparison

        profile = self.profile
        _keras()

        def build():
            results = ensure_comparison(
                self.results, self.scenes().artefact, self.embedding().artefact, heads=profile.comparison_heads,
                seeds=profile.comparison_seeds, epochs=profile.epochs, batch_size=profile.batch_size,
                model=self.model_config(), validation_fraction=self.validation_fraction, split_random_state=self.seed,
                verbose=int(self.verbose))
            return Comparison(results, self.results / "comparison")

        return self._once("comparison", build)

    def ceiling(self, *, dims=(4, 8, 16, 32, 64), embeddings=("pmi", "random", "identity"),
                decoder: str = "cosine") -> Ceiling:
        """The decoding ceiling of :meth:`scenes` against ``k`` (:func:`workbench.api.ceiling`), no training.

        With :attr:`embedding_options` (``k`` aside) and the split every notebook uses
        (:attr:`validation_fraction`, seeded by :attr:`seed`).
        """
        from workbench.api import ceiling

        return ceiling(self.scenes(), dims=dims, embeddings=embeddings, options=self.embedding_options, decoder=decoder,
                       validation_fraction=self.validation_fraction, split_random_state=self.seed)

    def companions(self, *, top: int = 5) -> dict:
        """Label name → the names of its ``top`` highest-PMI partners (PMI > 0) in the training split."""
        from workbench.evaluation.analysis import companion_table

        vocabulary = self.scenes().vocabulary
        table = companion_table(self.split()[0], companions=top)
        return {vocabulary[label]: {vocabulary[partner] for partner in partners} for label, partners in table.items()}

    def compose_app(self, *, top: int = 5, picked=()):
        """The "compose a scene" app (:class:`~workbench.apps.compose.ComposeSceneApp`) with :meth:`run`.

        Picked labels are drawn by the scenes generator with :attr:`data`'s settings (so with
        the run's labels) and the run ranks the ``top`` labels of the composed image.
        """
        from workbench.apps.compose import ComposeSceneApp
        from workbench.data.scenes import SceneConfig, SceneGenerator

        generator = SceneGenerator(SceneConfig(**{**self._scene_settings(), "num_images": 1}))
        run = self.run()
        return ComposeSceneApp(labels=generator.vocabulary.names, compose=generator.compose, top=top, picked=picked,
                               classify=lambda image: run.classify(image, top=top)[0].labels)

    def scene_topics(self) -> dict:
        """Label name → the scene theme that draws it most often (for colouring label maps)."""
        from workbench.notebook.workspace import scene_topics

        return scene_topics(self.results)


def workspace(results, *, profile="workshop", data: dict | None = None, embedding=None, verbose: bool = True) -> Workspace:
    """A :class:`Workspace` on ``results`` (see there)."""
    return Workspace(results, profile=profile, data=data, embedding=embedding, verbose=verbose)
