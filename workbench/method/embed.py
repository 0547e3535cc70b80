"""Counts → PMI → spectral label embedding: the one coordinator of steps 2 and 3.

A symmetric PMI matrix ``M`` (``C × C``) is factorised as ``M = U Λ Uᵀ``; the label
embedding keeps the ``k`` most significant eigenpairs, ``E = U_k |Λ_k|^½`` (float32,
rows in vocabulary order), so that ``E Eᵀ`` approximates ``M``.

:class:`EmbeddingOptions` is the one record of every choice that makes an embedding
(``embedding_dim`` = ``k``, the PMI policy and diagonal, what to do with negative
eigenvalues, the solver). The command line (``workbench embed``, ``workbench
compare``), the workspace behind the notebooks and :func:`workbench.experiments.compare.compare`
all build one and hand it to :func:`embed_labels`; the resulting
:class:`~workbench.method.embedding.LabelEmbedding` records it under
``settings["options"]``, so :meth:`EmbeddingOptions.of` reads it back.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import asdict, dataclass

import numpy as np

from workbench import _checks
from workbench.method.eigensolvers import NEGATIVE_POLICIES, SOLVERS, all_eigenvalues, eigenpairs, frobenius_norm
from workbench.method.embedding import LabelEmbedding
from workbench.method.pmi import DIAGONALS, POLICIES, check_pmi_options

__all__ = [
    "DEFAULT_EMBEDDING_DIM",
    "EmbeddingOptions",
    "SpectralResult",
    "spectral_embedding",
    "embed_labels",
    "spectrum",
    "energy_kept",
    "reconstruction_error",
    "pmi_frobenius_norm",
    "embedding_differences",
    "write_embedding",
    "OPTION_HELP",
    "OPTION_FLAGS",
]

#: ``k`` when nobody chooses one (``workbench embed``, ``workbench compare``, :class:`EmbeddingOptions`).
DEFAULT_EMBEDDING_DIM = 64

#: What each option means, in one place: the docstring below, the command line's help and the README use it.
OPTION_HELP = {
    "embedding_dim": "embedding dimension k: the length of each label vector",
    "policy": "PMI of pairs that never co-occur (-inf): 'zero' (undefined -> 0, finite negative PMI kept), "
    "'ppmi' (every negative value -> 0), 'clip' (floor at clip_value), 'smooth' (add-alpha pair counts)",
    "diagonal": "PMI diagonal: 'self' (self-information -log p(i), the definition) or 'zero'",
    "clip_value": "floor of policy 'clip' (for example -2)",
    "smoothing": "alpha added to pair counts by policy 'smooth' (default 1)",
    "context_exponent": "context-distribution smoothing exponent of the marginals (1: none; 0.75 in Levy et al.)",
    "shift": "shifted PMI: PMI - log(shift) (1: none)",
    "negative": "negative eigenvalues: 'drop' (top-k positive ones; E Eᵀ is the best PSD rank-k approximation) "
    "or 'abs' (rank by magnitude, as an SVD)",
    "solver": "eigen-solver: 'auto' (exact for small C or k near C; on a GPU through JAX when one is visible), "
    "'exact' (dense LAPACK), 'randomized' (block Krylov) or 'jax' (dense eigh through JAX, float32)",
    "random_state": "seed of the randomized solver's start block",
    "tolerance": "randomized solver: target relative eigenvalue error",
}

#: Each option on the command line (``workbench embed``, ``compare``, ``ceiling``): its flag and its
#: metavar, or its choices (``random_state``'s flag is the command's: ``--seed`` or ``--solver-seed``).
OPTION_FLAGS = {
    "embedding_dim": ("--dim", "K"), "policy": ("--pmi", POLICIES), "diagonal": ("--diagonal", DIAGONALS),
    "clip_value": ("--clip-value", "V"), "smoothing": ("--smoothing", "A"), "context_exponent": ("--context-exponent", "E"),
    "shift": ("--shift", "S"), "negative": ("--negative", NEGATIVE_POLICIES), "solver": ("--solver", SOLVERS),
    "random_state": (None, "S"), "tolerance": ("--tolerance", "T"),
}


@dataclass(frozen=True)
class EmbeddingOptions:
    """Every choice that makes a PMI label embedding.

    Parameters
    ----------
    embedding_dim : int, default=64
        ``k``, the number of kept eigenpairs (the length of each label vector).
    policy : {"zero", "ppmi", "clip", "smooth"}, default="zero"
        PMI of pairs that never co-occur (see :mod:`workbench.method.pmi`).
    diagonal : {"self", "zero"}, default="self"
        The PMI diagonal: self-information, or 0.
    clip_value : float, optional
        Floor of ``policy="clip"`` (required there, refused elsewhere).
    smoothing : float, optional
        α of ``policy="smooth"`` (default 1 there, refused elsewhere).
    context_exponent : float, default=1.0
        Context-distribution smoothing exponent.
    shift : float, default=1.0
        Shifted PMI, ``PMI − log shift``.
    negative : {"drop", "abs"}, default="drop"
        Negative eigenvalues: dropped, or ranked by magnitude.
    solver : {"auto", "exact", "randomized"}, default="auto"
    random_state : int, default=0
        Seed of the randomized solver.
    tolerance : float, default=1e-2
        Target relative eigenvalue error of the randomized solver.

    Invalid values raise ``ValueError`` when the options are made, before any work.
    """

    embedding_dim: int = DEFAULT_EMBEDDING_DIM
    policy: str = "zero"
    diagonal: str = "self"
    clip_value: float | None = None
    smoothing: float | None = None
    context_exponent: float = 1.0
    shift: float = 1.0
    negative: str = "drop"
    solver: str = "auto"
    random_state: int = 0
    tolerance: float = 1e-2

    def __post_init__(self):
        set_ = lambda name, value: object.__setattr__(self, name, value)  # noqa: E731  (frozen dataclass)
        set_("embedding_dim", _checks.integer(self.embedding_dim, "embedding_dim"))
        _checks.choice(self.policy, "PMI policy", POLICIES)
        _checks.choice(self.diagonal, "diagonal", DIAGONALS)
        clip_value, _, context_exponent, shift = check_pmi_options(
            self.policy, self.diagonal, self.clip_value, self.smoothing, self.context_exponent, self.shift
        )
        set_("clip_value", clip_value)
        set_("smoothing", None if self.smoothing is None else _checks.number(self.smoothing, "smoothing", positive=True))
        set_("context_exponent", context_exponent)
        set_("shift", shift)
        _checks.choice(self.negative, "negative", NEGATIVE_POLICIES, meaning="'drop': positive eigenvalues only; 'abs': |eigenvalue|")
        _checks.choice(self.solver, "solver", SOLVERS)
        set_("random_state", _checks.integer(self.random_state, "random_state", minimum=0))
        tolerance = _checks.number(self.tolerance, "tolerance", positive=True)
        if not tolerance < 1:
            raise ValueError(f"tolerance must be between 0 and 1; got {self.tolerance!r}.")
        set_("tolerance", tolerance)

    def to_dict(self) -> dict:
        """The options as a JSON-serialisable dict (every field)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "EmbeddingOptions":
        """Options from :meth:`to_dict`'s layout; unknown keys raise ``ValueError``."""
        return _checks.from_dict(cls, data, "embedding options")

    @classmethod
    def of(cls, embedding: LabelEmbedding) -> "EmbeddingOptions | None":
        """The options an embedding was made with (``None`` when it does not record them)."""
        recorded = embedding.settings.get("options")
        return cls.from_dict(recorded) if isinstance(recorded, dict) else None

    def pmi_options(self) -> dict:
        """Keyword arguments of :func:`workbench.method.pmi.pmi_matrix`."""
        return {"policy": self.policy, "diagonal": self.diagonal, "clip_value": self.clip_value,
                "smoothing": self.smoothing, "context_exponent": self.context_exponent, "shift": self.shift}

    def differences(self, other: "EmbeddingOptions") -> dict:
        """``{field: (this value, other value)}`` for every field that differs."""
        mine, theirs = self.to_dict(), other.to_dict()
        return {name: (mine[name], theirs[name]) for name in mine if mine[name] != theirs[name]}


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
        Solver details: ``solver`` used, ``dim_requested``, ``dim`` …
    """

    vectors: np.ndarray
    eigenvalues: np.ndarray
    info: dict


def _matrix_of(pmi):
    """The matrix of a :class:`~workbench.method.pmi.PMIResult`, or the sparse/dense matrix given."""
    return getattr(pmi, "matrix", pmi)


def spectral_embedding(
    pmi,
    *,
    embedding_dim: int,
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
    embedding_dim : int
        ``k``.
    negative, solver, random_state, tolerance, block_size, max_basis, progress
        As in :func:`workbench.method.eigensolvers.eigenpairs`.

    Returns
    -------
    SpectralResult
        ``vectors`` (C, k') float32 and ``eigenvalues`` (k',) float64, most significant
        first, with ``k' ≤ k`` the usable count (a ``UserWarning`` says when ``k' < k``).
        Column signs are deterministic: each column's largest-magnitude entry is positive.
    """
    requested = _checks.integer(embedding_dim, "embedding_dim")
    began = time.perf_counter()
    values, vectors, info = eigenpairs(
        _matrix_of(pmi), num_pairs=requested, negative=negative, solver=solver, random_state=random_state,
        tolerance=tolerance, block_size=block_size, max_basis=max_basis, progress=progress,
    )
    size = vectors.shape[0]
    if len(values) < requested:
        kind = "positive eigenvalues (negative='drop'; use negative='abs' to use negative ones too)" if negative == "drop" else "non-zero eigenvalues"
        warnings.warn(
            f"Asked for embedding_dim={requested} but the {size}-label PMI matrix has only {len(values)} usable {kind}; "
            f"the embedding has {len(values)} dimensions.",
            UserWarning,
            stacklevel=2,
        )
    vectors = vectors * np.sqrt(np.abs(values))
    info = {
        "solver": info.pop("solver"),
        "negative": negative,
        "dim_requested": requested,
        "dim": int(len(values)),
        "random_state": random_state,
        "seconds": round(time.perf_counter() - began, 3),
        **info,
    }
    return SpectralResult(vectors=vectors.astype(np.float32), eigenvalues=values, info=info)


