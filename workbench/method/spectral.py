"""Spectral label embeddings: eigen-solvers, :class:`LabelEmbedding`, Projector export.

A symmetric PMI matrix ``M`` (``C × C``) is factorised as ``M = U Λ Uᵀ``; the label
embedding keeps the ``k`` most significant eigenpairs, ``E = U_k |Λ_k|^½`` (float32,
rows in vocabulary order), so that ``E Eᵀ`` approximates ``M``. Cosine similarity
between rows of ``E`` is what the rest of the workbench compares labels with.
"""

from __future__ import annotations

import functools
import io
import math
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from workbench.data.labels import Vocabulary

__all__ = [
    "LabelEmbedding",
    "SpectralResult",
    "cosine_similarities",
    "spectral_embedding",
    "embed_labels",
    "spectrum",
    "energy_kept",
    "reconstruction_error",
    "pmi_frobenius_norm",
    "nearest_labels",
]

_FORMAT = "workbench-label-embedding"
_FORMAT_VERSION = 1


def cosine_similarities(points, vectors) -> np.ndarray:
    """Cosine similarity of every point to every vector.

    Parameters
    ----------
    points : array-like of shape (N, k) or (k,)
        Query points (for example network outputs).
    vectors : array-like of shape (C, k)
        Label vectors.

    Returns
    -------
    ndarray of shape (N, C), dtype float32
        Values in ``[-1, 1]``. A zero-norm point or vector has similarity 0 to
        everything (never NaN).
    """
    points = np.asarray(points, dtype=np.float64)
    vectors = np.asarray(vectors, dtype=np.float64)
    if points.ndim == 1:
        points = points[None, :]
    if points.ndim != 2 or vectors.ndim != 2:
        raise ValueError(
            f"cosine_similarities expects points (N, k) and vectors (C, k); got shapes {points.shape} and {vectors.shape}."
        )
    if points.shape[1] != vectors.shape[1]:
        raise ValueError(
            f"Points have {points.shape[1]} dimensions but label vectors have {vectors.shape[1]}; "
            "use points from a model trained against this embedding."
        )
    if not (np.all(np.isfinite(points)) and np.all(np.isfinite(vectors))):
        raise ValueError("cosine_similarities got NaN or infinite values; check the inputs for overflow or missing data.")
    return (_unit_rows(points).astype(np.float32) @ _unit_rows(vectors).astype(np.float32).T).clip(-1.0, 1.0)


def _unit_rows(matrix: np.ndarray) -> np.ndarray:
    """Rows scaled to unit norm; zero rows stay zero."""
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return np.divide(matrix, norms, out=np.zeros_like(matrix), where=norms > 0)


