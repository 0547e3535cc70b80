"""Sum-aware decoders: which labels' vectors add up to a predicted point.

The network regresses the **sum** of its image's label vectors (with a cosine loss, so
only the direction counts). The cosine decoder ranks labels by their cosine to the
prediction; with several labels every true label's cosine shrinks, and a label that
co-occurs with a true one (its vector close to theirs) can outrank a true label with a
short vector. The decoders here explain the prediction as a non-negative combination
of label vectors, ``p ≈ Σ_j w_j e_j`` with ``w ≥ 0``, so correlated labels are
explained away and short vectors count:

``"greedy"``
    Non-negative orthogonal matching pursuit: repeatedly add the label whose vector best
    explains the residual (largest ``⟨r, e_j⟩ / ‖e_j‖``), refit the weights of the chosen
    labels by non-negative least squares, and stop when the residual no longer shrinks
    by ``min_gain`` (a share of ``‖p‖``) or ``max_labels`` are chosen.
``"nnls"``
    Non-negative least squares (:func:`scipy.optimize.nnls`) over the ``candidates``
    labels of highest cosine (all labels when there are fewer), so 17,000 labels stay
    fast; the labels with a non-zero weight are the prediction.

The target of an image with labels ``S`` is ``α Σ_{i∈S} e_i``: equal weights, at an
unknown scale ``α``. So each decoder's **score** of a label is its weight divided by the
image's largest weight, in ``[0, 1]``: about 1 for each label of the sum, and the number
of labels scoring at least 0.5 is the decoder's estimate of how many labels the image
has. Labels with no weight keep their order by cosine through a tie-breaker below
``1e-3``, so a ranking metric (MAP@100) sees a full ranking. :func:`decoder_scores` is
the one entry point; its scores feed :func:`workbench.method.decoding.rank_labels`
exactly as cosine scores do (top N, or every label at or above a threshold).
NumPy and SciPy only.
"""

from __future__ import annotations

import numpy as np

from workbench import _checks
from workbench.method.embedding import unit_rows

__all__ = ["DECODERS", "DEFAULT_SET_THRESHOLD", "decoder_scores", "estimated_num_labels"]

#: Every decoder, the plain cosine one first.
DECODERS = ("cosine", "greedy", "nnls")
#: The score at or above which greedy and NNLS count a label as present, before calibration.
DEFAULT_SET_THRESHOLD = 0.5
#: Largest share of a score that the cosine tie-breaker of labels without weight may take.
_TIE_BREAK = 1e-3


def _nnls(matrix: np.ndarray, target: np.ndarray) -> np.ndarray:
    """``argmin ‖matrix w − target‖`` over ``w ≥ 0`` (float64)."""
    from scipy.optimize import nnls

    weights, _ = nnls(matrix, target, maxiter=50 * max(1, matrix.shape[1]))
    return weights


def _greedy_weights(point: np.ndarray, candidates: np.ndarray, *, max_labels: int, min_gain: float) -> np.ndarray:
    """Non-negative orthogonal matching pursuit of ``point`` (k,) over ``candidates`` (M, k); weights (M,)."""
    norms = np.linalg.norm(candidates, axis=1)
    usable = norms > 0
    weights = np.zeros(len(candidates))
    scale = float(np.linalg.norm(point))
    if scale == 0 or not usable.any():
        return weights
    chosen: list[int] = []
    residual = point.copy()
    residual_norm = scale
    for _ in range(max_labels):
        explained = np.where(usable, candidates @ residual / np.where(usable, norms, 1.0), -np.inf)
        explained[chosen] = -np.inf
        best = int(np.argmax(explained))
        if not explained[best] > 0:
            break
        trial = chosen + [best]
        trial_weights = _nnls(candidates[trial].T, point)
        trial_residual = point - candidates[trial].T @ trial_weights
        trial_norm = float(np.linalg.norm(trial_residual))
        if residual_norm - trial_norm < min_gain * scale:
            break
        chosen, residual, residual_norm = trial, trial_residual, trial_norm
        weights[:] = 0
        weights[chosen] = trial_weights
    return weights