def embed_labels(counts, *, options: EmbeddingOptions | None = None, progress: bool = False, **option_values) -> LabelEmbedding:
    """Counts → PMI (:func:`workbench.method.pmi.pmi_matrix`) → :func:`spectral_embedding`.

    Parameters
    ----------
    counts : CooccurrenceCounts
    options : EmbeddingOptions, optional
        Every choice of the two steps. Instead, the same fields may be given as keywords
        (``embed_labels(counts, embedding_dim=16, policy="ppmi")``); not both.
    progress : bool, default=False
        tqdm progress bar of the randomized solver.

    Labels that never occur are dropped (with a warning), so the embedding's vocabulary
    is the kept labels.

    Returns
    -------
    LabelEmbedding
        ``settings`` records ``options`` (:meth:`EmbeddingOptions.to_dict`), ``pmi``
        (every PMI choice, dropped labels), ``spectral`` (solver details, requested and
        achieved ``dim``), ``data`` (counts summary) and ``diagnostics``
        (``energy_kept``, ``reconstruction_error``, ``pmi_frobenius_norm``).
    """
    from workbench.method.pmi import pmi_matrix

    if options is None:
        options = EmbeddingOptions.from_dict(option_values)
    elif option_values:
        raise ValueError(f"Give the embedding options either as EmbeddingOptions or as keywords, not both ({sorted(option_values)}).")
    elif not isinstance(options, EmbeddingOptions):
        raise ValueError(f"options must be EmbeddingOptions; got {type(options).__name__}.")
    began = time.perf_counter()
    pmi = pmi_matrix(counts, **options.pmi_options())
    result = spectral_embedding(
        pmi, embedding_dim=options.embedding_dim, negative=options.negative, solver=options.solver,
        random_state=options.random_state, tolerance=options.tolerance, progress=progress,
    )
    settings = {
        "options": options.to_dict(),
        "pmi": pmi.settings,
        "spectral": result.info,
        "data": counts.summary(),
        "diagnostics": {
            "pmi_frobenius_norm": pmi_frobenius_norm(pmi),
            "energy_kept": energy_kept(result.eigenvalues, pmi),
            "reconstruction_error": reconstruction_error(result.vectors, pmi),
        },
        "seconds": round(time.perf_counter() - began, 3),
    }
    return LabelEmbedding(
        vocabulary=pmi.vocabulary, vectors=result.vectors, eigenvalues=result.eigenvalues,
        label_counts=pmi.label_counts, settings=settings,
    )