class LabelEmbedding:
    """Label vectors with their vocabulary, eigenvalues and the settings that made them.

    Parameters
    ----------
    vocabulary : Vocabulary
        The ``C`` labels; row ``i`` of ``vectors`` belongs to ``vocabulary[i]``.
    vectors : array-like of shape (C, k)
        Label vectors, stored as float32.
    eigenvalues : array-like of shape (k,)
        The eigenvalue behind each column (float64), most significant first.
    label_counts : array-like of shape (C,), optional
        Number of images carrying each label (int64).
    settings : dict
        JSON-serialisable record of how the embedding was made (PMI policy,
        solver, data summary …).
    """

    def __init__(self, *, vocabulary: Vocabulary, vectors, eigenvalues, label_counts=None, settings: dict):
        vectors = np.asarray(vectors)
        if vectors.ndim != 2:
            raise ValueError(f"Label vectors must be a (num_labels, embedding_dim) matrix; got shape {vectors.shape}.")
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if vectors.shape[0] != len(vocabulary):
            raise ValueError(
                f"{vectors.shape[0]} label vectors for a vocabulary of {len(vocabulary)} labels; give one row per label."
            )
        if not np.all(np.isfinite(vectors)):
            raise ValueError("Label vectors contain NaN or infinite values; recompute the embedding.")
        eigenvalues = np.asarray(eigenvalues, dtype=np.float64).reshape(-1)
        if eigenvalues.shape != (vectors.shape[1],):
            raise ValueError(
                f"{eigenvalues.shape[0]} eigenvalues for {vectors.shape[1]} embedding dimensions; give one per column."
            )
        if label_counts is not None:
            label_counts = np.asarray(label_counts)
            if label_counts.shape != (vectors.shape[0],) or not np.issubdtype(label_counts.dtype, np.integer):
                raise ValueError(
                    f"label_counts must be {vectors.shape[0]} integers (one per label); got {label_counts.dtype} {label_counts.shape}."
                )
            label_counts = label_counts.astype(np.int64)
        if not isinstance(settings, dict):
            raise ValueError(f"settings must be a dict; got {type(settings).__name__}.")
        self.vocabulary = vocabulary
        self.vectors = vectors
        self.eigenvalues = eigenvalues
        self.label_counts = label_counts
        self.settings = dict(settings)

    def __repr__(self) -> str:
        return f"LabelEmbedding(num_labels={self.num_labels}, embedding_dim={self.embedding_dim})"

    @property
    def num_labels(self) -> int:
        """Number of labels ``C``."""
        return int(self.vectors.shape[0])

    @property
    def embedding_dim(self) -> int:
        """Embedding dimension ``k``."""
        return int(self.vectors.shape[1])

    # -- persistence ----------------------------------------------------------------
    def save(self, directory: str | Path) -> Path:
        """Write ``embedding.npz`` and ``embedding.json`` into ``directory`` (each atomically).

        The JSON records ``num_labels`` and ``embedding_dim`` so :meth:`load` detects
        an npz and a JSON that do not belong together.
        """
        from workbench._io import atomic_save_npz, atomic_write_json

        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        arrays = {"vectors": self.vectors, "eigenvalues": self.eigenvalues}
        if self.label_counts is not None:
            arrays["label_counts"] = self.label_counts
        atomic_save_npz(directory / "embedding.npz", **arrays)
        atomic_write_json(
            directory / "embedding.json",
            {
                "format": _FORMAT,
                "format_version": _FORMAT_VERSION,
                "num_labels": self.num_labels,
                "embedding_dim": self.embedding_dim,
                "vocabulary": self.vocabulary.to_dict(),
                "settings": self.settings,
            },
        )
        return directory

    @classmethod
    def load(cls, directory: str | Path) -> "LabelEmbedding":
        """Read an embedding directory written by :meth:`save`."""
        from workbench._io import read_json

        directory = Path(directory)
        if not directory.is_dir():
            raise FileNotFoundError(f"{directory}: no such embedding directory; run 'workbench embed --out DIR' first.")
        for name in ("embedding.json", "embedding.npz"):
            if not (directory / name).is_file():
                raise FileNotFoundError(f"{directory}: missing {name}; this is not an embedding written by 'workbench embed'.")
        meta = read_json(directory / "embedding.json")
        if not isinstance(meta, dict) or meta.get("format") != _FORMAT or "vocabulary" not in meta:
            raise ValueError(f"{directory / 'embedding.json'}: not a label-embedding description; re-run 'workbench embed'.")
        with np.load(directory / "embedding.npz", allow_pickle=False) as archive:
            missing = {"vectors", "eigenvalues"} - set(archive.files)
            if missing:
                raise ValueError(f"{directory / 'embedding.npz'}: missing array(s) {sorted(missing)}; re-run 'workbench embed'.")
            vectors = archive["vectors"]
            eigenvalues = archive["eigenvalues"]
            label_counts = archive["label_counts"] if "label_counts" in archive.files else None
        if vectors.shape != (meta.get("num_labels"), meta.get("embedding_dim")):
            raise ValueError(
                f"{directory}: embedding.npz holds vectors {vectors.shape} but embedding.json describes "
                f"({meta.get('num_labels')}, {meta.get('embedding_dim')}); the two files do not belong together, re-run 'workbench embed'."
            )
        return cls(
            vocabulary=Vocabulary.from_dict(meta["vocabulary"]),
            vectors=vectors,
            eigenvalues=eigenvalues,
            label_counts=label_counts,
            settings=meta.get("settings", {}),
        )

    # -- queries ----------------------------------------------------------------------
    def similarities(self, points) -> np.ndarray:
        """Cosine similarity of points to every label vector.

        Parameters
        ----------
        points : array-like of shape (N, k) or (k,)

        Returns
        -------
        ndarray of shape (N, C), dtype float32
        """
        return cosine_similarities(points, self.vectors)

    def nearest(self, label: str, *, top: int = 10) -> list[tuple[str, float]]:
        """The ``top`` labels closest to ``label`` by cosine similarity (itself excluded).

        Returns
        -------
        list of (str, float)
            Label names with their similarity, most similar first (ties in vocabulary order).
        """
        if isinstance(top, bool) or not isinstance(top, (int, np.integer)) or top < 1:
            raise ValueError(f"top must be a positive integer; got {top!r}.")
        position = self.vocabulary.index(label)
        similarity = self.similarities(self.vectors[position])[0]
        similarity[position] = -np.inf
        order = np.argsort(-similarity, kind="stable")[: min(int(top), self.num_labels - 1)]
        return [(self.vocabulary[int(i)], float(similarity[i])) for i in order]

    def export_projector(self, directory: str | Path) -> Path:
        """Write ``vectors.tsv`` and ``metadata.tsv`` for the TensorFlow Embedding Projector.

        ``metadata.tsv`` has a header row ``label\\tgroup\\tcount`` and one row per
        label, in the order of ``vectors.tsv``. Tabs and newlines inside names are
        replaced by spaces; the count is empty when unknown.
        """
        from workbench._io import atomic_write_text

        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        clean = lambda text: " ".join(str(text).replace("\t", " ").splitlines())  # noqa: E731
        buffer = io.StringIO()
        np.savetxt(buffer, self.vectors, fmt="%.9g", delimiter="\t")  # 9 digits round-trip float32
        atomic_write_text(directory / "vectors.tsv", buffer.getvalue())
        meta = ["label\tgroup\tcount"]
        for position, name in enumerate(self.vocabulary.names):
            count = "" if self.label_counts is None else str(int(self.label_counts[position]))
            meta.append(f"{clean(name)}\t{clean(self.vocabulary.group_of(position))}\t{count}")
        atomic_write_text(directory / "metadata.tsv", "\n".join(meta) + "\n")
        return directory


