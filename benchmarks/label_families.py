"""Families of label statistics for the embedding benchmark, at JFT-like scale.

Two kinds of problem, each a function of ``num_labels`` and a seed:

* **synthetic images** (:func:`synthetic_label_matrix`): a binary image × label matrix
  whose labels come mostly from each image's topics, the rest from a global Zipf
  popularity. The families differ in the number and size of topics, topics per
  image, the topic share, labels per image and popularity skew, so their PMI
  spectra differ (how fast eigenvalues decay, how clustered they are).
* **real counts scaled up** (:func:`scaled_real_counts`): the real MS-COCO 2014 or
  PASCAL VOC 2007 co-occurrence counts copied block by block until there are about
  ``num_labels`` labels (each copy its own images), plus cross-noise: extra images
  carrying two labels from different copies, drawn by label frequency. The PMI
  spectrum then holds each real eigenvalue about ``num_labels / C`` times, split
  only by the noise: tight clusters, the hardest case for a Krylov solver.

:data:`FAMILIES` names them; :func:`build_family` returns either a label matrix
(counting is then part of the benchmark) or counts.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.sparse as sp

SHARED_COUNTS = Path(__file__).resolve().parents[2] / "shared" / "data" / "cooccurrence"


@dataclass(frozen=True)
class SyntheticFamily:
    """Parameters of a synthetic family (see :func:`synthetic_label_matrix`)."""

    description: str
    labels_per_image: float = 8.0
    labels_per_topic: int = 50
    topics_per_image: int = 2
    other_topic_share: float = 0.3
    topic_share: float = 0.8
    zipf_exponent: float = 1.0


@dataclass(frozen=True)
class RealFamily:
    """Real counts copied block by block with cross-noise (see :func:`scaled_real_counts`)."""

    description: str
    source: str  # "coco2014" or "voc2007"
    noise_share: float = 0.1


FAMILIES = {
    # the family the benchmark always drew: mid-sized topics, mostly one per image
    "topics": SyntheticFamily("50-label topics, 2 per image (mostly the first), 80 % topical, 8 labels/image, Zipf 1.0"),
    "narrow": SyntheticFamily("10-label topics, 1 per image, 95 % topical, 4 labels/image, Zipf 0.8",
                              labels_per_image=4.0, labels_per_topic=10, topics_per_image=1, topic_share=0.95,
                              zipf_exponent=0.8),
    "broad": SyntheticFamily("400-label topics, 3 per image (evenly), 50 % topical, 16 labels/image, Zipf 1.3",
                             labels_per_image=16.0, labels_per_topic=400, topics_per_image=3, other_topic_share=1.0,
                             topic_share=0.5, zipf_exponent=1.3),
    "coco": RealFamily("MS-COCO 2014 counts (80 labels) copied to ~17,000 labels, 10 % cross-noise images", "coco2014"),
    "voc": RealFamily("PASCAL VOC 2007 counts (20 labels) copied to ~17,000 labels, 10 % cross-noise images", "voc2007"),
}


def _draw_label_matrix(*, num_images, num_labels, draws_per_image, family: SyntheticFamily, random_state):
    rng = np.random.default_rng(random_state)
    num_topics = max(1, num_labels // family.labels_per_topic)
    weights = 1.0 / np.arange(1, num_labels + 1) ** family.zipf_exponent
    weights = weights[rng.permutation(num_labels)]
    topic = rng.integers(0, num_topics, size=num_labels)
    order = np.argsort(topic, kind="stable")
    cumulative = np.cumsum(weights[order])
    bounds = np.searchsorted(topic[order], np.arange(num_topics + 1))
    padded = np.concatenate([[0.0], cumulative])
    start, stop = padded[bounds[:-1]], padded[bounds[1:]]
    draws = rng.poisson(draws_per_image, size=num_images).clip(1, None)
    total = int(draws.sum())
    image = np.repeat(np.arange(num_images), draws)
    image_topics = rng.choice(num_topics, size=(num_images, family.topics_per_image), p=(stop - start) / cumulative[-1])
    # each draw uses the image's first topic, or with probability other_topic_share a uniformly chosen one of its topics
    which = rng.integers(0, family.topics_per_image, size=total) * (rng.random(total) < family.other_topic_share)
    chosen_topic = image_topics[image, which]
    uniform = rng.random(total)
    target = np.where(
        rng.random(total) < family.topic_share,
        start[chosen_topic] + uniform * (stop[chosen_topic] - start[chosen_topic]),
        uniform * cumulative[-1],
    )
    label = order[np.minimum(np.searchsorted(cumulative, target, side="right"), num_labels - 1)]
    matrix = sp.csr_matrix((np.ones(total, dtype=np.uint8), (image, label)), shape=(num_images, num_labels))
    matrix.sum_duplicates()
    matrix.data[:] = 1
    return matrix


def synthetic_label_matrix(*, num_images: int, num_labels: int, family: SyntheticFamily, random_state: int = 0) -> sp.csr_matrix:
    """Binary CSR ``(num_images, num_labels)`` uint8 with about ``family.labels_per_image`` distinct labels a row."""
    draws = family.labels_per_image
    for _ in range(4):  # duplicates inside an image are dropped: calibrate the draws on a sample
        sample = _draw_label_matrix(num_images=20_000, num_labels=num_labels, draws_per_image=draws, family=family,
                                    random_state=random_state + 1)
        draws *= family.labels_per_image / (sample.nnz / sample.shape[0])
    return _draw_label_matrix(num_images=num_images, num_labels=num_labels, draws_per_image=draws, family=family,
                              random_state=random_state)


def real_counts_path(source: str) -> Path:
    """The JSON counts of ``source``: COCO ships with the package, VOC comes from ``../shared``."""
    if source == "coco2014":
        from workbench.data.bundled import coco2014_counts_path

        return coco2014_counts_path()
    path = SHARED_COUNTS / f"{source}_trainval.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: the {source} family needs ../shared/data beside the project.")
    return path


def scaled_real_counts(*, source: str, num_labels: int, noise_share: float = 0.1, random_state: int = 0):
    """Real counts copied ``ceil(num_labels / C)`` times (disjoint images) plus cross-noise images.

    Parameters
    ----------
    source : {"coco2014", "voc2007"}
    num_labels : int
        About how many labels to reach (a whole number of copies; at least this many).
    noise_share : float, default=0.1
        Cross-noise images, as a share of the copied images: each carries two labels of
        different copies, each drawn in proportion to its label count.
    random_state : int, default=0

    Returns
    -------
    CooccurrenceCounts with ``copies · C`` labels.
    """
    from workbench.data.labels import Vocabulary
    from workbench.method.cooccurrence import CooccurrenceCounts

    base = CooccurrenceCounts.load_json(real_counts_path(source))
    size = base.num_labels
    copies = math.ceil(num_labels / size)
    total = copies * size
    rng = np.random.default_rng(random_state)
    label_counts = np.tile(base.label_counts, copies).astype(np.int64)
    pair_counts = sp.kron(sp.identity(copies, dtype=np.int64, format="csr"), base.pair_counts, format="csr")
    num_noise = int(noise_share * base.n_images * copies)
    probabilities = label_counts / label_counts.sum()
    first = rng.choice(total, size=num_noise, p=probabilities)
    second = rng.choice(total, size=num_noise, p=probabilities)
    cross = first // size != second // size
    first, second = first[cross], second[cross]
    noise = sp.coo_matrix((np.ones(len(first), dtype=np.int64), (first, second)), shape=(total, total)).tocsr()
    noise = noise + noise.T
    label_counts += np.bincount(first, minlength=total) + np.bincount(second, minlength=total)
    names = tuple(f"{name}#{copy}" for copy in range(copies) for name in base.vocabulary.names)
    return CooccurrenceCounts(n_images=base.n_images * copies + len(first), vocabulary=Vocabulary(names),
                              label_counts=label_counts, pair_counts=(pair_counts + noise).tocsr())


def build_family(name: str, *, num_labels: int, num_images: int, random_state: int = 0):
    """``("matrix", label matrix)`` for a synthetic family, ``("counts", counts)`` for a real one."""
    family = FAMILIES[name]
    if isinstance(family, SyntheticFamily):
        return "matrix", synthetic_label_matrix(num_images=num_images, num_labels=num_labels, family=family,
                                                random_state=random_state)
    return "counts", scaled_real_counts(source=family.source, num_labels=num_labels, noise_share=family.noise_share,
                                        random_state=random_state)