def decoder_scores(
    points,
    vectors,
    *,
    decoder: str = "cosine",
    max_labels: int = 8,
    candidates: int = 64,
    min_gain: float = 0.02,
) -> np.ndarray:
    """A score for every label of every predicted point, from one decoder.

    Parameters
    ----------
    points : array-like of shape (N, k)
        Network outputs (any scale: only their direction was trained).
    vectors : array-like of shape (C, k)
        Label vectors (``LabelEmbedding.vectors``, rows in vocabulary order).
    decoder : {"cosine", "greedy", "nnls"}, default="cosine"
    max_labels : int, default=8
        Greedy: most labels chosen per point.
    candidates : int, default=64
        Greedy and NNLS: the labels of highest cosine that may receive weight (all when
        ``C`` is smaller). It bounds the work per point, so 17,000 labels stay fast.
    min_gain : float, default=0.02
        Greedy: a label is added only when it shrinks the residual by at least this
        share of ``‖p‖``.

    Returns
    -------
    ndarray of shape (N, C), dtype float32
        ``"cosine"``: cosine similarities in ``[-1, 1]``. ``"greedy"``, ``"nnls"``: each
        label's weight divided by the point's largest weight (``[0, 1]``), plus a cosine
        tie-breaker below ``1e-3`` that orders the labels without weight.
    """
    from workbench.method.decoding import LabelScorer

    _checks.choice(decoder, "decoder", DECODERS)
    max_labels = _checks.integer(max_labels, "max_labels")
    candidates = _checks.integer(candidates, "candidates")
    min_gain = _checks.number(min_gain, "min_gain")
    scorer = LabelScorer(vectors)
    points = scorer.check_outputs(points)
    cosines = scorer.scores_of_checked(points)
    if decoder == "cosine":
        return cosines
    vectors = np.asarray(vectors, dtype=np.float64)
    num_points, num_labels = cosines.shape
    width = min(max(candidates, max_labels), num_labels)
    if width < num_labels:
        from workbench.method.decoding import _rank  # block-maximum filter: far faster than argpartition over C

        shortlist = np.array([[index for index, _ in row] for row in _rank(cosines, top=width, threshold=None)])
    else:
        shortlist = np.broadcast_to(np.arange(num_labels), (num_points, num_labels))
    weights = np.zeros((num_points, width))
    directions = unit_rows(points.astype(np.float64))
    for row in range(num_points):
        labels = shortlist[row]
        if decoder == "nnls":
            weights[row] = _nnls(vectors[labels].T, directions[row])
        else:
            weights[row] = _greedy_weights(directions[row], vectors[labels], max_labels=max_labels, min_gain=min_gain)
    # labels without weight: a cosine tie-breaker below 1e-3 (in place, float32: (N, C) may be large)
    scores = cosines
    scores += 1.0
    scores *= _TIE_BREAK / 2.0
    # labels with weight: above every label without, in (1e-3, 1]
    largest = weights.max(axis=1, keepdims=True)
    relative = np.divide(weights, largest, out=np.zeros_like(weights), where=largest > 0)
    rows, slots = np.nonzero(relative > 0)
    scores[rows, shortlist[rows, slots]] = _TIE_BREAK + (1.0 - _TIE_BREAK) * relative[rows, slots]
    return scores


def estimated_num_labels(scores, *, threshold: float = DEFAULT_SET_THRESHOLD) -> np.ndarray:
    """How many labels each point has by a greedy or NNLS decoder's estimate: scores at or above ``threshold``.

    Returns
    -------
    ndarray of shape (N,), dtype int64
    """
    return np.sum(np.asarray(scores) >= float(threshold), axis=1).astype(np.int64)