# =====================================================================================
# Eigen-solvers
# =====================================================================================
SOLVERS = ("auto", "exact", "randomized")
NEGATIVE_POLICIES = ("drop", "abs")
#: ``solver="auto"`` uses the exact dense solver up to this many labels.
EXACT_MAX_LABELS = 2_500
#: The exact solver works in float64 up to this many labels, in float32 above.
EXACT_FLOAT64_MAX_LABELS = 8_000


@dataclass(frozen=True, eq=False)
class SpectralResult:
    """The kept eigenpairs of a PMI matrix as label vectors.

    Attributes
    ----------
    vectors : ndarray of shape (C, k), dtype float32
        ``E = U_k |Λ_k|^½`` with deterministic column signs.
    eigenvalues : ndarray of shape (k,), dtype float64
        The signed eigenvalues, most significant first.
    info : dict
        Solver details: ``solver`` used, ``dim_requested``, ``num_usable`` …
    """

    vectors: np.ndarray
    eigenvalues: np.ndarray
    info: dict


def _as_symmetric_matrix(pmi):
    """The matrix of a PMIResult / sparse / dense input, checked square, finite, symmetric."""
    matrix = getattr(pmi, "matrix", pmi)
    if sp.issparse(matrix):
        matrix = sp.csr_matrix(matrix, dtype=np.float64)
        values = matrix.data
    else:
        matrix = np.asarray(matrix, dtype=np.float64)
        values = matrix
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1] or matrix.shape[0] == 0:
        raise ValueError(f"The PMI matrix must be square and non-empty; got shape {matrix.shape}.")
    if not np.all(np.isfinite(values)):
        raise ValueError("The PMI matrix has NaN or infinite entries; build it with workbench.method.pmi.pmi_matrix.")
    scale = max(float(np.abs(values).max()) if values.size else 0.0, 1.0)
    if _asymmetry(matrix) > 1e-8 * scale:
        raise ValueError(f"The PMI matrix is not symmetric (largest |M - Mᵀ| = {_asymmetry(matrix):.3g}); symmetrise it first.")
    return matrix


def _asymmetry(matrix) -> float:
    """``max |M − Mᵀ|`` without a dense temporary of the whole matrix."""
    if sp.issparse(matrix):
        transposed = matrix.T.tocsr()
        transposed.sort_indices()
        canonical = matrix.copy()
        canonical.sum_duplicates()
        if np.array_equal(canonical.indptr, transposed.indptr) and np.array_equal(canonical.indices, transposed.indices):
            return float(np.abs(canonical.data - transposed.data).max()) if canonical.nnz else 0.0
        return float(abs(canonical - transposed).max())
    largest = 0.0
    for start in range(0, matrix.shape[0], 1024):
        block = matrix[start : start + 1024]
        largest = max(largest, float(np.abs(block - matrix[:, start : start + 1024].T).max()))
    return largest


def _flip_signs(vectors: np.ndarray) -> np.ndarray:
    """Make the largest-magnitude entry of every column positive (as sklearn's ``svd_flip``)."""
    if vectors.size == 0:
        return vectors
    rows = np.argmax(np.abs(vectors), axis=0)
    signs = np.sign(vectors[rows, np.arange(vectors.shape[1])])
    signs[signs == 0] = 1.0
    return vectors * signs


def _select(eigenvalues: np.ndarray, dim: int, negative: str, zero_tolerance: float) -> np.ndarray:
    """Positions of the ``dim`` most significant usable eigenvalues, most significant first."""
    if negative == "drop":
        order = np.argsort(-eigenvalues, kind="stable")
        order = order[eigenvalues[order] > zero_tolerance]
    else:
        order = np.argsort(-np.abs(eigenvalues), kind="stable")
        order = order[np.abs(eigenvalues[order]) > zero_tolerance]
    return order[:dim]


def _exact_eigenpairs(matrix, dim: int, negative: str):
    """Dense LAPACK ``eigh``; only the top ``dim`` pairs when negatives are dropped.

    Up to ``EXACT_FLOAT64_MAX_LABELS`` labels in float64; above, in float32 (half the
    memory and memory traffic of the reduction to tridiagonal form, which dominates;
    eigenvalues stay within about ``1e-6·‖M‖`` of the float64 ones).
    """
    import scipy.linalg

    size = matrix.shape[0]
    dtype = np.float64 if size <= EXACT_FLOAT64_MAX_LABELS else np.float32
    dense = matrix.astype(dtype).toarray() if sp.issparse(matrix) else np.array(matrix, dtype=dtype)
    scale = float(np.linalg.norm(dense))
    if negative == "drop":
        eigenvalues, eigenvectors = scipy.linalg.eigh(
            dense, subset_by_index=[size - dim, size - 1], overwrite_a=True, check_finite=False
        )
    else:
        eigenvalues, eigenvectors = scipy.linalg.eigh(dense, overwrite_a=True, check_finite=False)
    zero_tolerance = math.sqrt(size) * np.finfo(dtype).eps * scale  # below: numerically zero
    return eigenvalues.astype(np.float64), eigenvectors, zero_tolerance, {"precision": np.dtype(dtype).name}


