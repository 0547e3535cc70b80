"""Step 5 of the method: scores of every label from a model's outputs, and ranked labels.

A trained model maps an image to a point in the label-embedding space (embedding
heads) or to one probability per label (the sigmoid head). :class:`LabelScorer` turns
``(N, k)`` outputs into ``(N, C)`` label scores — the cosine similarity of each point
to each label vector — and is the **one scoring path**: the per-epoch evaluation, a
trained run's :meth:`~workbench.learning.runs.TrainedRun.label_scores`, classification
of uploads and :func:`decode_predictions` all call it. :func:`rank_labels` turns scores
into ranked label lists, either the ``top`` best labels or every label scoring at
least ``threshold``:

* :func:`rank_labels` ranks a score matrix (vectorised: block maxima bound every
  row's cut-off, so only the candidates are sorted);
* :func:`decode_predictions` scores and ranks network outputs in batches (one matrix
  product per batch, so memory stays bounded for 17,000 labels).

NumPy only: nothing here imports Keras.
"""

from __future__ import annotations

import numpy as np

from workbench import _checks
from workbench.method.embedding import unit_rows

__all__ = ["LabelScorer", "rank_labels", "decode_predictions", "check_setting", "setting_name", "DEFAULT_DECODE_BATCH"]


class LabelScorer:
    """Scores of all ``C`` labels from model outputs: the one scoring path of the workbench.

    Parameters
    ----------
    vectors : array-like of shape (C, k), optional
        The label vectors of an embedding head (``LabelEmbedding.vectors``). Each is
        normalised once, here. ``None`` for the sigmoid head, whose outputs already are
        per-label probabilities.

    Notes
    -----
    Calling the scorer on outputs ``(N, k)`` returns float32 scores ``(N, C)``: the
    cosine similarity of each output to each label vector, in ``[-1, 1]`` (a zero output
    or a zero label vector scores 0, never NaN), computed as unit rows of the outputs
    times the stored unit label vectors (float32, norms accumulated in float64). For
    the sigmoid head the outputs are returned as float32.
    """

    def __init__(self, vectors=None):
        if vectors is None:
            self.num_labels = None
            self.embedding_dim = None
            self._unit_vectors_t = None
            return
        vectors = np.asarray(vectors, dtype=np.float32)
        if vectors.ndim != 2:
            raise ValueError(f"Label vectors must be a (num_labels, embedding_dim) matrix; got shape {vectors.shape}.")
        if not np.all(np.isfinite(vectors)):
            raise ValueError("Label vectors contain NaN or infinite values; recompute the embedding.")
        self.num_labels, self.embedding_dim = (int(n) for n in vectors.shape)
        self._unit_vectors_t = np.ascontiguousarray(unit_rows(vectors).T)

    def check_outputs(self, outputs) -> np.ndarray:
        """``outputs`` as a finite float32 ``(N, width)`` matrix of the right width (``ValueError`` otherwise)."""
        outputs = np.asarray(outputs, dtype=np.float32)
        if outputs.ndim == 1:
            outputs = outputs[None, :]
        if outputs.ndim != 2:
            raise ValueError(f"Model outputs must be an (N, width) matrix; got shape {outputs.shape}.")
        if self.embedding_dim is not None and outputs.shape[1] != self.embedding_dim:
            raise ValueError(
                f"Points have {outputs.shape[1]} dimensions but label vectors have {self.embedding_dim}; "
                "use points from a model trained against this embedding."
            )
        if not np.all(np.isfinite(outputs)):
            raise ValueError("The model outputs contain NaN or infinite values; check the model (did training diverge?).")
        return outputs

    def __call__(self, outputs) -> np.ndarray:
        """``(N, C)`` float32 label scores of ``(N, k)`` outputs (``(N, C)`` probabilities pass through)."""
        return self.scores_of_checked(self.check_outputs(outputs))

    def scores_of_checked(self, outputs: np.ndarray, *, clip: bool = True) -> np.ndarray:
        """Scores of outputs already passed through :meth:`check_outputs`.

        ``clip=False`` leaves cosines that rounding put a hair outside ``[-1, 1]`` (the
        ranking is the same; :func:`decode_predictions` clips only the scores it keeps).
        """
        if self._unit_vectors_t is None:
            return outputs
        scores = unit_rows(outputs) @ self._unit_vectors_t
        if clip:
            np.clip(scores, -1.0, 1.0, out=scores)
        return scores


