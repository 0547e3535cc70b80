"""The two-stage protocol: one trunk trained once on images of its own, every head trained on its cached features.

End to end, every run of a comparison trains a trunk of its own. At thousands of labels
that is most of the cost: ``benchmarks/bench_study.py`` projects the C = 1,870 study at
21 hours end to end on two CPU cores and under 2 hours two-stage. The two stages:

1. **The trunk.** The training split is split again (:func:`trunk_split`): a share
   (:class:`~workbench.learning.config.TrunkConfig` ``fraction``) goes to the trunk, the
   rest to the heads; or (``TrunkConfig.images``) the trunk gets a separate data set of its
   own (``trunk_data``: for generated scenes, the same generator drawn on past the
   comparison's images) and the heads keep the whole training split. The trunk is trained once, with the sigmoid head, on its images
   only (a tenth of them is the trunk's own validation, which its stopping rule watches). The
   validation split of the comparison is never among its images, and the heads never
   train on them. Its pooled features (the ``pool`` layer, inference mode: no
   augmentation, no dropout) are computed once for every image of the data set.
2. **The heads.** Each head (its layers after ``pool``: dropout, then the same head layers
   as end to end, :func:`workbench.learning.models.build_model` with ``num_features``) is
   trained on the cached features of the heads' images, by the same
   :func:`workbench.learning.training.train` (batches, losses, evaluation, hold-out,
   stopping rule, checkpoints). The saved ``model.keras`` is the trunk and the head
   composed (:meth:`Trunk.compose`): it takes images, as every run's model does.

**What it cannot tell.** Every head reads the same fixed representation, learned for
another objective (the sigmoid head's). It answers which head reads those features
best; it cannot tell whether a head's targets (PMI sums, one-hot rows, sigmoid outputs)
would shape a better trunk, which is part of the paper's claim; and its features were
learned without augmentation of the heads' images (the heads see each image as it is).
"Epochs to convergence" counts epochs of a head on fixed features, not of a network.

A trunk folder::

    trunk.json     settings, the data set's fingerprint, the features' shape (written last: the commit point)
    run/           the trunk's training run (a run folder, :mod:`workbench.learning.runs`)
    features.npz   ``features`` (N, F) float32 and ``paths`` (N,): every image of the data set

Preparing a trunk takes a lock on ``<folder>.lock``, so cells running in parallel that
share a trunk train it once; a trunk whose ``trunk.json`` is written is loaded, not
trained again, and an interrupted one resumes (its run resumes after its last epoch).
"""

from __future__ import annotations

import fcntl
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable

import numpy as np

from workbench._io import atomic_save_npz, atomic_write_json, read_json
from workbench.learning.config import DEFAULT_LEARNING_RATES, ModelConfig, TrainConfig, TrunkConfig

__all__ = ["TRUNK_FORMAT", "FeatureSource", "Trunk", "prepare_trunk", "trunk_split"]

TRUNK_FORMAT = "workbench-trunk"
#: The trunk's own validation share of its images (its stopping rule watches it).
TRUNK_VALIDATION_FRACTION = 0.1
#: Images a feature-extraction batch.
_FEATURE_BATCH = 256


def trunk_split(train_set, *, fraction: float, split_random_state: int):
    """``(heads, trunk)``: the training split split again, ``fraction`` of it for the trunk (seed ``split_random_state + 2``).

    The hold-out of the stopping rule uses ``split_random_state + 1``
    (:func:`workbench.learning.stopping.holdout_split`), the validation split ``split_random_state``.
    """
    return train_set.split(validation_fraction=fraction, random_state=int(split_random_state) + 2)


class FeatureSource:
    """Cached feature vectors by position, in the place of :class:`~workbench.learning.feeding.ImageSource`.

    Parameters
    ----------
    features : ndarray of shape (N, F), dtype float32
    """

    image_size = None
    in_memory = True

    def __init__(self, features: np.ndarray):
        self.features = np.asarray(features, dtype=np.float32)
        self.failures: dict[str, str] = {}  # features never fail to decode

    def __len__(self) -> int:
        return len(self.features)

    def get_with_failures(self, positions) -> tuple[np.ndarray, np.ndarray]:
        positions = np.asarray(positions, dtype=np.int64)
        return self.features[positions], np.zeros(len(positions), dtype=bool)

    def get(self, positions) -> np.ndarray:
        return self.get_with_failures(positions)[0]

    def load_all(self) -> np.ndarray:
        return self.features