@functools.lru_cache(maxsize=1)
def _csr_product_kernel():
    """``out = M @ x`` for one CSR row block, compiled by numba with the GIL released; None without numba.

    scipy's sparse-times-dense kernel holds the GIL, so threads over row blocks barely
    overlap (1.2× on two cores); this loop runs them truly in parallel. It adds the
    products of a row in the same order as scipy, so the results are identical.
    """
    try:
        import numba
    except ImportError:  # pragma: no cover - numba comes with umap-learn
        return None

    @numba.njit(nogil=True, cache=True)
    def csr_times_dense(indptr, indices, data, x, out):  # pragma: no cover - compiled
        width = x.shape[1]
        accumulator = np.zeros(width, dtype=out.dtype)
        for row in range(out.shape[0]):
            accumulator[:] = 0
            for position in range(indptr[row], indptr[row + 1]):
                value = data[position]
                column = indices[position]
                for k in range(width):
                    accumulator[k] += value * x[column, k]
            for k in range(width):
                out[row, k] = accumulator[k]

    return csr_times_dense


class _Operator:
    """``M @ X`` for a CSR or dense matrix in a working dtype; CSR row blocks run on threads.

    CSR products use :func:`_csr_product_kernel` (numba, GIL released) on row blocks
    of about equal numbers of non-zeros, one per thread, and scipy's kernel when numba
    is missing; dense products use the BLAS threads.
    """

    def __init__(self, matrix, dtype, *, num_threads: int | None = None):
        import os

        self.shape = matrix.shape
        self.dtype = np.dtype(dtype)
        self.dense = None
        self.blocks = []
        if not sp.issparse(matrix):
            self.dense = np.ascontiguousarray(matrix, dtype=dtype)
            return
        matrix = sp.csr_matrix(matrix, dtype=dtype)
        matrix.sort_indices()
        num_threads = num_threads or min(os.cpu_count() or 1, 8)
        # split rows into blocks of about equal numbers of non-zeros
        bounds = np.searchsorted(matrix.indptr, np.linspace(0, matrix.nnz, num_threads + 1)[1:-1])
        edges = np.unique(np.concatenate([[0], bounds, [matrix.shape[0]]]))
        self.edges = [(int(start), int(stop)) for start, stop in zip(edges[:-1], edges[1:]) if stop > start]
        self.blocks = [matrix[start:stop] for start, stop in self.edges]
        self.kernel = _csr_product_kernel()
        self._pool = None
        if len(self.blocks) > 1:
            from concurrent.futures import ThreadPoolExecutor

            self._pool = ThreadPoolExecutor(max_workers=len(self.blocks))

    def __call__(self, block: np.ndarray) -> np.ndarray:
        if self.dense is not None:
            return self.dense @ block
        if self.kernel is None:
            if self._pool is None:
                return np.asarray(self.blocks[0] @ block)
            return np.vstack(list(self._pool.map(lambda rows: rows @ block, self.blocks)))
        block = np.ascontiguousarray(block, dtype=self.dtype)
        out = np.empty((self.shape[0], block.shape[1]), dtype=self.dtype)

        def multiply(part):
            (start, stop), rows = part
            self.kernel(rows.indptr, rows.indices, rows.data, block, out[start:stop])

        if self._pool is None:
            multiply((self.edges[0], self.blocks[0]))
        else:
            list(self._pool.map(multiply, zip(self.edges, self.blocks)))
        return out

    def close(self):
        if getattr(self, "_pool", None) is not None:
            self._pool.shutdown()
            self._pool = None


def _gram_orthonormalise(block: np.ndarray, relative_tolerance: float) -> tuple[np.ndarray, np.ndarray]:
    """One Gram-eigh pass: ``block ≈ Q R`` with ``Q`` (n, r) orthonormal, ``R`` (r, b); r ≤ b."""
    gram = (block.T @ block).astype(np.float64)
    values, vectors = np.linalg.eigh((gram + gram.T) / 2)
    keep = values > relative_tolerance * max(values[-1], np.finfo(np.float64).tiny)
    roots = np.sqrt(values[keep])
    q = block @ (vectors[:, keep] / roots).astype(block.dtype)
    return q, roots[:, None] * vectors[:, keep].T