# ---------------------------------------------------------------------------------
# diagnostics
# ---------------------------------------------------------------------------------
def pmi_frobenius_norm(pmi) -> float:
    """``‖PMI‖_F`` of a PMIResult, sparse or dense matrix."""
    return frobenius_norm(_matrix_of(pmi))


def spectrum(pmi) -> np.ndarray:
    """All eigenvalues of the PMI matrix, largest first (dense ``eigvalsh``, ``O(C³)``).

    Returns
    -------
    ndarray of shape (C,), dtype float64
    """
    return all_eigenvalues(_matrix_of(pmi))


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
    matrix = _matrix_of(pmi)
    vectors = np.asarray(vectors, dtype=np.float64)
    if vectors.shape[0] != matrix.shape[0]:
        raise ValueError(f"{vectors.shape[0]} label vectors for a {matrix.shape[0]}-label PMI matrix; use the matching embedding.")
    norm_squared = frobenius_norm(matrix) ** 2
    if norm_squared == 0:
        return 0.0
    gram = vectors.T @ vectors
    cross = float(np.sum(vectors * np.asarray(matrix @ vectors)))
    error_squared = max(float(np.sum(gram * gram)) - 2.0 * cross + norm_squared, 0.0)
    return float(np.sqrt(error_squared / norm_squared))