class Trunk:
    """A trained trunk and the cached features of every image of its data set (see the module's docstring).

    Attributes
    ----------
    folder : Path
    settings : dict
        What ``trunk.json`` records: the trunk's and the model's settings, the splits, the data
        set's fingerprint, and the trunk's training (images, epochs, its validation MAP@100).
    features : ndarray of shape (N, F), dtype float32
    """

    def __init__(self, folder: Path, settings: dict, features: np.ndarray, paths):
        self.folder = Path(folder)
        self.settings = settings
        self.features = features
        self._rows = {str(path): row for row, path in enumerate(paths)}
        self._feature_model = None

    @property
    def num_features(self) -> int:
        return int(self.features.shape[1])

    @classmethod
    def load(cls, folder: str | Path) -> "Trunk":
        folder = Path(folder)
        settings = read_json(folder / "trunk.json")
        if not isinstance(settings, dict) or settings.get("format") != TRUNK_FORMAT:
            raise ValueError(f"{folder / 'trunk.json'} is not a workbench trunk; move the folder away.")
        with np.load(folder / "features.npz", allow_pickle=False) as stored:
            return cls(folder, settings, stored["features"], stored["paths"].tolist())

    def describe(self) -> dict:
        """What a run trained on this trunk records (``config.json``'s ``trunk``)."""
        keys = ("trunk", "model", "split_random_state", "validation_fraction", "data_fingerprint", "num_features",
                "num_images", "epochs_trained", "validation_map_at_100")
        return {"folder": str(self.folder), **{key: self.settings.get(key) for key in keys}}

    def heads_split(self, train_set):
        """The heads' part of the training split (:func:`trunk_split`): the trunk's images left out."""
        if self.settings["trunk"].get("images"):  # the trunk had images of its own
            return train_set
        heads, _ = trunk_split(train_set, fraction=self.settings["trunk"]["fraction"],
                               split_random_state=self.settings["split_random_state"])
        return heads

    def features_of(self, dataset) -> np.ndarray:
        """The cached features of ``dataset``'s images (found by path), shape (len(dataset), F)."""
        try:
            rows = [self._rows[path] for path in dataset.image_paths]
        except KeyError as error:
            raise ValueError(f"The image {error.args[0]!r} has no cached trunk features in {self.folder}; the trunk was "
                             "made from another data set (delete the trunk folder to make it again).") from None
        return self.features[np.asarray(rows, dtype=np.int64)]

    def source(self, dataset) -> FeatureSource:
        return FeatureSource(self.features_of(dataset))

    def feature_model(self):
        """The trunk as a Keras model: images in, pooled features out."""
        if self._feature_model is None:
            import keras

            network = keras.saving.load_model(self.folder / "run" / "model.keras", safe_mode=True)
            self._feature_model = keras.Model(network.input, network.get_layer("pool").output, name="trunk")
        return self._feature_model

    def compose(self, head_model):
        """The trunk and a head trained on its features as one model: images in, the head's output out."""
        import keras

        trunk = self.feature_model()
        image = keras.Input(shape=trunk.input.shape[1:], dtype="uint8", name="image")
        return keras.Model(image, head_model(trunk(image)), name=head_model.name)


