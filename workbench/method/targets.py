"""The label vectors each head is trained against (the targets are their sums), and which heads need what.

``pmi``: the PMI label embedding, rows aligned to the data set's vocabulary; ``random``:
i.i.d. Gaussian vectors of the same ``k``; ``identity``: the ``C × C`` identity (cosine
on multi-hot targets); ``sigmoid``: none (multi-hot targets, binary cross-entropy).

Controls that isolate co-occurrence (each differs from ``pmi`` in one thing):

``shuffled``
    The PMI vectors with their label rows permuted (seeded): the same geometry and norms,
    the co-occurrence of the labels broken.
``random-matched``
    Gaussian directions with each label's PMI vector norm: the PMI norms (the rare
    labels' longer vectors), no PMI directions.
``learned``
    No label vectors: multi-hot targets and the cosine loss through a ``k``-wide linear
    bottleneck (a ``k × C`` trainable map, no bias), i.e. a ``k``-dimensional label
    embedding learned jointly with the network — the parameter-matched alternative to PMI.
``sigmoid-lowrank``
    No label vectors: sigmoid cross-entropy through a ``k``-wide bottleneck.

NumPy only: no Keras here.
"""

from __future__ import annotations

import numpy as np

from workbench import _checks
from workbench.data.labels import Vocabulary
from workbench.method.embedding import LabelEmbedding

__all__ = ["HEADS", "EMBEDDING_HEADS", "PMI_HEADS", "BOTTLENECK_HEADS", "SIGMOID_HEADS", "K_HEADS", "label_vectors",
           "head_dim", "counted_on"]

#: Every head name: a head is defined by the label vectors (or targets) it is trained against.
HEADS = ("pmi", "sigmoid", "random", "identity", "shuffled", "random-matched", "learned", "sigmoid-lowrank")
#: Heads that predict a point in a label-embedding space (scored by cosine against their label vectors).
EMBEDDING_HEADS = ("pmi", "random", "identity", "shuffled", "random-matched")
#: Heads whose label vectors are made from the PMI embedding (the leakage check applies to them).
PMI_HEADS = ("pmi", "shuffled", "random-matched")
#: Heads with multi-hot targets through a ``k``-wide linear bottleneck (``C`` outputs, the label scores).
BOTTLENECK_HEADS = ("learned", "sigmoid-lowrank")
#: Heads trained with sigmoid cross-entropy (their outputs are probabilities; biases start at the log-odds).
SIGMOID_HEADS = ("sigmoid", "sigmoid-lowrank")
#: Heads whose network depends on ``k`` (one grid cell per ``k``); identity (``k = C``) and sigmoid do not.
K_HEADS = ("pmi", "random", "shuffled", "random-matched", "learned", "sigmoid-lowrank")


def _aligned_embedding(embedding, vocabulary: Vocabulary, *, label_counts=None):
    """``embedding`` with one row per label of ``vocabulary``, in its order.

    Labels of the embedding that the data set lacks are dropped. Data-set labels the
    embedding lacks get a zero vector (cosine score 0, no part in any target) when
    they never occur in the training images (``label_counts`` 0, as
    :func:`workbench.method.embed.embed_labels` drops never-seen labels); a missing label
    that does occur raises ``ValueError``: the embedding belongs to other data.
    """
    names = tuple(embedding.vocabulary.names)
    if names == tuple(vocabulary.names):
        return embedding
    present = np.array([name in embedding.vocabulary for name in vocabulary.names], dtype=bool)
    if not present.any():
        raise ValueError("The label embedding shares no label with the data set; compute the embedding from this data set.")
    counts = np.ones(len(vocabulary), dtype=np.int64) if label_counts is None else np.asarray(label_counts)
    occurring_missing = [name for name, ok, count in zip(vocabulary.names, present, counts) if not ok and count > 0]
    if occurring_missing:
        raise ValueError(
            f"The label embedding does not match the data set: it lacks {len(occurring_missing)} label(s) of the "
            f"training images (e.g. {occurring_missing[:3]}); compute the embedding from this data set."
        )
    rows = embedding.vocabulary.indices([name for name, ok in zip(vocabulary.names, present) if ok])
    vectors = np.zeros((len(vocabulary), embedding.embedding_dim), dtype=np.float32)
    vectors[present] = embedding.vectors[rows]
    aligned_counts = None
    if embedding.label_counts is not None:
        aligned_counts = np.zeros(len(vocabulary), dtype=np.int64)
        aligned_counts[present] = embedding.label_counts[rows]
    settings = dict(embedding.settings)
    settings["aligned_to_data_set"] = {
        "zero_vectors_for_unseen_labels": int((~present).sum()),
        "dropped_labels": len(names) - int(present.sum()),
    }
    return LabelEmbedding(
        vocabulary=vocabulary, vectors=vectors, eigenvalues=embedding.eigenvalues, label_counts=aligned_counts, settings=settings
    )