def embedding_differences(folder, options: EmbeddingOptions) -> str | None:
    """Which options the embedding in ``folder`` (``embedding.json``) was made with other than ``options``.

    ``"policy 'ppmi' -> 'zero', …"``, ``None`` when they are the same, ``"settings not recorded"``
    when the folder does not say (what ``workbench embed`` tells before replacing an earlier output).
    """
    from pathlib import Path

    from workbench._io import read_json

    try:
        recorded = EmbeddingOptions.from_dict(read_json(Path(folder) / "embedding.json")["settings"]["options"])
    except (KeyError, TypeError, ValueError):
        return "settings not recorded"
    changed = recorded.differences(options)
    return ", ".join(f"{name} {old!r} -> {new!r}" for name, (old, new) in changed.items()) or None


def write_embedding(out, *, options: EmbeddingOptions, counts=None, data=None, data_format: str = "auto",
                    projector: bool = False, save_counts: bool = False, progress: bool = False,
                    validation_fraction: float = 0.1, split_random_state: int = 0):
    """``workbench embed``'s job: counts (read, or counted from a data set) → :func:`embed_labels` → the folder ``out``.

    ``out`` is checked before anything is read (new, empty, or an earlier embedding made
    with the same ``options``: :func:`workbench._io.check_output_folder`), and so are
    ``out/projector`` and ``out/counts.json`` when asked for. Then ``out/embedding.npz`` and
    ``out/embedding.json`` are written, ``out/projector/`` with ``projector=True``
    (:meth:`LabelEmbedding.export_projector`) and ``out/counts.json`` with ``save_counts=True``.

    Parameters
    ----------
    out : path
    options : EmbeddingOptions
    counts : path, optional
        A counts JSON (:meth:`~workbench.method.cooccurrence.CooccurrenceCounts.load_json`).
    data : path, optional
        A data set (:func:`workbench.data.datasets.load_dataset` with ``data_format``);
        exactly one of ``counts`` and ``data``.
    progress : bool, default=False
        Progress bars (tqdm, on standard error).
    validation_fraction : float, default=0.1
        With ``data``: only the training split of ``dataset.split(validation_fraction=…,
        random_state=split_random_state)`` is counted, the split ``workbench train`` and
        ``workbench compare`` hold out with the same ``--validation-fraction`` (their default
        is 0.1), so the embedding never sees the validation labels (``train`` refuses one that
        did). 0 counts every image (an embedding not meant for training on this data).
    split_random_state : int, default=0

    Returns
    -------
    (LabelEmbedding, str, list of str)
        The embedding; what was done, in words (a line, and a note on images without a
        label); the warnings raised while embedding (labels dropped, a solver's fallback).
    """
    import sys

    from tqdm.auto import tqdm

    from workbench._io import check_output_folder
    from workbench.method.cooccurrence import CooccurrenceCounts, count_cooccurrence

    if (data is None) == (counts is None):
        raise ValueError("Give exactly one of counts (a counts JSON) or data (a data set).")
    began = time.perf_counter()
    out = check_output_folder(out, marker="embedding.json", command="workbench embed",
                              differences=lambda folder: embedding_differences(folder, options))
    for wanted, flag in (("projector", projector), ("counts.json", save_counts)):
        taken = out / wanted
        if flag and taken.exists() and (taken.is_dir() == (wanted == "counts.json")):
            raise ValueError(f"{taken} is in the way ({'a folder' if taken.is_dir() else 'a file'}); move it or give another --out.")
    empty_images = 0
    steps = tqdm(total=4, desc="embed", unit="step", file=sys.stderr, leave=False, disable=not progress)
    try:
        if counts is not None:
            steps.set_description("reading counts")
            counts = CooccurrenceCounts.load_json(counts)
        else:
            from workbench.data.datasets import load_dataset

            steps.set_description("loading data")
            dataset = load_dataset(data, format=data_format)
            if validation_fraction:
                dataset = dataset.split(validation_fraction=validation_fraction, random_state=split_random_state)[0]
            empty_images = dataset.summary()["num_empty_images"]
            steps.set_description("counting co-occurrences")
            counts = count_cooccurrence(dataset.labels, dataset.vocabulary, progress=progress)
        steps.update(1)
        steps.set_description("PMI + eigen-decomposition")
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            embedding = embed_labels(counts, options=options, progress=progress)
        steps.update(2)
        steps.set_description("writing")
        embedding.save(out)
        if projector:
            embedding.export_projector(out / "projector")
        if save_counts:
            counts.save_json(out / "counts.json")
        steps.update(1)
    finally:
        steps.close()
    diagnostics, dropped = embedding.settings["diagnostics"], len(embedding.settings["pmi"]["dropped_labels"])
    split = f" (the training split, validation fraction {validation_fraction:g})" if data is not None and validation_fraction else ""
    summary = (f"embedded {embedding.num_labels} labels ({dropped} dropped) from {counts.n_images} images{split} in "
               f"{embedding.embedding_dim} dimensions: energy kept {100 * diagnostics['energy_kept']:.1f}%, "
               f"reconstruction error {diagnostics['reconstruction_error']:.3f}, "
               f"solver {embedding.settings['spectral']['solver']}, {time.perf_counter() - began:.1f} s -> {out}")
    if empty_images:
        summary += (f"\nnote: {empty_images} of {counts.n_images} images have no label; they count in N "
                    "(every p(i) = c_i / N) but in no pair")
    return embedding, summary, [str(warning.message) for warning in caught]
