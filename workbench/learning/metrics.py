"""Ranking metrics for multi-label classification, and the per-epoch evaluation callback.

Every metric takes a score matrix ``scores`` of shape ``(N, C)`` (one score per image
and label, higher = more likely) and the true labels as a multi-hot matrix of the
same shape (a scipy CSR label matrix, or any dense 0/1 array).

Ranking and ties
    Each image ranks its ``C`` labels by decreasing score; equal scores are broken by
    the label's column index (lower first), so every ranking is deterministic.

AP@k and MAP@k (per image, then averaged over images)
    For one image with ``R ≥ 1`` relevant labels, let ``rel(r)`` be 1 when the label
    at rank ``r`` is relevant and ``P@r`` the share of relevant labels among the top
    ``r``. Then

    ``AP@k = (1 / min(k, R)) · Σ_{r=1..k} P@r · rel(r)``

    and ``MAP@k`` is the mean of ``AP@k`` over the images with at least one label.
    ``AP@k`` is 1 when the ``min(k, R)`` first ranks are all relevant. ``MAP@100``
    is the metric of the paper. With ``k ≥ C`` and no tied scores it equals
    scikit-learn's ``label_ranking_average_precision_score``.

Macro AP (per label, then averaged over labels)
    Each label ranks the ``N`` images by decreasing score; its average precision is
    scikit-learn's ``average_precision_score`` (the step-wise area under the
    precision-recall curve, ``Σ_n (R_n − R_{n−1}) P_n``, tied scores forming one
    threshold). Macro AP is the mean over labels with at least one positive image.

P@k and R@k
    ``P@k`` = relevant labels among the top ``k`` / ``k``; ``R@k`` = relevant labels
    among the top ``k`` / ``R``. Both are averaged over the images with at least one
    label.

Images without labels have no relevant label to rank: they are left out of MAP, P@k
and R@k (not counted as zero). Labels without positive images are left out of macro
AP. This module imports only numpy and scipy (the per-epoch Keras callback that uses
these metrics is :class:`workbench.learning.evaluation.EvaluationCallback`).
"""

from __future__ import annotations


import numpy as np
import scipy.sparse as sp

from workbench import _checks

__all__ = [
    "average_precision_at_k",
    "mean_average_precision",
    "per_label_average_precision",
    "macro_average_precision",
    "precision_at_k",
    "recall_at_k",
    "evaluate_scores",
]

#: Rows (images) ranked at once; bounds the memory of the dense blocks to a few MB.
_ROW_CHUNK = 2048


# ---------------------------------------------------------------------------------
# input checking
# ---------------------------------------------------------------------------------
def _check(scores, labels) -> tuple[np.ndarray, sp.csr_matrix]:
    scores = np.asarray(scores)
    if scores.ndim != 2:
        raise ValueError(f"scores must be a 2-D (N, C) array; got shape {scores.shape}.")
    if not np.issubdtype(scores.dtype, np.number) or np.issubdtype(scores.dtype, np.complexfloating):
        raise ValueError(f"scores must be real numbers; got dtype {scores.dtype}.")
    if not np.all(np.isfinite(scores)):
        raise ValueError("scores contain NaN or infinite values; check the model outputs (did training diverge?).")
    labels = sp.csr_matrix(labels)
    if labels.shape != scores.shape:
        raise ValueError(
            f"labels have shape {labels.shape} but scores have shape {scores.shape}; give one row per image "
            "and one column per label in both."
        )
    labels.sum_duplicates()
    labels.eliminate_zeros()
    if labels.nnz and (labels.data != 1).any():
        labels = labels.copy()
        labels.data = (labels.data != 0).astype(np.uint8)
        labels.eliminate_zeros()
    return scores, labels


def check_k(k) -> int:
    """``k`` of a metric@k, checked to be a positive integer."""
    return _checks.integer(k, "k")


def _ranked_relevance(scores: np.ndarray, labels: sp.csr_matrix, *, k: int):
    """Yield ``(rows, relevance)`` chunks: relevance of the top ``k`` ranks, (n, k) bool."""
    k = min(k, scores.shape[1])
    for start in range(0, scores.shape[0], _ROW_CHUNK):
        stop = min(start + _ROW_CHUNK, scores.shape[0])
        block = scores[start:stop]
        # Stable sort of the negated scores: ties go to the lower column index.
        order = np.argsort(-block.astype(np.float64), axis=1, kind="stable")[:, :k]
        dense = labels[start:stop].toarray().astype(bool)
        yield slice(start, stop), np.take_along_axis(dense, order, axis=1)


# ---------------------------------------------------------------------------------
# per-image ranking metrics
# ---------------------------------------------------------------------------------
def average_precision_at_k(scores, labels, *, k: int = 100) -> np.ndarray:
    """AP@k of every image (see the module docstring for the definition).

    Parameters
    ----------
    scores : array-like of shape (N, C)
        Label scores, higher = more likely.
    labels : scipy sparse matrix or array-like of shape (N, C)
        Multi-hot true labels (non-zero = relevant).
    k : int, default=100
        Ranks considered; ``k > C`` behaves as ``k = C``.

    Returns
    -------
    ndarray of shape (N,), dtype float64
        AP@k per image, in [0, 1]; NaN for images without labels.
    """
    scores, labels = _check(scores, labels)
    k = check_k(k)
    num_relevant = np.diff(labels.indptr)
    result = np.full(scores.shape[0], np.nan)
    for rows, relevance in _ranked_relevance(scores, labels, k=k):
        hits = np.cumsum(relevance, axis=1)
        precision = hits / np.arange(1, relevance.shape[1] + 1)
        totals = (precision * relevance).sum(axis=1)
        relevant = num_relevant[rows]
        with np.errstate(invalid="ignore", divide="ignore"):
            values = totals / np.minimum(k, relevant)
        result[rows] = np.where(relevant > 0, values, np.nan)
    return result