@contextmanager
def _locked(path: Path):
    """An exclusive lock on ``path`` (created), held for the block: one process prepares a trunk at a time."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _describe_settings(dataset, *, model: ModelConfig, trunk: TrunkConfig, validation_fraction: float,
                       split_random_state: int, stopping: dict | None, trunk_data=None) -> dict:
    return {"format": TRUNK_FORMAT, "trunk": trunk.to_dict(), "model": model.to_dict(),
            "validation_fraction": float(validation_fraction), "split_random_state": int(split_random_state),
            "stopping": dict(stopping or {}), "data_fingerprint": dataset.fingerprint(),
            "trunk_data_fingerprint": None if trunk_data is None else trunk_data.fingerprint()}


def prepare_trunk(dataset, *, folder: str | Path, model: ModelConfig, trunk: TrunkConfig | None = None,
                  validation_fraction: float, split_random_state: int = 0, stopping: dict | None = None,
                  trunk_data=None, workers: int = 1, print_function: Callable[[str], None] = print) -> Trunk:
    """Train the trunk of ``dataset`` (or load it, or resume it) and cache its features.

    Parameters
    ----------
    dataset : MultiLabelDataset
        The whole data set of the comparison; its images need distinct paths (the cache is
        keyed by path).
    folder : path
        The trunk's folder (see the module's docstring).
    model : ModelConfig
        The trunk's network (the heads' runs record the same).
    trunk : TrunkConfig, optional
        Its share of the training split, epochs, batch and rate.
    validation_fraction, split_random_state : float, int
        The comparison's validation split, which the trunk never sees.
    stopping : dict, optional
        The stopping rule and schedule (``compare(stopping=…)``); the trunk's watches its own
        validation images.
    trunk_data : MultiLabelDataset or callable, optional
        With ``trunk.images``: the trunk's own images (exactly that many, the same vocabulary),
        drawn apart from ``dataset``; the heads then keep the whole training split. A
        zero-argument callable returning them is called only when the trunk is trained (a
        trunk already prepared is loaded without drawing its images again).

    Returns
    -------
    Trunk
    """
    from workbench.learning.feeding import ImageSource, LabelBatches
    from workbench.learning.training import train

    folder = Path(folder)
    trunk = trunk or TrunkConfig()
    if bool(trunk.images) != (trunk_data is not None):
        raise ValueError(f"TrunkConfig.images is {trunk.images}: give trunk_data of exactly that many images "
                         "(or set images to 0 to train the trunk on a share of the training split).")
    if len(set(dataset.image_paths)) != len(dataset) or "" in dataset.image_paths:
        raise ValueError(f"The two-stage protocol caches features by image path, and {dataset.name} has images "
                         "without distinct paths; give every image its own path, or train end to end.")
    drawn = None if callable(trunk_data) else trunk_data  # a callable draws the trunk's images only to train it
    settings = _describe_settings(dataset, model=model, trunk=trunk, validation_fraction=validation_fraction,
                                  split_random_state=split_random_state, stopping=stopping, trunk_data=drawn)
    began = time.perf_counter()
    with _locked(folder.parent / f"{folder.name}.lock"):
        if (folder / "trunk.json").is_file():
            loaded = Trunk.load(folder)
            if drawn is None and trunk_data is not None:  # not drawn: its images are not compared
                settings["trunk_data_fingerprint"] = loaded.settings.get("trunk_data_fingerprint")
            recorded = {key: loaded.settings.get(key) for key in settings}
            if recorded != settings:
                changed = sorted(key for key in settings if recorded.get(key) != settings[key])
                raise ValueError(f"{folder} holds a trunk with other settings ({', '.join(changed)}); delete it to "
                                 "train it again, or give another folder.")
            return loaded
        if trunk_data is not None:
            trunk_set = trunk_data() if drawn is None else drawn
            if len(trunk_set) != trunk.images or tuple(trunk_set.vocabulary.names) != tuple(dataset.vocabulary.names):
                raise ValueError(f"TrunkConfig.images is {trunk.images}: give trunk_data of exactly that many images, "
                                 "with the data set's labels.")
            settings["trunk_data_fingerprint"] = trunk_set.fingerprint()
        else:
            train_set, _ = dataset.split(validation_fraction=validation_fraction, random_state=split_random_state)
            _, trunk_set = trunk_split(train_set, fraction=trunk.fraction, split_random_state=split_random_state)
        config = TrainConfig(head="sigmoid", epochs=trunk.epochs, batch_size=trunk.batch_size,
                             learning_rate=trunk.learning_rate or DEFAULT_LEARNING_RATES["sigmoid"], model=model,
                             validation_fraction=TRUNK_VALIDATION_FRACTION, split_random_state=split_random_state,
                             workers=workers, **{key: value for key, value in (stopping or {}).items()})
        where = "a data set of its own" if trunk_data is not None else "the training split"
        print_function(f"Training the trunk once (two-stage protocol) on {len(trunk_set)} images of {where}.")
        run = train(trunk_set, config=config, out_dir=folder / "run", verbose=0, check_images=False,
                    monitor_validation=True)
        network = run.model
        import keras

        features_model = keras.Model(network.input, network.get_layer("pool").output)
        batches = LabelBatches(ImageSource(dataset, image_size=model.image_size), batch_size=_FEATURE_BATCH,
                               shuffle=False, targets=False, workers=workers)
        features = np.asarray(features_model.predict(batches, verbose=0), dtype=np.float32)
        atomic_save_npz(folder / "features.npz", features=features, paths=np.asarray(dataset.image_paths))
        last = run.history[-1] if run.history else {}
        settings.update({"num_images": len(dataset), "num_trunk_images": len(trunk_set),
                         "num_features": int(features.shape[1]), "epochs_trained": len(run.history),
                         "validation_map_at_100": last.get("map_at_100"),
                         "seconds": round(time.perf_counter() - began, 3)})  # training the trunk and caching its features
        atomic_write_json(folder / "trunk.json", settings)
        print_function(f"The trunk trained {len(run.history)} epoch(s); features cached for {len(dataset)} images.")
        return Trunk(folder, settings, features, dataset.image_paths)
