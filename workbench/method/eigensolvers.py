"""Eigenpairs of a symmetric matrix: a dense LAPACK solver and a randomized block Krylov solver.

This module knows nothing about labels: it takes a symmetric ``n × n`` matrix (dense
or sparse) and returns its most significant eigenpairs. :func:`eigenpairs` is the one
entry point; ``solver="auto"`` picks the dense solver for small matrices or when the
Krylov basis would be about as large as the matrix. Eigenvector signs are
deterministic (each vector's largest-magnitude entry is positive, as scikit-learn's
``svd_flip``).

The block Krylov solver (block Lanczos with full reorthogonalisation) runs its sparse
products in a numba kernel that releases the GIL (row blocks on threads); its
products and basis are float32, its projection float64. See
:func:`_block_krylov_eigenpairs` for how it decides it has converged.

This module is longer than the house's few hundred lines because the block Krylov
solver's pieces (operator, orthonormalisation, banded projection, Ritz checks) only
make sense together; splitting them would spread one algorithm over several files.
"""

from __future__ import annotations

import functools
import math
import time
import warnings

import numpy as np
import scipy.sparse as sp

from workbench import _checks

__all__ = [
    "SOLVERS",
    "NEGATIVE_POLICIES",
    "EXACT_MAX_LABELS",
    "EXACT_FLOAT64_MAX_LABELS",
    "JAX_MAX_LABELS",
    "jax_gpu_available",
    "eigenpairs",
    "all_eigenvalues",
    "frobenius_norm",
    "symmetric_matrix",
    "flip_signs",
]

SOLVERS = ("auto", "exact", "randomized", "jax")
NEGATIVE_POLICIES = ("drop", "abs")
#: ``solver="auto"`` uses the exact dense solver up to this many labels.
EXACT_MAX_LABELS = 2_500
#: The exact solver works in float64 up to this many labels, in float32 above.
EXACT_FLOAT64_MAX_LABELS = 8_000
#: ``solver="auto"`` uses JAX's dense ``eigh`` on a GPU (when JAX sees one) up to this many labels
#: (float32: 4·n² bytes for the matrix, a few times that in workspace; 40,000 labels ≈ 6.4 GB).
JAX_MAX_LABELS = 40_000


def symmetric_matrix(matrix):
    """``matrix`` as float64 CSR or ndarray, checked square, non-empty, finite and symmetric.

    Parameters
    ----------
    matrix : scipy sparse matrix or array-like of shape (n, n)

    Returns
    -------
    scipy.sparse.csr_matrix or ndarray of shape (n, n), dtype float64
    """
    if sp.issparse(matrix):
        matrix = sp.csr_matrix(matrix, dtype=np.float64)
        values = matrix.data
    else:
        matrix = np.asarray(matrix, dtype=np.float64)
        values = matrix
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1] or matrix.shape[0] == 0:
        raise ValueError(f"The matrix must be square and non-empty; got shape {matrix.shape}.")
    if not np.all(np.isfinite(values)):
        raise ValueError("The matrix has NaN or infinite entries; build a PMI matrix with workbench.method.pmi.pmi_matrix.")
    scale = max(float(np.abs(values).max()) if values.size else 0.0, 1.0)
    if _asymmetry(matrix) > 1e-8 * scale:
        raise ValueError(f"The matrix is not symmetric (largest |M - Mᵀ| = {_asymmetry(matrix):.3g}); symmetrise it first.")
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


def flip_signs(vectors: np.ndarray) -> np.ndarray:
    """Make the largest-magnitude entry of every column positive (as sklearn's ``svd_flip``)."""
    if vectors.size == 0:
        return vectors
    rows = np.argmax(np.abs(vectors), axis=0)
    signs = np.sign(vectors[rows, np.arange(vectors.shape[1])])
    signs[signs == 0] = 1.0
    return vectors * signs


