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

Label-set metrics (:func:`label_set_metrics`: the chosen labels of each image, not a ranking)
    Micro precision, recall and F1 pool every (image, label) decision; macro F1 is the
    mean over labels of each label's F1, leaving out labels that are neither true nor
    predicted anywhere. Both are computed by scikit-learn's
    ``precision_recall_fscore_support(average="micro" | "macro", zero_division=nan)``.
    Exact-set accuracy is the share of images whose chosen set equals the true set
    (scikit-learn's multi-label ``accuracy_score``); ``count_mae`` is the mean absolute
    error of the number of chosen labels. :func:`label_set_metrics_by_count` reports them
    per number of true labels per image, so busy scenes are visible.

Images without labels have no relevant label to rank: they are left out of MAP, P@k
and R@k (not counted as zero). Labels without positive images are left out of macro
AP. This module imports numpy and scipy, and scikit-learn when label sets are measured
(the per-epoch Keras callback that uses these metrics is
:class:`workbench.learning.callbacks.EvaluationCallback`).
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
    "ranking_metrics",
    "label_set_metrics",
    "label_set_metrics_by_count",
]

#: Rows (images) ranked at once; bounds the memory of the dense blocks to a few MB.
_ROW_CHUNK = 2048
#: Score entries (images × labels) of one block of labels ranked at once by per-label AP (32 MB as float64).
_COLUMN_BLOCK_ELEMENTS = 4_000_000


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


def _top_k(block: np.ndarray, k: int) -> np.ndarray:
    """Columns of every row's ``k`` highest scores in rank order, (n, k): a stable sort's first ``k``.

    Ties go to the lower column index, exactly as ``np.argsort(-block, kind="stable")[:, :k]``,
    which this replaces at a fraction of its cost when ``k ≪ C``: the ``k`` highest are
    selected (``argpartition``), then only they are sorted, by score and then column.
    Rows where a tie straddles the ``k``-th score (the selection among equal scores would be
    arbitrary) take the tied scores in column order (:func:`_top_k_with_ties`).
    """
    block = np.asarray(block)
    # negation is exact in either float type; anything else is compared as float64
    negated = -(block if block.dtype in (np.float32, np.float64) else block.astype(np.float64))
    if k >= negated.shape[1]:
        return np.argsort(negated, axis=1, kind="stable")[:, :k]
    # the k selected, in column order, then stably by score: ties stay in column order
    chosen = np.sort(np.argpartition(negated, k - 1, axis=1)[:, :k], axis=1)
    values = np.take_along_axis(negated, chosen, axis=1)
    boundary = values.max(axis=1, keepdims=True)
    top = np.take_along_axis(chosen, np.argsort(values, axis=1, kind="stable"), axis=1)
    straddling = np.count_nonzero(negated <= boundary, axis=1) > k
    if straddling.any():
        top[straddling] = _top_k_with_ties(negated[straddling], boundary[straddling], k)
    return top


def _top_k_with_ties(negated: np.ndarray, boundary: np.ndarray, k: int) -> np.ndarray:
    """:func:`_top_k` of rows where more than ``k`` scores reach the ``k``-th (negated scores, that score's negation).

    Every score above the ``k``-th is taken, then the ones equal to it in column order until
    there are ``k``; those ``k`` are sorted by score, stably, so ties stay in column order.
    """
    chosen = negated < boundary
    equal = negated == boundary
    room = k - np.count_nonzero(chosen, axis=1)
    chosen |= equal & (np.cumsum(equal, axis=1) <= room[:, None])
    columns = np.nonzero(chosen)[1].reshape(len(negated), k)  # row by row, in column order
    values = np.take_along_axis(negated, columns, axis=1)
    return np.take_along_axis(columns, np.argsort(values, axis=1, kind="stable"), axis=1)


