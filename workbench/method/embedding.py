"""The label embedding artefact: :class:`LabelEmbedding` (save, load, nearest labels, Projector export).

A label embedding is ``C`` label vectors (rows of a ``(C, k)`` float32 matrix, in
vocabulary order) with the eigenvalue behind each column and the settings that made
it. Cosine similarity between rows is what the rest of the workbench compares labels
with. This module only holds and queries vectors; :mod:`workbench.method.embed`
computes them.
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np

from workbench import _checks
from workbench.data.labels import Vocabulary

__all__ = ["LabelEmbedding", "cosine_similarities", "unit_rows", "nearest_labels"]

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
    return (unit_rows(points).astype(np.float32) @ unit_rows(vectors).astype(np.float32).T).clip(-1.0, 1.0)


def unit_rows(matrix: np.ndarray) -> np.ndarray:
    """Rows scaled to unit norm, in the matrix's own float dtype; zero rows stay zero (never NaN).

    Norms are accumulated in float64, so float32 rows are normalised as accurately as
    float32 allows.

    Parameters
    ----------
    matrix : ndarray of shape (N, k), float dtype

    Returns
    -------
    ndarray of shape (N, k), same dtype
    """
    norms = np.sqrt(np.einsum("ij,ij->i", matrix, matrix, dtype=np.float64)).astype(matrix.dtype)[:, None]
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
        # the description first: a writer killed between the two files leaves a folder that is
        # recognisably an embedding's (load() then says the arrays are missing or do not match)
        arrays = {"vectors": self.vectors, "eigenvalues": self.eigenvalues}
        if self.label_counts is not None:
            arrays["label_counts"] = self.label_counts
        atomic_save_npz(directory / "embedding.npz", **arrays)
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
        try:
            with np.load(directory / "embedding.npz", allow_pickle=False) as archive:
                arrays = {name: archive[name] for name in ("vectors", "eigenvalues", "label_counts") if name in archive.files}
        except (OSError, ValueError, EOFError, zipfile.BadZipFile) as error:
            reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            raise ValueError(f"{directory / 'embedding.npz'} is damaged ({reason}); re-run 'workbench embed'.") from None
        missing = {"vectors", "eigenvalues"} - set(arrays)
        if missing:
            raise ValueError(f"{directory / 'embedding.npz'}: missing array(s) {sorted(missing)}; re-run 'workbench embed'.")
        vectors, eigenvalues, label_counts = arrays["vectors"], arrays["eigenvalues"], arrays.get("label_counts")
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
        top = _checks.integer(top, "top")
        position = self.vocabulary.index(label)
        similarity = self.similarities(self.vectors[position])[0]
        similarity[position] = -np.inf
        order = np.argsort(-similarity, kind="stable")[: min(int(top), self.num_labels - 1)]
        return [(self.vocabulary[int(i)], float(similarity[i])) for i in order]

    def neighbours_text(self, label: str, *, top: int = 10, as_json: bool = False) -> str:
        """:meth:`nearest` as ``workbench neighbours`` prints it: a line per label, or
        ``{"label", "neighbours": [{"label", "similarity"}]}`` as JSON (similarities to 6 decimals)."""
        neighbours = self.nearest(label, top=top)
        if as_json:
            import json

            return json.dumps({"label": label, "neighbours": [{"label": name, "similarity": round(value, 6)}
                                                               for name, value in neighbours]}, ensure_ascii=False)
        width = max((len(name) for name, _ in neighbours), default=0)
        return "\n".join([f"nearest to {label!r} by cosine similarity ({self.embedding_dim} dimensions):",
                          *(f"  {name:<{width}}  {value:+.3f}" for name, value in neighbours)])

    def export_projector(self, directory: str | Path) -> Path:
        """Write ``vectors.tsv`` and ``metadata.tsv`` for the TensorFlow Embedding Projector.

        ``metadata.tsv`` has a header row ``label\\tgroup\\tcount`` and one row per
        label, in the order of ``vectors.tsv``; the count is empty when unknown. Names
        hold no tab or line break (a :class:`~workbench.data.labels.Vocabulary` refuses
        them), so every row has its three fields.
        """
        from workbench._io import atomic_write_text

        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        buffer = io.StringIO()
        np.savetxt(buffer, self.vectors, fmt="%.9g", delimiter="\t")  # 9 digits round-trip float32
        atomic_write_text(directory / "vectors.tsv", buffer.getvalue())
        meta = ["label\tgroup\tcount"]
        for position, name in enumerate(self.vocabulary.names):
            count = "" if self.label_counts is None else str(int(self.label_counts[position]))
            meta.append(f"{name}\t{self.vocabulary.group_of(position)}\t{count}")
        atomic_write_text(directory / "metadata.tsv", "\n".join(meta) + "\n")
        return directory


def nearest_labels(embedding: LabelEmbedding, labels=None, *, top: int = 5) -> dict:
    """``{label: [(neighbour, cosine similarity), …]}`` for ``labels`` (default: all)."""
    labels = embedding.vocabulary.names if labels is None else labels
    return {label: embedding.nearest(label, top=top) for label in labels}