#: Rows of scores ranked at a time by :func:`decode_predictions` (bounds the ``(batch, C)`` buffer).
DEFAULT_DECODE_BATCH = 1024


# ---------------------------------------------------------------------------------
# ranking
# ---------------------------------------------------------------------------------
def check_setting(top, threshold) -> tuple[int | None, float | None]:
    """Validated ``(top, threshold)``; at least one must be given."""
    if top is None and threshold is None:
        raise ValueError("Give top=N (the N best labels) or threshold=T (every label scoring at least T), or both.")
    if top is not None:
        top = _checks.integer(top, "top")
    if threshold is not None:
        threshold = _checks.number(threshold, "threshold")
    return top, threshold


def setting_name(*, top: int | None = None, threshold: float | None = None) -> str:
    """The setting as stored with a classification: ``"top:5"``, ``"threshold:0.3"`` or both joined by ``,``."""
    top, threshold = check_setting(top, threshold)
    parts = []
    if top is not None:
        parts.append(f"top:{top}")
    if threshold is not None:
        parts.append(f"threshold:{threshold:g}")
    return ",".join(parts)


def rank_labels(scores, *, top: int | None = None, threshold: float | None = None) -> list[list[tuple[int, float]]]:
    """Ranked labels of every row of a score matrix.

    Parameters
    ----------
    scores : array-like of shape (N, C)
        One score per image and label (cosine similarity or probability); higher is
        better. NaN or infinite scores are refused.
    top : int, optional
        Keep the ``top`` best labels of each row (all ``C`` when ``top >= C``).
    threshold : float, optional
        Keep every label scoring at least ``threshold``. With ``top`` too, keep the
        ``top`` best of those.

    Returns
    -------
    list of N lists of (int, float)
        ``(label_index, score)`` pairs, best first; equal scores in label order
        (so ties at the ``top`` cut-off keep the lower label index).

    Notes
    -----
    Vectorised over rows, never a full sort: the columns are cut into blocks and the
    maximum of every block is taken (one pass over the matrix). For ``top``,
    ``np.partition`` finds the ``top``-th largest block maximum of every row, a lower
    bound of the row's ``top``-th score; for a threshold the bound is the threshold.
    Only blocks whose maximum reaches the bound are compared with it, and only the
    scores that pass are sorted (one ``np.lexsort`` for the whole matrix). A full
    argsort is ``O(C log C)`` per row; this is ``O(C)`` plus the survivors.
    """
    top, threshold = check_setting(top, threshold)
    scores = np.asarray(scores)
    if scores.ndim != 2:
        raise ValueError(f"scores must be a (num_images, num_labels) matrix; got shape {scores.shape}.")
    if not (np.issubdtype(scores.dtype, np.floating) or np.issubdtype(scores.dtype, np.integer)) or scores.dtype == bool:
        raise ValueError(f"scores must be numbers; got dtype {scores.dtype}.")
    if not np.issubdtype(scores.dtype, np.floating):
        scores = scores.astype(np.float64)
    if not np.all(np.isfinite(scores)):
        raise ValueError("scores contain NaN or infinite values; check the model outputs.")
    return _rank(scores, top=top, threshold=threshold)