def head_dim(head: str, *, embedding=None, embedding_dim: int | None = None) -> int | None:
    """``k`` of a head: the PMI heads take the embedding's; random and the bottleneck heads ``embedding_dim``, else the embedding's.

    Parameters
    ----------
    head : str
        One of :data:`HEADS`.
    embedding : LabelEmbedding, optional
    embedding_dim : int, optional
        ``k`` asked for (``--dim``); ignored by the PMI heads (their ``k`` is the embedding's).

    Returns
    -------
    int or None
        ``None`` for identity and sigmoid, whose width is ``C``.
    """
    _checks.choice(head, "head", HEADS)
    if head not in K_HEADS:
        return None
    if head in PMI_HEADS:
        if embedding is None:
            raise ValueError(f"The {head} head needs a label embedding; pass --embedding DIR (written by 'workbench embed').")
        return int(embedding.embedding_dim)
    if embedding_dim is None and embedding is not None:
        embedding_dim = embedding.embedding_dim
    if embedding_dim is None:
        raise ValueError(f"The {head} head needs an embedding dimension; give embedding_dim (--dim) or an embedding to match.")
    return _checks.integer(embedding_dim, "embedding_dim")


def label_vectors(
    head: str,
    *,
    vocabulary: Vocabulary,
    embedding=None,
    embedding_dim: int | None = None,
    random_state: int = 0,
    label_counts=None,
):
    """The label embedding a head is trained against.

    Parameters
    ----------
    head : str
        One of :data:`HEADS`.
    vocabulary : Vocabulary
        The data set's labels (rows of the result follow it).
    embedding : LabelEmbedding, optional
        Required for the PMI heads (pmi, shuffled, random-matched); for ``"random"`` it
        gives the default ``k``.
    embedding_dim : int, optional
        ``k`` of the random head.
    random_state : int, default=0
        Seed of the random head's vectors, of the shuffled head's permutation and of the
        random-matched head's directions.
    label_counts : array-like of shape (C,), optional
        Training images per label; labels the pmi embedding lacks must have 0 here
        (they get a zero vector). ``None`` treats every label as occurring.

    Returns
    -------
    LabelEmbedding or None
        pmi: ``embedding`` with rows in ``vocabulary`` order (see above); shuffled: those
        rows permuted among the labels with a non-zero vector (a label the embedding lacks
        keeps its zero vector), so the rows and their norms are the same and only which
        label owns which changes; random-matched: ``n_c · g_c / ‖g_c‖`` for i.i.d. standard
        Gaussian ``g_c`` and each label's pmi norm ``n_c``; random: i.i.d. standard Gaussian
        vectors ``(C, k)``; identity: the ``C × C`` identity; sigmoid, learned,
        sigmoid-lowrank: ``None`` (multi-hot targets).
    """
    _checks.choice(head, "head", HEADS)
    num_labels = len(vocabulary)
    if head in ("sigmoid", *BOTTLENECK_HEADS):
        return None
    if head in PMI_HEADS:
        head_dim(head, embedding=embedding)  # the one-line error without an embedding
        aligned = _aligned_embedding(embedding, vocabulary, label_counts=label_counts)
        if head == "pmi":
            return aligned
        return _pmi_control(head, aligned, random_state=random_state)
    if head == "random":
        embedding_dim = head_dim(head, embedding=embedding, embedding_dim=embedding_dim)
        vectors = np.random.default_rng(random_state).standard_normal((num_labels, embedding_dim)).astype(np.float32)
        return LabelEmbedding(
            vocabulary=vocabulary,
            vectors=vectors,
            eigenvalues=np.zeros(embedding_dim),
            settings={"kind": "random", "distribution": "standard normal", "random_state": int(random_state)},
        )
    return LabelEmbedding(  # identity
        vocabulary=vocabulary,
        vectors=np.eye(num_labels, dtype=np.float32),
        eigenvalues=np.ones(num_labels),
        settings={"kind": "identity"},
    )