def _ranked_relevance(scores: np.ndarray, labels: sp.csr_matrix, *, k: int):
    """Yield ``(rows, relevance)`` chunks: relevance of the top ``k`` ranks, (n, k) bool."""
    k = min(k, scores.shape[1])
    for start in range(0, scores.shape[0], _ROW_CHUNK):
        stop = min(start + _ROW_CHUNK, scores.shape[0])
        order = _top_k(scores[start:stop], k)  # ties go to the lower column index
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

    A label's AP is the mean, over its positive images ``p``, of the precision at ``p``'s
    score: the positives scoring at least ``s_p`` over all images scoring at least ``s_p``
    (images tied with ``p`` count as ranked above it: one threshold per distinct score,
    as ``average_precision_score``). Each block of labels is sorted once (values only);
    the counts are binary searches of the positives' scores in it.

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
    labels.sort_indices()
    result = np.full(num_labels, np.nan)
    column_chunk = max(1, _COLUMN_BLOCK_ELEMENTS // max(num_images, 1))
    for start in range(0, num_labels, column_chunk):
        stop = min(start + column_chunk, num_labels)
        block = scores[:, start:stop]
        if block.dtype not in (np.float32, np.float64):  # compared in one exact type
            block = block.astype(np.float64)
        ascending = np.sort(block, axis=0)
        for column in range(stop - start):
            rows = labels.indices[labels.indptr[start + column] : labels.indptr[start + column + 1]]
            if not len(rows):
                continue
            positive = block[rows, column]
            at_least = num_images - np.searchsorted(ascending[:, column], positive, side="left")
            hits = len(positive) - np.searchsorted(np.sort(positive), positive, side="left")
            result[start + column] = float(np.mean(hits / at_least))
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
    return ranking_metrics(scores, labels, map_k=map_k, precision_k=precision_k)[1]


def ranking_metrics(scores, labels, *, map_k: int = 100, precision_k: int = 5, clean_labels=None) -> tuple[np.ndarray, dict]:
    """Each image's AP@``map_k`` and :func:`evaluate_scores`' metrics, from one ranking of every image's top labels.

    The top ``max(map_k, precision_k)`` labels of each image are ranked once (:func:`_top_k`);
    AP@``map_k``, P@``precision_k`` and R@``precision_k`` are read from that ranking, and so is
    MAP@``map_k`` against ``clean_labels`` when given. Each equals its own function
    (:func:`average_precision_at_k`, :func:`precision_at_k`, …) exactly.

    Parameters
    ----------
    scores : array-like of shape (N, C)
    labels : scipy sparse matrix or array-like of shape (N, C)
    map_k, precision_k : int
    clean_labels : scipy sparse matrix or array-like of shape (N, C), optional
        Other true labels of the same images (the clean labels of generated scenes).

    Returns
    -------
    image_ap : ndarray of shape (N,), dtype float64
        AP@``map_k`` of every image (NaN for images without labels).
    metrics : dict
        ``map_at_{map_k}``, ``macro_ap``, ``precision_at_{precision_k}``, ``recall_at_{precision_k}``
        and, with ``clean_labels``, ``map_at_{map_k}_clean``.
    """
    scores, labels = _check(scores, labels)
    map_k, precision_k = check_k(map_k), check_k(precision_k)
    truths = [labels] if clean_labels is None else [labels, _check(scores, clean_labels)[1]]
    depth = min(max(map_k, precision_k), scores.shape[1])
    ap = [np.full(scores.shape[0], np.nan) for _ in truths]
    hits = np.zeros(scores.shape[0], dtype=np.int64)
    for start in range(0, scores.shape[0], _ROW_CHUNK):
        rows = slice(start, min(start + _ROW_CHUNK, scores.shape[0]))
        order = _top_k(scores[rows], depth)  # one ranking for every metric and every set of true labels
        for values, truth in zip(ap, truths):
            relevance = np.take_along_axis(truth[rows].toarray().astype(bool), order, axis=1)
            ranked = relevance[:, :map_k]
            totals = (np.cumsum(ranked, axis=1) / np.arange(1, ranked.shape[1] + 1) * ranked).sum(axis=1)
            relevant = np.diff(truth.indptr)[rows]
            with np.errstate(invalid="ignore", divide="ignore"):
                values[rows] = np.where(relevant > 0, totals / np.minimum(map_k, relevant), np.nan)
            if truth is labels:
                hits[rows] = relevance[:, :precision_k].sum(axis=1)
    num_relevant = np.diff(labels.indptr)
    keep = num_relevant > 0

    def mean(values):
        values = values[~np.isnan(values)]
        return float(values.mean()) if len(values) else float("nan")

    metrics = {
        f"map_at_{map_k}": mean(ap[0]),
        "macro_ap": macro_average_precision(scores, labels),
        f"precision_at_{precision_k}": float((hits[keep] / precision_k).mean()) if keep.any() else float("nan"),
        f"recall_at_{precision_k}": float((hits[keep] / num_relevant[keep]).mean()) if keep.any() else float("nan"),
    }
    if clean_labels is not None:
        metrics[f"map_at_{map_k}_clean"] = mean(ap[1])
    return ap[0], metrics


# ---------------------------------------------------------------------------------
# label-set metrics (chosen labels, not rankings)
# ---------------------------------------------------------------------------------
def _label_sets(values):
    """Chosen or true labels as a multi-hot CSR matrix (uint8, no stored zeros); non-zero = in the set."""
    if sp.issparse(values):
        return (sp.csr_matrix(values) != 0).astype(np.uint8)
    values = np.asarray(values)
    if values.ndim != 2:
        return values
    # Built from the non-zero positions of the flat array: several times faster than
    # scipy's dense → CSR conversion on the mostly-True sets of low thresholds.
    index = np.int32 if values.size < 2**31 else np.int64
    per_row = np.count_nonzero(values, axis=1)
    indptr = np.zeros(values.shape[0] + 1, dtype=index)
    np.cumsum(per_row, out=indptr[1:])
    columns = np.flatnonzero(values).astype(index, copy=False) % index(max(values.shape[1], 1))
    return sp.csr_matrix((np.ones(len(columns), dtype=np.uint8), columns, indptr), shape=values.shape)


def _check_sets(predicted, labels) -> tuple[sp.csr_matrix, sp.csr_matrix]:
    chosen, truth = _label_sets(predicted), _label_sets(labels)
    if chosen.ndim != 2 or chosen.shape != truth.shape:
        raise ValueError(
            f"predicted labels have shape {chosen.shape} but true labels {truth.shape}; give one row per image "
            "and one column per label in both."
        )
    return chosen, truth


def _averaged_scores(truth: sp.csr_matrix, chosen: sp.csr_matrix, average: str) -> tuple[float, float, float]:
    """scikit-learn's precision, recall and F1 of the label sets, ``average`` over labels (NaN where 0/0)."""
    from sklearn.metrics import precision_recall_fscore_support

    if truth.shape[1] < 2:  # one column reads as a binary target: add a label in no set (it changes no average)
        padding = sp.csr_matrix((truth.shape[0], 2 - truth.shape[1]), dtype=np.uint8)
        truth, chosen = sp.hstack([truth, padding], format="csr"), sp.hstack([chosen, padding], format="csr")
    precision, recall, f1, _ = precision_recall_fscore_support(truth, chosen, average=average, zero_division=np.nan)
    return float(precision), float(recall), float(f1)


def label_set_metrics(predicted, labels) -> dict:
    """How good the chosen label sets are (see the module docstring for each definition).

    Micro and macro scores are scikit-learn's ``precision_recall_fscore_support`` with
    ``zero_division=nan``; exact-set accuracy and the count error are computed here.

    Parameters
    ----------
    predicted : array-like or scipy sparse matrix of shape (N, C)
        The chosen labels of each image (non-zero = chosen).
    labels : array-like or scipy sparse matrix of shape (N, C)
        The true labels.

    Returns
    -------
    dict
        ``micro_precision``, ``micro_recall``, ``micro_f1``, ``macro_f1``,
        ``exact_set_accuracy``, ``count_mae`` (floats; NaN where undefined) and
        ``num_images``.
    """
    chosen, truth = _check_sets(predicted, labels)
    return _set_metrics(chosen, truth)


def _set_metrics(chosen: sp.csr_matrix, truth: sp.csr_matrix) -> dict:
    num_images = truth.shape[0]
    if num_images == 0:
        nan = float("nan")
        return {"micro_precision": nan, "micro_recall": nan, "micro_f1": nan, "macro_f1": nan,
                "exact_set_accuracy": nan, "count_mae": nan, "num_images": 0}
    micro_precision, micro_recall, micro_f1 = _averaged_scores(truth, chosen, "micro")
    chosen_counts, true_counts = chosen.getnnz(axis=1), truth.getnnz(axis=1)
    return {
        "micro_precision": micro_precision,
        "micro_recall": micro_recall,
        "micro_f1": micro_f1,
        "macro_f1": _averaged_scores(truth, chosen, "macro")[2],
        "exact_set_accuracy": float(np.mean((chosen != truth).getnnz(axis=1) == 0)),
        "count_mae": float(np.mean(np.abs(chosen_counts.astype(np.int64) - true_counts))),
        "num_images": int(num_images),
    }


def label_set_metrics_by_count(predicted, labels, *, max_count: int = 6) -> dict:
    """:func:`label_set_metrics` of the images with 1, 2, … true labels (the last group: ``max_count`` or more).

    Returns
    -------
    dict
        ``{"1": metrics, "2": metrics, …, "6+": metrics}`` for the counts that occur.
    """
    chosen, truth = _check_sets(predicted, labels)
    max_count = _checks.integer(max_count, "max_count")
    counts = truth.getnnz(axis=1)
    groups = {}
    for count in range(1, max_count + 1):
        rows = np.flatnonzero(counts >= count if count == max_count else counts == count)
        if len(rows):
            groups[f"{count}+" if count == max_count else str(count)] = _set_metrics(chosen[rows], truth[rows])
    return groups


def json_number(value):
    """A float, or ``None`` for NaN and infinities (JSON has neither)."""
    value = float(value)
    return value if np.isfinite(value) else None