def _orthonormalise(block: np.ndarray, basis: np.ndarray, rng) -> tuple[np.ndarray, np.ndarray]:
    """``block = Q R``: ``Q`` orthonormal and orthogonal to ``basis`` (orthonormal columns).

    Two Gram-eigh passes (as CholeskyQR2, but rank-revealing), with one more
    projection against ``basis`` when ``block`` is ill-conditioned. Directions of
    ``block`` with numerically zero norm (an invariant Krylov subspace) are replaced by
    random directions orthogonal to everything so far, with zero rows in ``R``.

    Returns
    -------
    Q : ndarray of shape (n, b), dtype of ``block``
    R : ndarray of shape (b, b), dtype float64
    """
    width = block.shape[1]
    eps = np.finfo(block.dtype).eps
    first, first_r = _gram_orthonormalise(block, (1e3 * eps) ** 2)
    singular = np.linalg.svd(first_r, compute_uv=False) if first_r.size else np.zeros(0)
    if singular.size and singular[-1] < 1e-2 * singular[0]:
        first -= basis @ (basis.T @ first)  # amplified contamination: project once more
    second, second_r = _gram_orthonormalise(first, (1e3 * eps) ** 2)
    q, r = second, second_r @ first_r
    missing = width - q.shape[1]
    if missing:
        filler = rng.standard_normal((block.shape[0], missing)).astype(block.dtype)
        for _ in range(2):
            filler -= basis @ (basis.T @ filler)
            filler -= q @ (q.T @ filler)
            filler, _ = _gram_orthonormalise(filler, 0.0)
        q = np.hstack([q, filler])
        r = np.vstack([r, np.zeros((missing, width))])
    return q, r


def _projection(diagonal_blocks, sub_blocks) -> np.ndarray:
    """The block-tridiagonal Rayleigh quotient ``T = Qᵀ M Q`` (float64, dense, symmetric)."""
    width = diagonal_blocks[0].shape[0]
    size = width * len(diagonal_blocks)
    projected = np.zeros((size, size))
    for j, block in enumerate(diagonal_blocks):
        projected[j * width : (j + 1) * width, j * width : (j + 1) * width] = (block + block.T) / 2
    for j, block in enumerate(sub_blocks[: len(diagonal_blocks) - 1]):
        projected[(j + 1) * width : (j + 2) * width, j * width : (j + 1) * width] = block
        projected[j * width : (j + 1) * width, (j + 1) * width : (j + 2) * width] = block.T
    return projected


def _ritz_values(projected: np.ndarray, width: int) -> np.ndarray:
    """Every Ritz value from the band of ``T`` (bandwidth ``width``), without vectors: ``O(m² b)``.

    All of them (LAPACK ``sbevd``) rather than the wanted subset (``sbevx``): the
    reduction to tridiagonal form dominates both, and the full tridiagonal solve is
    faster than bisection for a thousand values (about 2.0 s against 3.2 s at
    ``m = 5,728``, ``b = 32`` on two cores).
    """
    import scipy.linalg

    size = projected.shape[0]
    band = np.zeros((width + 1, size))
    for offset in range(width + 1):
        band[offset, : size - offset] = np.diagonal(projected, -offset)
    return scipy.linalg.eig_banded(band, lower=True, eigvals_only=True)


def _wanted(values: np.ndarray, dim: int, negative: str) -> np.ndarray:
    """The ``dim`` most significant of ``values``, most significant first."""
    values = np.sort(values)
    return values[np.argsort(-(values if negative == "drop" else np.abs(values)), kind="stable")[:dim]]


def _ritz_pairs(projected: np.ndarray, dim: int, negative: str):
    """Wanted eigenpairs of ``T`` (float32 LAPACK for large ``T``: half the memory traffic)."""
    import scipy.linalg

    size = projected.shape[0]
    work = projected.astype(np.float32) if size > 1000 else projected
    if negative == "drop" and dim < size:
        values, vectors = scipy.linalg.eigh(work, subset_by_index=[size - dim, size - 1], check_finite=False)
    else:
        values, vectors = scipy.linalg.eigh(work, check_finite=False)
    # float32 eigenvalues are within ~1e-7·‖T‖ of the float64 ones: far inside any useful tolerance
    return values.astype(np.float64), vectors.astype(np.float64)


