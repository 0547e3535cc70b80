"""Shared fixtures and helpers (a tiny colour-band data set and a real run trained on it).

Quiet TensorFlow and use a non-interactive matplotlib backend. Test modules import the helpers
as ``from tests.conftest import train_tiny_run``.
"""

import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("MPLBACKEND", "Agg")
# Notebook kernels (nbval) run "python" from PATH: make it this environment's Python.
os.environ["PATH"] = os.pathsep.join([os.path.dirname(sys.executable), os.environ.get("PATH", "")])

import pytest  # noqa: E402

REPOSITORY_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = REPOSITORY_ROOT.parent / "shared" / "data"


# ---------------------------------------------------------------------------------
# a tiny real data set and run: 16×16 images of two colour bands, six colour labels
# ---------------------------------------------------------------------------------
COLOURS = {
    "red": (220, 30, 30),
    "green": (30, 180, 40),
    "blue": (30, 60, 220),
    "yellow": (240, 220, 20),
    "black": (10, 10, 10),
    "white": (245, 245, 245),
}


def colour_bands(top: str, bottom: str, *, size: int = 16, noise: int = 12, seed: int = 0):
    """A ``(size, size, 3)`` uint8 image: ``top`` colour above, ``bottom`` below."""
    import numpy as np

    rng = np.random.default_rng(seed)
    image = np.empty((size, size, 3), dtype=np.int64)
    image[: size // 2] = COLOURS[top]
    image[size // 2 :] = COLOURS[bottom]
    image += rng.integers(-noise, noise + 1, size=image.shape)
    return np.clip(image, 0, 255).astype(np.uint8)


def colour_dataset(num_images: int, *, size: int = 16, seed: int = 0):
    """Images of two colour bands labelled with their colours (one or two labels each)."""
    import numpy as np

    from workbench.data.datasets import MultiLabelDataset
    from workbench.data.labels import Vocabulary

    rng = np.random.default_rng(seed)
    names = list(COLOURS)
    images = np.empty((num_images, size, size, 3), dtype=np.uint8)
    label_sets = []
    for position in range(num_images):
        # neighbours in the list pair up more often, so PMI has structure
        first = int(rng.integers(len(names)))
        second = (first + int(rng.choice([0, 1, 1, 2]))) % len(names)
        images[position] = colour_bands(names[first], names[second], size=size, seed=seed * 100_003 + position)
        label_sets.append(tuple(dict.fromkeys([names[first], names[second]])))
    return MultiLabelDataset(
        image_paths=("",) * num_images,
        label_sets=tuple(label_sets),
        vocabulary=Vocabulary(tuple(names)),
        images=images,
        name="colour bands",
    )


def pmi_embedding(dataset, *, dim: int = 4):
    """The workbench's spectral PMI embedding (smoothed PMI, |eigenvalues|) of a data set."""
    from workbench.method.cooccurrence import count_cooccurrence
    from workbench.method.embed import embed_labels

    counts = count_cooccurrence(dataset.labels, dataset.vocabulary)
    return embed_labels(counts, embedding_dim=dim, policy="smooth", negative="abs", random_state=0)


def training_split(dataset, config):
    """The training part of the split :func:`workbench.learning.training.train` makes with ``config``.

    An embedding for a run is counted on it: ``train`` refuses one counted on validation images.
    """
    return dataset.split(validation_fraction=config.validation_fraction, random_state=config.split_random_state)[0]


def train_tiny_run(out_dir: Path, *, epochs: int = 6, num_images: int = 192) -> Path:
    """Train a real PMI-head run on colour bands (16×16, two conv blocks); return its folder."""
    from workbench.learning.config import ModelConfig, TrainConfig
    from workbench.learning.training import train

    dataset = colour_dataset(num_images)
    config = TrainConfig(
        head="pmi",
        epochs=epochs,
        batch_size=32,
        learning_rate=3e-3,
        workers=1,
        model=ModelConfig(image_size=16, width=8, depth=2, augment=False, dropout=0.0, batchnorm_momentum=0.8),
    )
    train(dataset, config=config, out_dir=out_dir, embedding=pmi_embedding(training_split(dataset, config)), verbose=0)
    return Path(out_dir)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> Path:
    """The folder of a :func:`train_tiny_run` run, trained once per test module."""
    pytest.importorskip("keras")
    return train_tiny_run(tmp_path_factory.mktemp("tiny") / "run")


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data`` beside the checkout; skips the test when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared data not found at {SHARED_DATA}")
    return SHARED_DATA
