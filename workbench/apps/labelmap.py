"""2-D maps of label embeddings: UMAP or PCA coordinates, and their CSV export.

:func:`label_coordinates` places every label of a ``(C, k)`` embedding on a plane:
UMAP (umap-learn, cosine metric, seeded by ``random_state``) keeps neighbourhoods,
PCA of the unit-normalised vectors is the fast, deterministic option.
:func:`write_coordinates_csv` writes ``label,group,x,y`` atomically and
:func:`read_coordinates_csv` reads it back.
"""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path

import numpy as np

from workbench import _checks

__all__ = ["label_coordinates", "write_coordinates_csv", "read_coordinates_csv", "MAP_METHODS"]

#: The layouts :func:`label_coordinates` knows.
MAP_METHODS = ("umap", "pca")

#: UMAP needs a handful of points to build its neighbour graph and spectral start.
_MIN_UMAP_LABELS = 5


def label_coordinates(
    vectors,
    *,
    method: str = "umap",
    random_state: int = 0,
    n_neighbors: int = 15,
    min_dist: float = 0.1,
) -> np.ndarray:
    """2-D coordinates of label vectors.

    Parameters
    ----------
    vectors : array-like of shape (C, k)
        Label vectors (rows in vocabulary order).
    method : {"umap", "pca"}
        ``"umap"``: umap-learn with the cosine metric (``n_neighbors`` is capped at
        ``C - 1``); needs at least 5 labels. ``"pca"``: the first two principal
        components of the unit-normalised vectors, signs fixed so that the largest
        loading of each component is positive.
    random_state : int
        Seed of UMAP (PCA is deterministic).
    n_neighbors, min_dist
        UMAP settings.

    Returns
    -------
    ndarray of shape (C, 2), dtype float32
    """
    vectors = np.asarray(vectors, dtype=np.float64)
    if vectors.ndim != 2 or vectors.shape[0] < 2:
        raise ValueError(f"label_coordinates needs a (num_labels >= 2, embedding_dim) matrix; got shape {vectors.shape}.")
    if not np.all(np.isfinite(vectors)):
        raise ValueError("Label vectors contain NaN or infinite values; recompute the embedding.")
    if method not in MAP_METHODS:
        raise ValueError(f"Unknown map method {method!r}; use one of {', '.join(MAP_METHODS)}.")
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    unit = np.divide(vectors, norms, out=np.zeros_like(vectors), where=norms > 0)
    num_labels = vectors.shape[0]
    if method == "pca":
        centred = unit - unit.mean(axis=0)
        _, _, components = np.linalg.svd(centred, full_matrices=False)
        components = components[:2]
        if components.shape[0] < 2:
            components = np.vstack([components, np.zeros_like(components)])
        signs = np.sign(components[np.arange(2), np.argmax(np.abs(components), axis=1)])
        signs[signs == 0] = 1.0
        return (centred @ (components * signs[:, None]).T).astype(np.float32)
    if num_labels < _MIN_UMAP_LABELS:
        raise ValueError(f"UMAP needs at least {_MIN_UMAP_LABELS} labels (got {num_labels}); use method='pca'.")
    n_neighbors = _checks.integer(n_neighbors, "n_neighbors", minimum=2)
    import warnings

    import umap

    with warnings.catch_warnings():
        # umap warns that a fixed random_state disables parallelism: that is the point.
        warnings.filterwarnings("ignore", message=".*random_state.*", category=UserWarning)
        reducer = umap.UMAP(
            n_components=2,
            n_neighbors=int(min(n_neighbors, num_labels - 1)),
            min_dist=float(min_dist),
            metric="cosine",
            random_state=int(random_state),
            init="spectral" if num_labels > 10 else "random",
        )
        coordinates = reducer.fit_transform(unit)
    return np.asarray(coordinates, dtype=np.float32)


def write_coordinates_csv(path: str | Path, *, vocabulary, coordinates) -> Path:
    """Write ``label,group,x,y`` (one row per label, vocabulary order) atomically.

    Parameters
    ----------
    path : path-like
    vocabulary : Vocabulary
        Names and groups (empty group when the vocabulary has none).
    coordinates : array-like of shape (C, 2)
    """
    from workbench._io import atomic_write_text

    coordinates = np.asarray(coordinates, dtype=np.float64)
    if coordinates.shape != (len(vocabulary), 2):
        raise ValueError(f"coordinates must be ({len(vocabulary)}, 2), one row per label; got {coordinates.shape}.")
    if not np.all(np.isfinite(coordinates)):
        raise ValueError("coordinates contain NaN or infinite values; recompute the map.")
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["label", "group", "x", "y"])
    for position, name in enumerate(vocabulary.names):
        x, y = coordinates[position]
        writer.writerow([name, vocabulary.group_of(position), repr(float(x)), repr(float(y))])
    path = Path(path)
    atomic_write_text(path, buffer.getvalue())
    return path


def read_coordinates_csv(path: str | Path) -> tuple[list[str], list[str], np.ndarray]:
    """Read a file written by :func:`write_coordinates_csv`: ``(labels, groups, (C, 2) float64)``."""
    path = Path(path)
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        if header != ["label", "group", "x", "y"]:
            raise ValueError(f"{path}: expected the header 'label,group,x,y'; found {header}.")
        labels, groups, points = [], [], []
        for line, row in enumerate(reader, start=2):
            if len(row) != 4:
                raise ValueError(f"{path}, line {line}: expected 4 fields (label,group,x,y); found {len(row)}.")
            try:
                x, y = float(row[2]), float(row[3])
            except ValueError:
                raise ValueError(f"{path}, line {line}: x and y must be numbers; found {row[2]!r}, {row[3]!r}.") from None
            if not (math.isfinite(x) and math.isfinite(y)):
                raise ValueError(f"{path}, line {line}: x and y must be finite numbers.")
            labels.append(row[0])
            groups.append(row[1])
            points.append((x, y))
    return labels, groups, np.asarray(points, dtype=np.float64).reshape(-1, 2)
