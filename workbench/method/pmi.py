"""Pointwise mutual information between labels, with the usual policies for undefined pairs.

For counts ``N`` (images), ``c_i`` (images with label ``i``) and ``c_ij`` (images with
both ``i`` and ``j``)::

    PMI(i, j) = log( p(i, j) / (p(i) p(j)) ) = log( c_ij · N / (c_i · c_j) )

It is ``-inf`` for pairs that never co-occur; the policies decide what to do with
them (and, for some, with negative values):

``"zero"``
    Undefined pairs are 0; finite PMI, negative included, is kept. The result is a
    sparse CSR matrix with the sparsity of the pair counts (scales to large ``C``).
``"ppmi"``
    Positive PMI, ``max(PMI, 0)`` everywhere. Sparse.
``"clip"``
    ``max(PMI, clip_value)`` everywhere; undefined pairs become ``clip_value``. Dense.
``"smooth"``
    Add ``smoothing`` (α) to every off-diagonal pair count, so every pair is defined:
    ``log((c_ij + α) · N / (c_i · c_j))``. Dense.

Every policy also takes

* ``context_exponent`` (``e``): context-distribution smoothing (Levy, Goldberg &
  Dagan 2015): marginals ``p_e(i) = (L/N) · c_i^e / Σ_l c_l^e`` with ``L = Σ_l c_l``,
  which is ``c_i / N`` at ``e = 1`` and raises rare labels' probability for ``e < 1``
  (dampening their inflated PMI). Applied to both labels, so PMI stays symmetric.
* ``shift`` (``s``): the shifted PMI ``PMI − log s`` (Levy & Goldberg 2014); applied to
  defined entries before the policy (so ``"ppmi"`` with ``s > 1`` is SPPMI).
* ``diagonal``: ``"self"`` puts ``PMI(i, i) = log(p(i) / p_e(i)²) − log s`` on the
  diagonal, the definition applied to ``j = i`` (``−log p(i)``, the self-information,
  at ``e = 1, s = 1``), then the policy's floor; ``"zero"`` puts 0.

Labels that never occur have no defined PMI: they are dropped with a warning, and
:class:`PMIResult` says which labels were kept. The result never holds NaN or ±inf.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp

from workbench import _checks
from workbench.method.cooccurrence import CooccurrenceCounts
from workbench.data.labels import Vocabulary

__all__ = ["PMIResult", "pmi_matrix", "check_pmi_options", "POLICIES", "DIAGONALS"]

POLICIES = ("zero", "ppmi", "clip", "smooth")
DIAGONALS = ("self", "zero")
SPARSE_POLICIES = ("zero", "ppmi")


@dataclass(frozen=True, eq=False)
class PMIResult:
    """A PMI matrix over the labels that occur.

    Attributes
    ----------
    matrix : scipy.sparse.csr_matrix or ndarray, shape (C_kept, C_kept), dtype float64
        Symmetric PMI; sparse for the ``"zero"`` and ``"ppmi"`` policies, dense otherwise.
    vocabulary : Vocabulary
        The kept labels, in the order of ``matrix``.
    kept : ndarray of shape (C_kept,), dtype int64
        Positions of the kept labels in the counts' vocabulary.
    label_counts : ndarray of shape (C_kept,), dtype int64
        Images carrying each kept label.
    n_images : int
        ``N``.
    settings : dict
        Every choice (policy, diagonal, clip_value, smoothing, context_exponent, shift)
        and the names of dropped labels.
    """

    matrix: object
    vocabulary: Vocabulary
    kept: np.ndarray
    label_counts: np.ndarray
    n_images: int
    settings: dict = field(default_factory=dict)

    @property
    def num_labels(self) -> int:
        return len(self.vocabulary)

    @property
    def is_sparse(self) -> bool:
        return sp.issparse(self.matrix)

    def toarray(self) -> np.ndarray:
        """The matrix as a dense float64 array (``C_kept × C_kept``)."""
        return self.matrix.toarray() if sp.issparse(self.matrix) else np.array(self.matrix)


def _positive_finite(value, name: str, *, allow_none: bool = False):
    if value is None and allow_none:
        return None
    return _checks.number(value, name, positive=True)


def check_pmi_options(policy, diagonal, clip_value, smoothing, context_exponent, shift):
    _checks.choice(policy, "PMI policy", POLICIES)
    _checks.choice(diagonal, "diagonal", DIAGONALS)
    if policy == "clip":
        try:
            clip_value = _checks.number(clip_value, "clip_value")
        except ValueError:
            raise ValueError(f"policy='clip' needs a finite clip_value (for example -2.0); got {clip_value!r}.") from None
    elif clip_value is not None:
        raise ValueError(f"clip_value only applies to policy='clip' (the policy is {policy!r}); drop it or use policy='clip'.")
    if policy == "smooth":
        smoothing = _positive_finite(1.0 if smoothing is None else smoothing, "smoothing")
    elif smoothing is not None:
        raise ValueError(f"smoothing only applies to policy='smooth' (the policy is {policy!r}); drop it or use policy='smooth'.")
    return clip_value, smoothing, _positive_finite(context_exponent, "context_exponent"), _positive_finite(shift, "shift")


def _log_marginals(label_counts: np.ndarray, n_images: int, exponent: float) -> np.ndarray:
    """``log p_e(i)`` (see the module docstring), computed in log space."""
    log_counts = np.log(label_counts.astype(np.float64))
    if exponent == 1.0:
        return log_counts - math.log(n_images)
    scaled = exponent * log_counts
    top = scaled.max()
    log_normaliser = top + math.log(np.exp(scaled - top).sum())
    return math.log(label_counts.sum()) - math.log(n_images) + scaled - log_normaliser


def pmi_matrix(
    counts: CooccurrenceCounts,
    *,
    policy: str = "zero",
    diagonal: str = "self",
    clip_value: float | None = None,
    smoothing: float | None = None,
    context_exponent: float = 1.0,
    shift: float = 1.0,
) -> PMIResult:
    """The PMI matrix of co-occurrence counts under a policy (see the module docstring).

    Parameters
    ----------
    counts : CooccurrenceCounts
        ``N``, label counts ``(C,)`` and symmetric pair counts ``(C, C)``.
    policy : {"zero", "ppmi", "clip", "smooth"}, default="zero"
        What undefined (and, for ``"ppmi"``/``"clip"``, low) values become.
    diagonal : {"self", "zero"}, default="self"
        Self-information ``PMI(i, i)`` on the diagonal, or 0.
    clip_value : float, optional
        The floor of ``policy="clip"`` (required there, refused elsewhere).
    smoothing : float, optional
        α added to off-diagonal pair counts by ``policy="smooth"`` (default 1.0 there).
    context_exponent : float, default=1.0
        Context-distribution smoothing exponent ``e`` (0.75 in Levy et al. 2015).
    shift : float, default=1.0
        Subtract ``log(shift)`` from defined entries (shifted PMI).

    Returns
    -------
    PMIResult
        ``matrix`` is CSR float64 for ``"zero"``/``"ppmi"``, a dense float64 ndarray
        for ``"clip"``/``"smooth"`` (``8·C²`` bytes); symmetric, finite.

    Warns
    -----
    UserWarning
        When labels that never occur are dropped (naming them).
    """
    if not isinstance(counts, CooccurrenceCounts):
        raise ValueError(f"pmi_matrix needs CooccurrenceCounts; got {type(counts).__name__} (use count_cooccurrence first).")
    clip_value, smoothing, context_exponent, shift = check_pmi_options(policy, diagonal, clip_value, smoothing, context_exponent, shift)
    kept = np.flatnonzero(counts.label_counts > 0).astype(np.int64)
    dropped = [counts.vocabulary[int(i)] for i in np.flatnonzero(counts.label_counts == 0)]
    if not len(kept):
        raise ValueError(f"None of the {counts.num_labels} labels occurs in the {counts.n_images} images; there is nothing to embed.")
    if dropped:
        shown = ", ".join(repr(name) for name in dropped[:10]) + (f" and {len(dropped) - 10} more" if len(dropped) > 10 else "")
        warnings.warn(f"Dropping {len(dropped)} label(s) that never occur (PMI is undefined for them): {shown}.", UserWarning, stacklevel=2)
    label_counts = counts.label_counts[kept]
    pairs = counts.pair_counts if len(kept) == counts.num_labels else counts.pair_counts[kept][:, kept]
    pairs = sp.csr_matrix(pairs)
    pairs.sort_indices()
    num_labels, n_images = len(kept), counts.n_images
    log_marginal = _log_marginals(label_counts, n_images, context_exponent)
    log_shift = math.log(shift)
    if diagonal == "self":
        diagonal_values = (np.log(label_counts.astype(np.float64)) - math.log(n_images)) - 2.0 * log_marginal - log_shift
    else:
        diagonal_values = None

    if policy in SPARSE_POLICIES:
        rows = np.repeat(np.arange(num_labels, dtype=np.int64), np.diff(pairs.indptr))
        values = np.log(pairs.data.astype(np.float64)) - math.log(n_images)
        values -= log_marginal[rows] + log_marginal[pairs.indices]  # a + b == b + a: exactly symmetric
        values -= log_shift
        matrix = sp.csr_matrix((values, pairs.indices.copy(), pairs.indptr.copy()), shape=(num_labels, num_labels))
        if diagonal_values is not None:
            matrix = (matrix + sp.diags(diagonal_values, format="csr")).tocsr()
        if policy == "ppmi":
            np.maximum(matrix.data, 0.0, out=matrix.data)
        matrix.eliminate_zeros()
        matrix.sort_indices()
    else:
        dense_pairs = pairs.toarray().astype(np.float64)
        if policy == "smooth":
            dense_pairs += smoothing
            np.fill_diagonal(dense_pairs, 1.0)  # placeholder, overwritten below
            with np.errstate(divide="ignore"):
                matrix = np.log(dense_pairs)
        else:
            with np.errstate(divide="ignore"):
                matrix = np.log(dense_pairs)  # -inf where undefined
        matrix -= math.log(n_images)
        matrix -= log_marginal[:, None] + log_marginal[None, :]
        matrix -= log_shift
        np.fill_diagonal(matrix, 0.0 if diagonal_values is None else diagonal_values)
        if policy == "clip":
            np.maximum(matrix, clip_value, out=matrix)
            if diagonal_values is None:
                np.fill_diagonal(matrix, 0.0)
    values = matrix.data if sp.issparse(matrix) else matrix
    if not np.all(np.isfinite(values)):  # cannot happen for validated counts; never return NaN/inf
        raise ValueError("PMI produced non-finite values; the counts are inconsistent (check n_images and label_counts).")
    settings = {
        "policy": policy,
        "diagonal": diagonal,
        "clip_value": clip_value,
        "smoothing": smoothing,
        "context_exponent": context_exponent,
        "shift": shift,
        "num_labels_total": counts.num_labels,
        "num_labels_kept": num_labels,
        "dropped_labels": dropped,
        "sparse": sp.issparse(matrix),
    }
    return PMIResult(
        matrix=matrix,
        vocabulary=counts.vocabulary.subset(kept),
        kept=kept,
        label_counts=label_counts,
        n_images=n_images,
        settings=settings,
    )
