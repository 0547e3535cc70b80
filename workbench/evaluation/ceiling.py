"""The decoding ceiling: the best any trained head could reach with a label embedding (no training, seconds).

A head trained against an embedding is, at best, a perfect regressor: it predicts each
image's exact target, the sum of its labels' vectors. Decoding those *ideal* targets
(:func:`workbench.method.decoders.decoder_scores`) and measuring them like predictions
(MAP@100 and macro AP over the validation images) gives the ceiling of that embedding:
where it falls short, labels are confused by the embedding itself, whatever the network.
Measured against ``k`` for the PMI embedding (any PMI policy), random Gaussian vectors of
the same ``k`` and the identity (one dimension per label, the ceiling of the identity
head: 1.0 on noise-free targets).

The PMI embedding is computed from the training split only, as in a comparison; targets
are those of the validation split. NumPy only (:func:`ceiling_frame` and
:func:`ceiling_table`, its report as a pandas frame and as text, import pandas when called).
"""

from __future__ import annotations

import time
import warnings
from dataclasses import replace

import numpy as np

from workbench import _checks
from workbench.evaluation.metrics import json_number, macro_average_precision, mean_average_precision
from workbench.method.targets import label_vectors
from workbench.method.decoders import DECODERS, decoder_scores
from workbench.method.embed import EmbeddingOptions

__all__ = ["CEILING_EMBEDDINGS", "decoding_ceiling", "ceiling_frame", "ceiling_table"]

#: The embeddings a ceiling compares.
CEILING_EMBEDDINGS = ("pmi", "random", "identity")


def decoding_ceiling(
    dataset,
    *,
    dims=(4, 8, 16, 32, 64, 128),
    embeddings=CEILING_EMBEDDINGS,
    options: EmbeddingOptions | None = None,
    decoder: str = "cosine",
    validation_fraction: float = 0.1,
    split_random_state: int = 0,
    random_state: int = 0,
) -> dict:
    """MAP@100 and macro AP of decoding every validation image's ideal target, against ``k``.

    Parameters
    ----------
    dataset : MultiLabelDataset
        Only its labels are used (no image is read).
    dims : sequence of int
        The ``k`` values of the pmi and random embeddings.
    embeddings : sequence of str
        Some of ``"pmi"``, ``"random"``, ``"identity"``.
    options : EmbeddingOptions, optional
        PMI and spectral choices of the pmi embedding (its ``embedding_dim`` is replaced
        by each of ``dims``).
    decoder : {"cosine", "greedy", "nnls"}, default="cosine"
    validation_fraction, split_random_state
        The train/validation split (as :meth:`MultiLabelDataset.split`).
    random_state : int, default=0
        Seed of the random embedding's vectors.

    Returns
    -------
    dict
        ``{"config": {...}, "rows": [{"embedding", "dim", "dim_achieved", "map_at_100",
        "macro_ap"}, …]}``; the identity has one row, its ``dim`` is ``C``. ``dim_achieved``
        is below ``dim`` when the PMI matrix has fewer usable eigenvalues.
    """
    from workbench.method.cooccurrence import count_cooccurrence
    from workbench.method.embed import embed_labels

    dims = [_checks.integer(dim, "dim") for dim in dims]
    embeddings = [_checks.choice(name, "embedding", CEILING_EMBEDDINGS) for name in embeddings]
    if not embeddings or (not dims and embeddings != ["identity"]):
        raise ValueError("Give at least one embedding, and dims for pmi and random.")
    _checks.choice(decoder, "decoder", DECODERS)
    options = options or EmbeddingOptions()
    began = time.perf_counter()
    train_set, validation = dataset.split(validation_fraction=validation_fraction, random_state=split_random_state)
    train_counts = np.diff(train_set.labels.tocsc().indptr)
    truth = validation.labels.toarray() != 0
    labelled = truth.any(axis=1)
    truth = truth[labelled]
    targets_of = truth.astype(np.float64)
    counts = count_cooccurrence(train_set.labels, train_set.vocabulary) if "pmi" in embeddings else None

    def measure(embedding_name: str, dim: int, vectors: np.ndarray, achieved: int) -> dict:
        scores = decoder_scores(targets_of @ vectors.astype(np.float64), vectors, decoder=decoder)
        return {"embedding": embedding_name, "dim": int(dim), "dim_achieved": int(achieved),
                "map_at_100": json_number(mean_average_precision(scores, truth, k=100)),
                "macro_ap": json_number(macro_average_precision(scores, truth))}

    rows = []
    for name in embeddings:
        if name == "identity":
            identity = label_vectors("identity", vocabulary=validation.vocabulary)
            rows.append(measure("identity", len(validation.vocabulary), identity.vectors, len(validation.vocabulary)))
            continue
        for dim in dims:
            if name == "pmi":
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")  # k beyond the positive spectrum: dim_achieved says so
                    computed = embed_labels(counts, options=replace(options, embedding_dim=dim))
                vectors = label_vectors("pmi", vocabulary=validation.vocabulary, embedding=computed,
                                        label_counts=train_counts).vectors
            else:
                vectors = label_vectors("random", vocabulary=validation.vocabulary, embedding_dim=dim,
                                        random_state=random_state).vectors
            rows.append(measure(name, dim, vectors, vectors.shape[1]))
    config = {
        "data": dataset.name,
        "num_labels": len(dataset.vocabulary),
        "num_train": len(train_set),
        "num_validation_images_with_labels": int(labelled.sum()),
        "dims": dims,
        "embeddings": embeddings,
        "embedding_options": options.to_dict() if "pmi" in embeddings else None,
        "decoder": decoder,
        "validation_fraction": float(validation_fraction),
        "split_random_state": int(split_random_state),
        "random_state": int(random_state),
        "embedding_from": "training split only",
        "seconds": round(time.perf_counter() - began, 3),
    }
    return {"config": config, "rows": rows}


def ceiling_frame(report: dict):
    """A ceiling (:func:`decoding_ceiling`'s report) as a :class:`pandas.DataFrame`, one row per embedding and ``k``.

    Columns: ``embedding``, ``dim`` (the ``k`` asked for), ``dim_achieved`` (the ``k`` the
    embedding has: fewer when PMI has fewer usable eigenpairs), ``map_at_100`` and
    ``macro_ap`` (floats; NaN where undefined).
    """
    import pandas as pd

    records = [{"embedding": row["embedding"], "dim": int(row["dim"]), "dim_achieved": int(row["dim_achieved"]),
                "map_at_100": float("nan") if row["map_at_100"] is None else float(row["map_at_100"]),
                "macro_ap": float("nan") if row["macro_ap"] is None else float(row["macro_ap"])} for row in report["rows"]]
    return pd.DataFrame.from_records(records, columns=["embedding", "dim", "dim_achieved", "map_at_100", "macro_ap"])


def ceiling_table(report: dict) -> str:
    """:func:`ceiling_frame` as text, then the decoder and the number of validation images measured."""
    from workbench._tables import text_table

    frame = ceiling_frame(report).rename(columns={"dim": "k", "dim_achieved": "k achieved", "map_at_100": "MAP@100",
                                                  "macro_ap": "macro AP"})
    config = report["config"]
    return (f"{text_table(frame)}\ndecoder {config['decoder']}, {config['num_validation_images_with_labels']} "
            "validation images")