def _block_krylov_eigenpairs(
    matrix,
    dim: int,
    negative: str,
    *,
    random_state: int,
    tolerance: float,
    block_size: int | None,
    max_basis: int | None,
    progress: bool,
):
    """Randomized block Krylov (block Lanczos with full reorthogonalisation) eigenpairs.

    A random Gaussian start block ``Ω`` (n × b) spans the Krylov space
    ``[Ω, MΩ, M²Ω, …]``. Each new block follows the block three-term recurrence,
    is orthogonalised once more against the whole basis (twice when that pass
    removes much, so there are no spurious copies of converged eigenvalues) and is
    QR-factorised with a triangular ``R``, so the projection ``T = Qᵀ M Q`` is banded.
    Cheap band eigenvalue checks track the wanted Ritz values every ~12% of growth.
    Ritz values converge geometrically, so the largest relative change between two
    checks, ``c``, and its ratio to the change before, ``ρ``, estimate the remaining
    error as the tail sum ``c·ρ/(1−ρ)``; when that is ≤ ``tolerance/2`` for every
    wanted value, Rayleigh-Ritz gives the eigenpairs. Their relative residuals
    ``‖M u − θ u‖/|θ|`` (an eigenvalue of ``M`` lies that close to ``θ``) are reported
    as ``max_relative_residual``. At ``max_basis`` columns it stops with a warning.
    Basis and products are float32; the projection is float64.
    """
    import scipy.linalg

    size = matrix.shape[0]
    rng = np.random.default_rng(random_state)
    dtype = np.float32
    width = min(block_size or int(np.clip(dim // 16, 16, 32)), size)
    limit = max_basis or max(8 * dim, dim + 16 * width)
    limit = max(2 * width, min(limit, size) // width * width)
    operator = _Operator(matrix, dtype)
    basis = np.empty((size, limit), dtype=dtype)
    start, _ = _orthonormalise(rng.standard_normal((size, width)).astype(dtype), basis[:, :0], rng)
    basis[:, :width] = start
    diagonal_blocks, sub_blocks = [], []
    filled = width
    next_check = max(4 * dim, dim + 4 * width, 2 * width) // width * width  # ~6k vectors are typical for 1%
    previous_values = None
    expect_settled, ratio = False, 1.0
    history = []
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=limit, desc="block Krylov basis", unit="vector", leave=False)
        bar.update(width)
    timing = {"products": 0.0, "orthogonalisation": 0.0, "rayleigh_ritz": 0.0}
    passes = 0
    try:
        while True:
            clock = time.perf_counter()
            current = basis[:, filled - width : filled]
            product = operator(current)
            timing["products"] += time.perf_counter() - clock
            clock = time.perf_counter()
            diagonal = current.T @ product
            product -= current @ diagonal
            if sub_blocks:
                product -= basis[:, filled - 2 * width : filled - width] @ sub_blocks[-1].T.astype(dtype)
            previous = basis[:, :filled]
            before = np.linalg.norm(product, axis=0)
            for _pass in range(2):  # full reorthogonalisation; twice only when the first pass removes much
                passes += 1
                coefficients = previous.T @ product
                product -= previous @ coefficients
                diagonal += coefficients[filled - width :]
                after = np.linalg.norm(product, axis=0)
                if np.all(after >= 0.5 * before):
                    break
                before = after
            diagonal_blocks.append(diagonal.astype(np.float64))
            block, r = _orthonormalise(product, previous, rng)
            rotation, r = np.linalg.qr(r)  # triangular R keeps T banded (bandwidth = block width)
            block = block @ rotation.astype(dtype)
            sub_blocks.append(r)
            timing["orthogonalisation"] += time.perf_counter() - clock
            clock = time.perf_counter()
            at_limit = filled + width > limit
            if filled >= next_check or at_limit:
                projected = _projection(diagonal_blocks, sub_blocks)
                pairs = None
                if expect_settled or at_limit:  # likely the last check: its eigenpairs give the values too
                    pairs = _ritz_pairs(projected, dim, negative)
                    values = _wanted(pairs[0], dim, negative)
                else:
                    values = _wanted(_ritz_values(projected, width), dim, negative)
                change, estimate = np.inf, np.inf
                if previous_values is not None and len(previous_values) == len(values):
                    change = float(np.max(np.abs(values - previous_values) / np.maximum(np.abs(values), 1e-300)))
                    if change == 0.0:
                        estimate, ratio = 0.0, 0.0
                    elif history and np.isfinite(history[-1][1]) and change < history[-1][1]:
                        ratio = change / history[-1][1]  # geometric convergence: the rest of the way is a tail sum
                        estimate = change * ratio / (1.0 - ratio)
                history.append((filled, change))
                previous_values = values
                # the next check shrinks the estimate by about the ratio again
                expect_settled = bool(np.isfinite(estimate) and estimate * ratio <= tolerance / 2)
                if estimate <= tolerance / 2 or at_limit:
                    # Rayleigh-Ritz with vectors: the certificate
                    ritz, vectors = pairs if pairs is not None else _ritz_pairs(projected, dim, negative)
                    scale = np.abs(ritz).max()
                    chosen = _select(ritz, dim, negative, math.sqrt(size) * np.finfo(dtype).eps * scale)
                    residuals = np.linalg.norm(r @ vectors[filled - width :, chosen], axis=0)
                    relative = residuals / np.abs(ritz[chosen])
                    if len(chosen) == dim or at_limit:
                        timing["rayleigh_ritz"] += time.perf_counter() - clock
                        break
                next_check = filled + max(width, int(0.12 * filled) // width * width)
            timing["rayleigh_ritz"] += time.perf_counter() - clock
            basis[:, filled : filled + width] = block
            filled += width
            if bar is not None:
                bar.update(width)
    finally:
        operator.close()
        if bar is not None:
            bar.close()
    clock = time.perf_counter()
    eigenvectors = basis[:, :filled] @ vectors[:, chosen].astype(dtype)
    timing["rayleigh_ritz"] += time.perf_counter() - clock
    settled = bool(estimate <= tolerance / 2)
    info = {
        "seconds_products": round(timing["products"], 3),
        "seconds_orthogonalisation": round(timing["orthogonalisation"], 3),
        "seconds_rayleigh_ritz": round(timing["rayleigh_ritz"], 3),
        "basis_size": filled,
        "block_size": width,
        "reorthogonalisation_passes": passes,
        "tolerance": tolerance,
        "estimated_max_relative_error": None if not np.isfinite(estimate) else float(estimate),
        "max_relative_residual": float(relative.max()) if len(chosen) else 0.0,
        "checks": [(int(m), None if not np.isfinite(c) else float(c)) for m, c in history],
    }
    if not settled:
        warnings.warn(
            f"The randomized solver reached its basis limit ({limit} vectors) before its Ritz values settled "
            f"(estimated relative error {estimate:.2g} > {tolerance:g}); raise max_basis or use solver='exact'.",
            UserWarning,
            stacklevel=3,
        )
    return ritz[chosen], eigenvectors, math.sqrt(size) * np.finfo(dtype).eps * scale, info


def spectral_embedding(
    pmi,
    *,
    dim: int,
    negative: str = "drop",
    solver: str = "auto",
    random_state: int = 0,
    tolerance: float = 1e-2,
    block_size: int | None = None,
    max_basis: int | None = None,
    progress: bool = False,
) -> SpectralResult:
    """Label vectors from the eigendecomposition ``PMI = U Λ Uᵀ``.

    Parameters
    ----------
    pmi : PMIResult, scipy sparse matrix or ndarray of shape (C, C)
        A symmetric, finite PMI matrix.
    dim : int
        Embedding dimension ``k``.
    negative : {"drop", "abs"}, default="drop"
        ``"drop"``: the ``k`` largest *positive* eigenvalues, so ``E Eᵀ`` is the best
        positive semi-definite rank-``k`` approximation of the PMI. ``"abs"``: the ``k``
        largest in magnitude, with ``|λ|`` (what an SVD of the PMI gives).
    solver : {"auto", "exact", "randomized"}, default="auto"
        ``"exact"``: dense ``scipy.linalg.eigh`` (``O(C³)``). ``"randomized"``: block
        Krylov iteration from a random start (float32 products) until the estimated
        relative error of every wanted eigenvalue is ≤ ``tolerance``. ``"auto"``: exact up to
        ``EXACT_MAX_LABELS`` labels or when ``6k ≥ C`` (the Krylov basis would be
        about as large as the matrix).
    random_state : int, default=0
        Seed of the randomized solver's start block.
    tolerance : float, default=1e-2
        Randomized solver: target relative eigenvalue error (estimated from how the
        Ritz values converge; ``info["max_relative_residual"]`` is the rigorous bound).
    block_size, max_basis : int, optional
        Randomized solver: Krylov block width (default ``clip(k/16, 16, 32)``) and
        the largest basis (default ``max(8k, k + 16·block)``, at most ``C``).
    progress : bool, default=False
        tqdm progress bar (stderr) for the randomized solver.

    Returns
    -------
    SpectralResult
        ``vectors`` (C, k') float32 and ``eigenvalues`` (k',) float64, most significant
        first, with ``k' ≤ k`` the usable count (a ``UserWarning`` says when ``k' < k``).
        Column signs are deterministic: each column's largest-magnitude entry is positive.
    """
    if negative not in NEGATIVE_POLICIES:
        raise ValueError(f"Unknown negative={negative!r}; choose 'drop' (positive eigenvalues only) or 'abs' (|eigenvalue|).")
    if solver not in SOLVERS:
        raise ValueError(f"Unknown solver {solver!r}; choose one of {', '.join(SOLVERS)}.")
    if isinstance(dim, bool) or not isinstance(dim, (int, np.integer)) or dim < 1:
        raise ValueError(f"dim must be a positive integer; got {dim!r}.")
    if not (isinstance(tolerance, (int, float)) and 0 < tolerance < 1):
        raise ValueError(f"tolerance must be between 0 and 1; got {tolerance!r}.")
    matrix = _as_symmetric_matrix(pmi)
    size = matrix.shape[0]
    requested = int(dim)
    dim = min(requested, size)
    if solver == "auto":
        # the Krylov basis needs about 6k vectors: near C, the dense solver is cheaper
        solver = "exact" if size <= EXACT_MAX_LABELS or 6 * dim >= size else "randomized"
    began = time.perf_counter()
    if solver == "exact":
        values, vectors, zero_tolerance, info = _exact_eigenpairs(matrix, dim, negative)
        chosen = _select(values, dim, negative, zero_tolerance)
        values, vectors = values[chosen], vectors[:, chosen]
    else:
        values, vectors, zero_tolerance, info = _block_krylov_eigenpairs(
            matrix, dim, negative, random_state=random_state, tolerance=tolerance,
            block_size=block_size, max_basis=max_basis, progress=progress,
        )
    if len(values) < requested:
        kind = "positive eigenvalues (negative='drop'; use negative='abs' to use negative ones too)" if negative == "drop" else "non-zero eigenvalues"
        warnings.warn(
            f"Asked for dim={requested} but the {size}-label PMI matrix has only {len(values)} usable {kind}; "
            f"the embedding has {len(values)} dimensions.",
            UserWarning,
            stacklevel=2,
        )
    vectors = _flip_signs(np.asarray(vectors, dtype=np.float64)) * np.sqrt(np.abs(values))
    info = {
        "solver": solver,
        "negative": negative,
        "dim_requested": requested,
        "dim": int(len(values)),
        "random_state": random_state,
        "seconds": round(time.perf_counter() - began, 3),
        **info,
    }
    return SpectralResult(vectors=vectors.astype(np.float32), eigenvalues=np.asarray(values, dtype=np.float64), info=info)


# =====================================================================================
# One-call convenience and diagnostics
# =====================================================================================
def embed_labels(
    counts,
    *,
    dim: int,
    policy: str = "zero",
    diagonal: str = "self",
    clip_value: float | None = None,
    smoothing: float | None = None,
    context_exponent: float = 1.0,
    shift: float = 1.0,
    negative: str = "drop",
    solver: str = "auto",
    random_state: int = 0,
    tolerance: float = 1e-2,
    progress: bool = False,
) -> LabelEmbedding:
    """Counts → PMI (:func:`workbench.method.pmi.pmi_matrix`) → :func:`spectral_embedding`.

    Parameters are those of the two steps. Labels that never occur are dropped
    (with a warning), so the embedding's vocabulary is the kept labels.

    Returns
    -------
    LabelEmbedding
        ``settings`` records ``pmi`` (every PMI choice, dropped labels), ``spectral``
        (solver details, requested and achieved ``dim``), ``data`` (counts summary) and
        ``diagnostics`` (``energy_kept``, ``reconstruction_error``, ``pmi_frobenius_norm``).
    """
    from workbench.method.pmi import pmi_matrix

    began = time.perf_counter()
    pmi = pmi_matrix(
        counts, policy=policy, diagonal=diagonal, clip_value=clip_value, smoothing=smoothing,
        context_exponent=context_exponent, shift=shift,
    )
    result = spectral_embedding(
        pmi, dim=dim, negative=negative, solver=solver, random_state=random_state, tolerance=tolerance, progress=progress
    )
    norm = pmi_frobenius_norm(pmi)
    settings = {
        "pmi": pmi.settings,
        "spectral": result.info,
        "data": counts.summary(),
        "diagnostics": {
            "pmi_frobenius_norm": norm,
            "energy_kept": energy_kept(result.eigenvalues, pmi),
            "reconstruction_error": reconstruction_error(result.vectors, pmi),
        },
        "seconds": round(time.perf_counter() - began, 3),
    }
    return LabelEmbedding(
        vocabulary=pmi.vocabulary, vectors=result.vectors, eigenvalues=result.eigenvalues,
        label_counts=pmi.label_counts, settings=settings,
    )


def pmi_frobenius_norm(pmi) -> float:
    """``‖PMI‖_F`` of a PMIResult, sparse or dense matrix."""
    matrix = getattr(pmi, "matrix", pmi)
    values = matrix.data if sp.issparse(matrix) else np.asarray(matrix)
    return float(np.sqrt(np.sum(np.square(values, dtype=np.float64))))


def spectrum(pmi) -> np.ndarray:
    """All eigenvalues of the PMI matrix, largest first (dense ``eigvalsh``, ``O(C³)``).

    Returns
    -------
    ndarray of shape (C,), dtype float64
    """
    import scipy.linalg

    matrix = _as_symmetric_matrix(pmi)
    dense = matrix.toarray() if sp.issparse(matrix) else matrix
    return scipy.linalg.eigvalsh(dense, check_finite=False)[::-1]


def energy_kept(eigenvalues, pmi) -> float:
    """Share of the PMI's energy held by the kept eigenvalues: ``Σ_kept λ² / ‖PMI‖_F²``.

    With ``negative="drop"`` this is ``1 − reconstruction_error²``; it is in ``[0, 1]``.
    """
    norm = pmi_frobenius_norm(pmi)
    if norm == 0:
        return 0.0
    return float(np.sum(np.square(np.asarray(eigenvalues, dtype=np.float64))) / norm**2)


def reconstruction_error(vectors, pmi) -> float:
    """Relative error ``‖E Eᵀ − PMI‖_F / ‖PMI‖_F`` without forming ``E Eᵀ``.

    Uses ``‖E Eᵀ − M‖² = ‖EᵀE‖² − 2 tr(Eᵀ M E) + ‖M‖²`` (``M E`` is a sparse product),
    so it costs ``O(nnz(M)·k + C·k²)``.

    Parameters
    ----------
    vectors : ndarray of shape (C, k)
    pmi : PMIResult, sparse matrix or ndarray of shape (C, C)
    """
    matrix = getattr(pmi, "matrix", pmi)
    vectors = np.asarray(vectors, dtype=np.float64)
    if vectors.shape[0] != matrix.shape[0]:
        raise ValueError(f"{vectors.shape[0]} label vectors for a {matrix.shape[0]}-label PMI matrix; use the matching embedding.")
    norm_squared = pmi_frobenius_norm(matrix) ** 2
    if norm_squared == 0:
        return 0.0
    gram = vectors.T @ vectors
    cross = float(np.sum(vectors * np.asarray(matrix @ vectors)))
    error_squared = max(float(np.sum(gram * gram)) - 2.0 * cross + norm_squared, 0.0)
    return float(np.sqrt(error_squared / norm_squared))


def nearest_labels(embedding: LabelEmbedding, labels=None, *, top: int = 5) -> dict:
    """``{label: [(neighbour, cosine similarity), …]}`` for ``labels`` (default: all)."""
    labels = embedding.vocabulary.names if labels is None else labels
    return {label: embedding.nearest(label, top=top) for label in labels}