def _select(eigenvalues: np.ndarray, num_pairs: int, negative: str, zero_tolerance: float) -> np.ndarray:
    """Positions of the ``num_pairs`` most significant usable eigenvalues, most significant first."""
    if negative == "drop":
        order = np.argsort(-eigenvalues, kind="stable")
        order = order[eigenvalues[order] > zero_tolerance]
    else:
        order = np.argsort(-np.abs(eigenvalues), kind="stable")
        order = order[np.abs(eigenvalues[order]) > zero_tolerance]
    return order[:num_pairs]


def _exact_eigenpairs(matrix, num_pairs: int, negative: str):
    """Dense LAPACK ``eigh``; only the top ``num_pairs`` pairs when negatives are dropped.

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
            dense, subset_by_index=[size - num_pairs, size - 1], overwrite_a=True, check_finite=False
        )
    else:
        eigenvalues, eigenvectors = scipy.linalg.eigh(dense, overwrite_a=True, check_finite=False)
    zero_tolerance = math.sqrt(size) * np.finfo(dtype).eps * scale  # below: numerically zero
    return eigenvalues.astype(np.float64), eigenvectors, zero_tolerance, {"precision": np.dtype(dtype).name}


def jax_gpu_available() -> bool:
    """Whether JAX is installed and sees a GPU (then ``solver="auto"`` computes large spectra there).

    ``WORKBENCH_EIGH_ON_CPU=1`` in the environment says no, to keep the embedding on the CPU.
    """
    import os

    if os.environ.get("WORKBENCH_EIGH_ON_CPU"):
        return False
    try:
        import jax
    except ImportError:
        return False
    try:
        return any(device.platform in ("gpu", "cuda", "rocm") for device in jax.devices())
    except RuntimeError:  # no usable backend
        return False


def _jax_eigenpairs(matrix, num_pairs: int, negative: str):
    """Dense ``eigh`` through JAX in float32 on its default device (a GPU when there is one).

    Every eigenpair is computed (JAX has no subset ``eigh``); the ``num_pairs`` wanted are
    selected by the caller. Eigenvalues stay within about ``1e-6·‖M‖`` of float64 LAPACK.
    """
    import jax
    import jax.numpy as jnp

    size = matrix.shape[0]
    dense = matrix.astype(np.float32).toarray() if sp.issparse(matrix) else np.array(matrix, dtype=np.float32)
    scale = float(np.linalg.norm(dense))
    began = time.perf_counter()
    values, vectors = jnp.linalg.eigh(jnp.asarray(dense), symmetrize_input=False)
    values, vectors = np.asarray(values, dtype=np.float64), np.asarray(vectors)
    zero_tolerance = math.sqrt(size) * np.finfo(np.float32).eps * scale
    device = jax.devices()[0]
    return values, vectors, zero_tolerance, {"precision": "float32", "device": f"{device.platform}: {device.device_kind}",
                                             "eigh_seconds": round(time.perf_counter() - began, 3)}


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
    is missing; dense products use the BLAS threads. For the numba kernel the rows and
    columns are renumbered in reverse Cuthill–McKee order, so that consecutive rows
    read nearby rows of ``X`` (1.6× faster on the 17,000-label benchmark); each row
    still adds its products in scipy's order, so the results are identical.
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
        self.kernel = _csr_product_kernel()
        self.order = None
        if self.kernel is not None and matrix.shape[0] > 1:
            from scipy.sparse.csgraph import reverse_cuthill_mckee

            # row p of the renumbered matrix is row order[p]; its column indices become new
            # positions but keep their original (sorted) order, so each row sums as scipy does
            self.order = reverse_cuthill_mckee(matrix, symmetric_mode=True).astype(np.int64)
            position = np.empty_like(self.order)
            position[self.order] = np.arange(len(self.order))
            renumbered = matrix[self.order]
            matrix = sp.csr_matrix((renumbered.data, position[renumbered.indices].astype(renumbered.indices.dtype),
                                    renumbered.indptr), shape=matrix.shape)
        # split rows into blocks of about equal numbers of non-zeros
        bounds = np.searchsorted(matrix.indptr, np.linspace(0, matrix.nnz, num_threads + 1)[1:-1])
        edges = np.unique(np.concatenate([[0], bounds, [matrix.shape[0]]]))
        self.edges = [(int(start), int(stop)) for start, stop in zip(edges[:-1], edges[1:]) if stop > start]
        if self.kernel is None:
            self.blocks = [matrix[start:stop] for start, stop in self.edges]
        else:
            self.blocks = [_row_block(matrix, start, stop) for start, stop in self.edges]
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
        if self.order is not None:
            block = block[self.order]
        out = np.empty((self.shape[0], block.shape[1]), dtype=self.dtype)

        def multiply(part):
            (start, stop), (indptr, indices, data) = part
            self.kernel(indptr, indices, data, block, out[start:stop])

        if self._pool is None:
            multiply((self.edges[0], self.blocks[0]))
        else:
            list(self._pool.map(multiply, zip(self.edges, self.blocks)))
        if self.order is not None:
            result = np.empty_like(out)
            result[self.order] = out
            return result
        return out

    def close(self):
        if getattr(self, "_pool", None) is not None:
            self._pool.shutdown()
            self._pool = None


def _row_block(matrix, start: int, stop: int):
    """Rows ``start:stop`` of a CSR matrix as ``(indptr, indices, data)`` arrays, in-row order untouched."""
    first, last = matrix.indptr[start], matrix.indptr[stop]
    return (np.ascontiguousarray(matrix.indptr[start : stop + 1] - first), np.ascontiguousarray(matrix.indices[first:last]),
            np.ascontiguousarray(matrix.data[first:last]))


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


def _band(diagonal_blocks, sub_blocks) -> np.ndarray:
    """The lower band of ``T = Qᵀ M Q`` (LAPACK's ``(b + 1, m)`` layout) straight from its blocks.

    ``band[d, i] = T[i + d, i]``: the lower triangles of the diagonal blocks and the
    upper-triangular sub-diagonal blocks ``R``, without forming the dense ``m × m`` ``T``.
    """
    width = diagonal_blocks[0].shape[0]
    count = len(diagonal_blocks)
    diagonal = np.stack([(block + block.T) / 2 for block in diagonal_blocks])
    sub = np.stack(sub_blocks[: count - 1]) if count > 1 else np.zeros((0, width, width))
    band = np.zeros((width + 1, count * width))
    starts = np.arange(count) * width
    for offset in range(width + 1):
        columns = np.arange(width - offset)  # inside a diagonal block: T[j·b + c + d, j·b + c]
        if len(columns):
            band[offset, (starts[:, None] + columns).ravel()] = diagonal[:, columns + offset, columns].ravel()
        columns = np.arange(width - offset, width) if offset else np.zeros(0, dtype=int)  # from the block below
        if len(columns) and len(sub):
            band[offset, (starts[: len(sub), None] + columns).ravel()] = sub[:, columns + offset - width, columns].ravel()
    return band


def _ritz_values(band: np.ndarray, *, single: bool = True) -> np.ndarray:
    """Every Ritz value from the band of ``T`` (:func:`_band`), without vectors: ``O(m² b)``.

    All of them (LAPACK ``sbevd``) rather than the wanted subset (``sbevx``): the
    reduction to tridiagonal form dominates both, and the full tridiagonal solve is
    faster than bisection for a thousand values (about 2.0 s against 3.2 s at
    ``m = 5,728``, ``b = 32`` on two cores). In float32: 1.6 s instead of 2.4 s at
    ``m = 6,272``, ``b = 64`` (``single``); values within about ``1e-7·‖T‖`` (up to about
    ``5e-5`` relative for the smallest wanted value on the benchmark), below the changes
    that matter for a tolerance of ``1e-3`` or more. Smaller tolerances use float64.
    """
    import scipy.linalg

    band = band.astype(np.float32) if single else band
    return scipy.linalg.eig_banded(band, lower=True, eigvals_only=True).astype(np.float64)


def _wanted(values: np.ndarray, num_pairs: int, negative: str) -> np.ndarray:
    """The ``num_pairs`` most significant of ``values``, most significant first."""
    values = np.sort(values)
    return values[np.argsort(-(values if negative == "drop" else np.abs(values)), kind="stable")[:num_pairs]]


def _ritz_pairs(projected: np.ndarray, num_pairs: int, negative: str):
    """Wanted eigenpairs of ``T`` (float32 LAPACK for large ``T``: half the memory traffic)."""
    import scipy.linalg

    size = projected.shape[0]
    work = projected.astype(np.float32) if size > 1000 else projected
    if negative == "drop" and num_pairs < size:
        values, vectors = scipy.linalg.eigh(work, subset_by_index=[size - num_pairs, size - 1], check_finite=False)
    else:
        values, vectors = scipy.linalg.eigh(work, check_finite=False)
    # float32 eigenvalues are within ~1e-7·‖T‖ of the float64 ones: far inside any useful tolerance
    return values.astype(np.float64), vectors.astype(np.float64)


class _SlowSpectrum(Exception):
    """The block Krylov solver would not converge within its basis limit on this spectrum."""


def _block_krylov_eigenpairs(
    matrix,
    num_pairs: int,
    negative: str,
    *,
    random_state: int,
    tolerance: float,
    block_size: int | None,
    max_basis: int | None,
    progress: bool,
    give_up: bool = False,
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
    wanted value, Rayleigh-Ritz gives the eigenpairs and their relative residuals
    ``‖M u − θ u‖/|θ|``: an eigenvalue of ``M`` lies that close to ``θ``, so the result
    is accepted only when every residual is ≤ ``tolerance`` (the certificate; the
    estimate only says when to look). The largest is reported as
    ``max_relative_residual``. At ``max_basis`` columns it stops with a warning.

    With ``give_up``, it raises :class:`_SlowSpectrum` instead: at the basis limit, or
    earlier when the convergence rate seen so far predicts more than twice the limit
    (each check shrinks the estimate by about ``ρ``, and the basis grows by about 12 %
    between checks; the margin because Krylov convergence often speeds up later, as on
    the benchmark's ``broad`` family): ``solver="auto"`` then switches to the dense solver.
    Basis and products are float32; the projection is float64.
    """
    size = matrix.shape[0]
    rng = np.random.default_rng(random_state)
    dtype = np.float32
    width = min(block_size or int(np.clip(num_pairs // 16, 16, 64)), size)
    limit = max_basis or max(8 * num_pairs, num_pairs + 16 * width)
    limit = max(2 * width, min(limit, size) // width * width)
    operator = _Operator(matrix, dtype)
    basis = np.empty((size, limit), dtype=dtype)
    start, _ = _orthonormalise(rng.standard_normal((size, width)).astype(dtype), basis[:, :0], rng)
    basis[:, :width] = start
    diagonal_blocks, sub_blocks = [], []
    filled = width
    next_check = max(4 * num_pairs, num_pairs + 4 * width, 2 * width) // width * width  # ~6k vectors are typical for 1%
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
                pairs = None
                if expect_settled or at_limit:  # likely the last check: its eigenpairs give the values too
                    pairs = _ritz_pairs(_projection(diagonal_blocks, sub_blocks), num_pairs, negative)
                    values = _wanted(pairs[0], num_pairs, negative)
                else:
                    values = _wanted(_ritz_values(_band(diagonal_blocks, sub_blocks), single=tolerance >= 1e-3), num_pairs, negative)
                change, estimate = np.inf, np.inf
                if previous_values is not None and len(previous_values) == len(values):
                    change = float(np.max(np.abs(values - previous_values) / np.maximum(np.abs(values), 1e-300)))
                    if change <= tolerance / 100:  # settled, up to the float32 rounding of the band values
                        estimate, ratio = change, 0.0
                    elif history and np.isfinite(history[-1][1]) and change < history[-1][1]:
                        ratio = change / history[-1][1]  # geometric convergence: the rest of the way is a tail sum
                        estimate = change * ratio / (1.0 - ratio)
                history.append((filled, change))
                previous_values = values
                if give_up and not at_limit and np.isfinite(estimate) and 0.0 < ratio < 1.0 and estimate > tolerance / 2:
                    checks_left = math.ceil(math.log(tolerance / 2 / estimate) / math.log(ratio))
                    predicted = filled * 1.12 ** checks_left
                    if predicted > 2 * limit:  # clearly hopeless (Krylov convergence often speeds up later)
                        raise _SlowSpectrum(f"at {filled} basis vectors the Ritz values change by {change:.2g} per check "
                                            f"(ratio {ratio:.2f}): about {predicted:,.0f} vectors would be needed, "
                                            f"above the limit of {limit}")
                # the next check shrinks the estimate by about the ratio again
                expect_settled = bool(np.isfinite(estimate) and estimate * ratio <= tolerance / 2)
                if estimate <= tolerance / 2 or at_limit:
                    # Rayleigh-Ritz with vectors: the certificate
                    if pairs is None:
                        pairs = _ritz_pairs(_projection(diagonal_blocks, sub_blocks), num_pairs, negative)
                    ritz, vectors = pairs
                    scale = np.abs(ritz).max()
                    chosen = _select(ritz, num_pairs, negative, math.sqrt(size) * np.finfo(dtype).eps * scale)
                    residuals = np.linalg.norm(r @ vectors[filled - width :, chosen], axis=0)
                    relative = residuals / np.abs(ritz[chosen])
                    certified = not len(relative) or float(relative.max()) <= tolerance
                    if (len(chosen) == num_pairs and certified) or at_limit:
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
    settled = bool(estimate <= tolerance / 2 and certified)
    if give_up and not settled:
        raise _SlowSpectrum(f"the basis limit ({limit} vectors) was reached with an estimated relative error of {estimate:.2g} "
                            f"and a largest relative residual of {float(relative.max()) if len(relative) else 0.0:.2g}")
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
            f"The randomized solver reached its basis limit ({limit} vectors) before its eigenpairs were certified "
            f"(estimated relative error {estimate:.2g}, largest relative residual "
            f"{float(relative.max()) if len(relative) else 0.0:.2g}; tolerance {tolerance:g}); "
            "raise max_basis or use solver='exact' (solver='auto' switches by itself).",
            UserWarning,
            stacklevel=3,
        )
    return ritz[chosen], eigenvectors, math.sqrt(size) * np.finfo(dtype).eps * scale, info


def eigenpairs(
    matrix,
    *,
    num_pairs: int,
    negative: str = "drop",
    solver: str = "auto",
    random_state: int = 0,
    tolerance: float = 1e-2,
    block_size: int | None = None,
    max_basis: int | None = None,
    progress: bool = False,
):
    """The ``num_pairs`` most significant eigenpairs of a symmetric matrix.

    Parameters
    ----------
    matrix : scipy sparse matrix or array-like of shape (n, n)
        Symmetric and finite.
    num_pairs : int
        How many eigenpairs to return (at most ``n``; fewer when fewer are usable).
    negative : {"drop", "abs"}, default="drop"
        ``"drop"``: the largest *positive* eigenvalues; ``"abs"``: the largest in magnitude.
    solver : {"auto", "exact", "randomized", "jax"}, default="auto"
        ``"exact"``: dense ``scipy.linalg.eigh`` (``O(n³)``). ``"randomized"``: block
        Krylov iteration from a random start until the estimated relative error of every
        wanted eigenvalue is ≤ ``tolerance``. ``"jax"``: dense ``jax.numpy.linalg.eigh``
        in float32 on JAX's default device. ``"auto"``: exact up to
        ``EXACT_MAX_LABELS`` rows or when ``6·num_pairs ≥ n``; above that, ``"jax"`` when
        JAX sees a GPU (up to ``JAX_MAX_LABELS``), else randomized, switching to exact
        when the spectrum it sees converges too slowly for the basis limit (``info``
        then says why under ``switched_from_randomized``).
    random_state : int, default=0
        Seed of the randomized solver's start block.
    tolerance : float, default=1e-2
        Randomized solver: target relative eigenvalue error.
    block_size, max_basis : int, optional
        Randomized solver: Krylov block width (default ``clip(k/16, 16, 64)``: wider blocks
        read the basis fewer times, 16 % faster than 32 at k = 1,024 on the benchmark) and the
        largest basis (default ``max(8k, k + 16·block)``, at most ``n``).
    progress : bool, default=False
        tqdm progress bar (stderr) for the randomized solver.

    Returns
    -------
    eigenvalues : ndarray of shape (k',), dtype float64
        Signed, most significant first; ``k' ≤ num_pairs`` (numerically zero
        eigenvalues, and negative ones under ``"drop"``, are not usable).
    eigenvectors : ndarray of shape (n, k'), dtype float64
        Unit columns with deterministic signs.
    info : dict
        ``solver`` (the one used) and the solver's own details (precision; basis size,
        timings and ``max_relative_residual`` for the randomized solver).
    """
    _checks.choice(negative, "negative", NEGATIVE_POLICIES, meaning="'drop': positive eigenvalues only; 'abs': |eigenvalue|")
    _checks.choice(solver, "solver", SOLVERS)
    num_pairs = _checks.integer(num_pairs, "num_pairs")
    if not (isinstance(tolerance, (int, float)) and not isinstance(tolerance, bool) and 0 < tolerance < 1):
        raise ValueError(f"tolerance must be between 0 and 1; got {tolerance!r}.")
    matrix = symmetric_matrix(matrix)
    size = matrix.shape[0]
    num_pairs = min(num_pairs, size)
    automatic = solver == "auto"
    if automatic:
        # the Krylov basis needs about 6k vectors: near n, the dense solver is cheaper
        solver = "exact" if size <= EXACT_MAX_LABELS or 6 * num_pairs >= size else "randomized"
        if size > EXACT_MAX_LABELS and size <= JAX_MAX_LABELS and jax_gpu_available():
            solver = "jax"  # every eigenpair of 17,000 labels in seconds on a GPU
    switched = None
    if solver == "randomized":
        try:
            values, vectors, zero_tolerance, info = _block_krylov_eigenpairs(
                matrix, num_pairs, negative, random_state=random_state, tolerance=tolerance,
                block_size=block_size, max_basis=max_basis, progress=progress, give_up=automatic,
            )
        except _SlowSpectrum as reason:  # only under "auto": this spectrum is the dense solver's
            solver, switched = "exact", f"randomized solver stopped: {reason}"
    if solver in ("exact", "jax"):
        solve = _exact_eigenpairs if solver == "exact" else _jax_eigenpairs
        values, vectors, zero_tolerance, info = solve(matrix, num_pairs, negative)
        chosen = _select(values, num_pairs, negative, zero_tolerance)
        values, vectors = values[chosen], vectors[:, chosen]
        if switched:
            info["switched_from_randomized"] = switched
    vectors = flip_signs(np.asarray(vectors, dtype=np.float64))
    return np.asarray(values, dtype=np.float64), vectors, {"solver": solver, **info}


def all_eigenvalues(matrix) -> np.ndarray:
    """Every eigenvalue of a symmetric matrix, largest first (dense ``eigvalsh``, ``O(n³)``).

    Returns
    -------
    ndarray of shape (n,), dtype float64
    """
    import scipy.linalg

    matrix = symmetric_matrix(matrix)
    dense = matrix.toarray() if sp.issparse(matrix) else matrix
    return scipy.linalg.eigvalsh(dense, check_finite=False)[::-1]


def frobenius_norm(matrix) -> float:
    """``‖M‖_F`` of a sparse or dense matrix (float64 accumulation)."""
    values = matrix.data if sp.issparse(matrix) else np.asarray(matrix)
    return float(np.sqrt(np.sum(np.square(values, dtype=np.float64))))