def _rank(
    scores: np.ndarray, *, top: int | None, threshold: float | None, clip: bool = False
) -> list[list[tuple[int, float]]]:
    """:func:`rank_labels` on a validated, finite ``(N, C)`` matrix (``clip``: kept scores clipped to [-1, 1])."""
    num_rows, num_labels = scores.shape
    if num_rows == 0:
        return []
    if num_labels == 0:
        return [[] for _ in range(num_rows)]
    if top is not None and top >= num_labels:
        top = None
    if top is None and threshold is None:
        row_index, columns = np.divmod(np.arange(scores.size), num_labels)
        return _ranked_rows(row_index, columns, scores[row_index, columns], num_rows=num_rows, top=None, clip=clip)

    # Exact candidate filter. Columns are cut into blocks and only blocks whose maximum
    # reaches a row's bound are compared and sorted. For ``top`` the bound is the
    # ``top``-th largest block maximum, a lower bound of the row's ``top``-th score
    # (the ``top`` best blocks hold ``top`` distinct scores at least that large); a
    # threshold raises it.
    block = int(min(256, max(1, num_labels // (8 * (top or 1)))))
    num_blocks = num_labels // block
    full = num_blocks * block
    blocks = scores[:, :full].reshape(num_rows, num_blocks, block)
    block_max = blocks.max(axis=2)
    tail = scores[:, full:]
    if top is None:
        bound = np.full(num_rows, threshold, dtype=scores.dtype)
    else:
        maxima = np.concatenate([block_max, tail.max(axis=1, keepdims=True)], axis=1) if tail.shape[1] else block_max
        if maxima.shape[1] > top:
            bound = np.partition(maxima, maxima.shape[1] - top, axis=1)[:, maxima.shape[1] - top]
        else:
            bound = maxima.min(axis=1)
        if threshold is not None:
            bound = np.maximum(bound, np.asarray(threshold, dtype=bound.dtype))
    bound = bound[:, None]
    block_rows, block_index = np.nonzero(block_max >= bound)
    hit, offset = np.nonzero(blocks[block_rows, block_index] >= bound[block_rows])
    row_index = block_rows[hit]
    columns = block_index[hit] * block + offset
    if tail.shape[1]:
        tail_rows, tail_columns = np.nonzero(tail >= bound)
        row_index = np.concatenate([row_index, tail_rows])
        columns = np.concatenate([columns, tail_columns + full])
    return _ranked_rows(row_index, columns, scores[row_index, columns], num_rows=num_rows, top=top, clip=clip)


def _ranked_rows(
    row_index, columns, values, *, num_rows: int, top: int | None, clip: bool = False
) -> list[list[tuple[int, float]]]:
    """Group ``(row, column, value)`` triples by row, best value first (ties by column); keep ``top`` per row."""
    order = np.lexsort((columns, -values, row_index))
    row_index, columns, values = row_index[order], columns[order], values[order]
    bounds = np.concatenate([[0], np.cumsum(np.bincount(row_index, minlength=num_rows))])
    if top is not None:
        keep = np.arange(len(row_index)) - bounds[row_index] < top
        row_index, columns, values = row_index[keep], columns[keep], values[keep]
        bounds = np.concatenate([[0], np.cumsum(np.bincount(row_index, minlength=num_rows))])
    if clip:  # rounding can put a cosine a hair outside [-1, 1]; clipping keeps the order
        values = np.clip(values, -1.0, 1.0)
    columns = columns.tolist()
    values = values.tolist()
    bounds = bounds.tolist()
    return [list(zip(columns[bounds[r] : bounds[r + 1]], values[bounds[r] : bounds[r + 1]])) for r in range(num_rows)]


def decode_predictions(
    points,
    vectors,
    *,
    top: int | None = None,
    threshold: float | None = None,
    batch_size: int = DEFAULT_DECODE_BATCH,
) -> list[list[tuple[int, float]]]:
    """Rank label vectors by cosine similarity to each predicted point.

    Parameters
    ----------
    points : array-like of shape (N, k)
        Network outputs (points in the label-embedding space).
    vectors : array-like of shape (C, k)
        Label vectors (``LabelEmbedding.vectors``).
    top, threshold
        As in :func:`rank_labels`.
    batch_size : int
        Points scored per matrix product; bounds the temporary ``(batch_size, C)``
        float32 similarity matrix.

    Returns
    -------
    list of N lists of (int, float)
        ``(label_index, cosine_similarity)`` pairs, best first.
    """
    top, threshold = check_setting(top, threshold)
    batch_size = _checks.integer(batch_size, "batch_size")
    scorer = LabelScorer(vectors)
    points = scorer.check_outputs(points)
    ranked: list[list[tuple[int, float]]] = []
    for start in range(0, len(points), batch_size):
        scores = scorer.scores_of_checked(points[start : start + batch_size], clip=False)
        ranked.extend(_rank(scores, top=top, threshold=threshold, clip=True))
    return ranked