def _pmi_control(head: str, aligned, *, random_state: int):
    """The shuffled or random-matched vectors of an aligned PMI embedding (see :func:`label_vectors`)."""
    pmi = np.asarray(aligned.vectors, dtype=np.float32)
    norms = np.linalg.norm(pmi.astype(np.float64), axis=1)
    rng = np.random.default_rng(random_state)
    if head == "shuffled":
        owners = np.flatnonzero(norms > 0)
        vectors = pmi.copy()
        vectors[owners] = pmi[owners[rng.permutation(len(owners))]]
        settings = {"kind": "shuffled", "random_state": int(random_state),
                    "of": "the PMI vectors, label rows permuted among labels with a non-zero vector"}
    else:
        directions = rng.standard_normal(pmi.shape)
        lengths = np.linalg.norm(directions, axis=1, keepdims=True)
        vectors = (directions / np.where(lengths > 0, lengths, 1.0) * norms[:, None]).astype(np.float32)
        settings = {"kind": "random-matched", "random_state": int(random_state),
                    "of": "standard normal directions scaled to each label's PMI vector norm"}
    eigenvalues = aligned.eigenvalues if head == "shuffled" else np.zeros(pmi.shape[1])  # permuted rows: same Gram matrix
    return LabelEmbedding(vocabulary=aligned.vocabulary, vectors=vectors, eigenvalues=eigenvalues,
                          label_counts=aligned.label_counts, settings={**settings, "pmi_settings": aligned.settings})


def _counts_by_name(dataset) -> dict:
    return dict(zip(dataset.vocabulary.names, np.diff(dataset.labels.tocsc().indptr).tolist()))


def counted_on(embedding, train_set, validation_set, *, allow_overlap: bool = False) -> str:
    """Which images the embedding's label counts come from, judged against a training/validation split.

    A label embedding is counted on the training images only; counted on images that include
    the validation split, the validation labels leak into the targets and the validation
    MAP@100 is no longer measured on unseen data. The embedding's per-label counts are
    compared with the split's: equal to the training split's counts → ``"training split only"``;
    at least the training plus validation counts of every label (and not equal to the
    training counts) → the validation split is included, which raises ``ValueError`` unless
    ``allow_overlap``; anything else → counted on other data (a shipped or foreign count).

    Parameters
    ----------
    embedding : LabelEmbedding
    train_set, validation_set : MultiLabelDataset
        The split the run trains and validates on (same vocabulary).
    allow_overlap : bool, default=False
        Go on when the counts include the validation split (the result says so).

    Returns
    -------
    str
        One of ``"training split only"``, ``"training and validation images (allowed)"``,
        ``"other data (not this split)"``, ``"unknown (the embedding records no label counts)"``.
    """
    if embedding.label_counts is None:
        return "unknown (the embedding records no label counts)"
    own = dict(zip(embedding.vocabulary.names, np.asarray(embedding.label_counts).tolist()))
    train, validation = _counts_by_name(train_set), _counts_by_name(validation_set)
    names = set(own) | set(train)
    if all(own.get(name, 0) == train.get(name, 0) for name in names):
        return "training split only"
    includes_validation = sum(validation.values()) > 0 and all(
        own.get(name, 0) >= train.get(name, 0) + validation.get(name, 0) for name in set(train) | set(validation)
    )
    if not includes_validation:
        return "other data (not this split)"
    if not allow_overlap:
        raise ValueError(
            "The label embedding was counted on images that include the validation split (its label counts reach the "
            "training plus validation counts), so validation labels leak into the targets; count on the training split "
            "only (wb.embed(data) does, and workbench embed --data with train's --validation-fraction), or pass allow_overlap=True "
            "(--allow-overlap) to go on with the overlap recorded in the run."
        )
    return "training and validation images (allowed)"