def mean_average_precision(scores, labels, *, k: int = 100) -> float:
    """MAP@k: the mean of :func:`average_precision_at_k` over images with labels.

    Parameters
    ----------
    scores : array-like of shape (N, C)
    labels : scipy sparse matrix or array-like of shape (N, C)
    k : int, default=100
        ``MAP@100`` is the paper's metric.

    Returns
    -------
    float
        In [0, 1]; NaN when no image has a label.
    """
    values = average_precision_at_k(scores, labels, k=k)
    values = values[~np.isnan(values)]
    return float(values.mean()) if len(values) else float("nan")


def _hits_at_k(scores, labels, k):
    scores, labels = _check(scores, labels)
    k = check_k(k)
    num_relevant = np.diff(labels.indptr)
    hits = np.zeros(scores.shape[0], dtype=np.int64)
    for rows, relevance in _ranked_relevance(scores, labels, k=k):
        hits[rows] = relevance.sum(axis=1)
    return hits, num_relevant, k


def precision_at_k(scores, labels, *, k: int = 5) -> float:
    """P@k: relevant labels among the top ``k`` divided by ``k``, mean over images with labels.

    Parameters
    ----------
    scores : array-like of shape (N, C)
    labels : scipy sparse matrix or array-like of shape (N, C)
    k : int, default=5

    Returns
    -------
    float
        In [0, 1]; NaN when no image has a label.
    """
    hits, num_relevant, k = _hits_at_k(scores, labels, k)
    keep = num_relevant > 0
    return float((hits[keep] / k).mean()) if keep.any() else float("nan")


def recall_at_k(scores, labels, *, k: int = 5) -> float:
    """R@k: relevant labels among the top ``k`` divided by all relevant labels, mean over images with labels.

    Parameters
    ----------
    scores : array-like of shape (N, C)
    labels : scipy sparse matrix or array-like of shape (N, C)
    k : int, default=5

    Returns
    -------
    float
        In [0, 1]; NaN when no image has a label.
    """
    hits, num_relevant, k = _hits_at_k(scores, labels, k)
    keep = num_relevant > 0
    return float((hits[keep] / num_relevant[keep]).mean()) if keep.any() else float("nan")


# ---------------------------------------------------------------------------------
# per-label metrics
# ---------------------------------------------------------------------------------
def per_label_average_precision(scores, labels) -> np.ndarray:
    """Average precision of every label over the images (scikit-learn's definition).

    Parameters
    ----------
    scores : array-like of shape (N, C)
    labels : scipy sparse matrix or array-like of shape (N, C)

    Returns
    -------
    ndarray of shape (C,), dtype float64
        ``average_precision_score(labels[:, c], scores[:, c])``; NaN for labels
        without positive images.
    """
    scores, labels = _check(scores, labels)
    num_images, num_labels = scores.shape
    labels = labels.tocsc()
    positives = np.diff(labels.indptr)
    result = np.full(num_labels, np.nan)
    positions = np.arange(1, num_images + 1, dtype=np.float64)[:, None]
    column_chunk = max(1, 4_000_000 // max(num_images, 1))
    for start in range(0, num_labels, column_chunk):
        stop = min(start + column_chunk, num_labels)
        block = scores[:, start:stop].astype(np.float64)
        relevant = labels[:, start:stop].toarray().astype(bool)
        order = np.argsort(-block, axis=0, kind="stable")
        sorted_scores = np.take_along_axis(block, order, axis=0)
        sorted_relevant = np.take_along_axis(relevant, order, axis=0)
        precision = np.cumsum(sorted_relevant, axis=0) / positions
        # Tied scores form one threshold: every positive gets the precision at the
        # end of its tie group (the next position whose successor has a lower score).
        group_end = np.ones_like(sorted_relevant)
        group_end[:-1] = sorted_scores[:-1] != sorted_scores[1:]
        end_index = np.where(group_end, np.arange(num_images)[:, None], num_images)
        end_index = np.minimum.accumulate(end_index[::-1], axis=0)[::-1]
        precision_at_end = np.take_along_axis(precision, end_index, axis=0)
        totals = (precision_at_end * sorted_relevant).sum(axis=0)
        count = positives[start:stop]
        with np.errstate(invalid="ignore", divide="ignore"):
            result[start:stop] = np.where(count > 0, totals / count, np.nan)
    return result


def macro_average_precision(scores, labels) -> float:
    """Macro AP: mean of :func:`per_label_average_precision` over labels with positives.

    Returns
    -------
    float
        In [0, 1]; NaN when no label has a positive image.
    """
    values = per_label_average_precision(scores, labels)
    values = values[~np.isnan(values)]
    return float(values.mean()) if len(values) else float("nan")


def evaluate_scores(scores, labels, *, map_k: int = 100, precision_k: int = 5) -> dict:
    """Every metric of one evaluation, as a JSON-ready dict.

    Returns
    -------
    dict
        ``map_at_{map_k}``, ``macro_ap``, ``precision_at_{precision_k}``,
        ``recall_at_{precision_k}`` (floats; NaN where undefined).
    """
    scores, labels = _check(scores, labels)
    return {
        f"map_at_{map_k}": mean_average_precision(scores, labels, k=map_k),
        "macro_ap": macro_average_precision(scores, labels),
        f"precision_at_{precision_k}": precision_at_k(scores, labels, k=precision_k),
        f"recall_at_{precision_k}": recall_at_k(scores, labels, k=precision_k),
    }


def json_number(value):
    """A float, or ``None`` for NaN and infinities (JSON has neither)."""
    value = float(value)
    return value if np.isfinite(value) else None
