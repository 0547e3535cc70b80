"""2-D maps of label embeddings: a fast cached UMAP (or PCA) layout, its CSV, and ``workbench map``'s job.

:func:`label_coordinates` places every row of a ``(N, k)`` matrix (label vectors, and
optionally images' predicted vectors after them) on a plane:

* ``"umap"``: the exact ``n_neighbors`` nearest neighbours of every unit row by cosine, in
  the full space (blocks of BLAS products, the best of each row kept by a compiled kernel on
  both cores), laid out by umap-learn starting from the rows' first two principal
  components. The exact search spares umap-learn's approximate one (pynndescent), whose numba
  compilation was most of a cold start, and the PCA start spares a spectral start per
  disconnected cluster; umap-learn's own compiled functions are kept in numba's disk cache, so
  only the first layout after installing compiles them. Neighbours found on a few leading
  principal components instead are faster but mostly wrong: on the benchmark's 17,000-label
  embedding at k = 1,024 the first 64 components hold 14 % of the variance, 31 % of the
  neighbours found on them are the true ones, and the map's trustworthiness drops from 0.78
  to 0.74. By default both cores update the layout at once (``deterministic=False``):
  ``random_state`` seeds the start, and the order of the updates varies, so two runs differ
  slightly. ``deterministic=True`` runs umap-learn seeded on one core: the same coordinates
  every time, for a slower layout (``benchmarks/bench_labelmap.py`` measures both).
* ``"pca"``: the first two principal components of the unit rows: instant, deterministic,
  but clusters overlap.

A layout is kept in ``cache`` (a folder; ``$XDG_CACHE_HOME/pmi-workbench/labelmaps`` with
``cache=True``), keyed by a SHA-256 of the vectors and every setting, so reopening the same
map costs a file read. :func:`write_coordinates_csv` writes ``label,group,count,x,y`` atomically,
:func:`read_coordinates_csv` reads it back, and :func:`write_label_map` is ``workbench map``:
coordinates and picture of any embedding folder. :class:`ImagePoints` holds images as points of
the same space (a run's predicted vectors), laid out jointly with the labels by the explorer.
"""

from __future__ import annotations

import contextlib
import csv
import functools
import hashlib
import io
import json
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from workbench import _checks

__all__ = ["label_coordinates", "ImagePoints", "layout_key", "default_cache_dir", "write_coordinates_csv", "read_coordinates_csv",
           "write_label_map", "MAP_METHODS", "COORDINATES_HEADER", "MAP_TEXTS", "MAP_ARGUMENTS"]

#: The layouts :func:`label_coordinates` knows.
MAP_METHODS = ("umap", "pca")
#: The columns of :func:`write_coordinates_csv` (``count`` is empty when the label counts are unknown).
COORDINATES_HEADER = ["label", "group", "count", "x", "y"]
#: Part of every cache key: raise it when the layout's algorithm changes.
_LAYOUT_VERSION = 4
#: UMAP needs a handful of points to build its neighbour graph and spectral start.
_MIN_UMAP_LABELS = 5


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/pmi-workbench/labelmaps`` (or ``~/.cache/pmi-workbench/labelmaps``)."""
    from workbench.data.emoji import default_cache_dir as workbench_cache

    return workbench_cache() / "labelmaps"


def _settings(method, *, random_state, deterministic, n_neighbors, min_dist) -> dict:
    if method == "pca":
        return {"method": "pca", "version": _LAYOUT_VERSION}
    return {"method": "umap", "version": _LAYOUT_VERSION, "random_state": int(random_state),
            "deterministic": bool(deterministic), "n_neighbors": int(n_neighbors), "min_dist": float(min_dist)}


def layout_key(vectors, settings: dict) -> str:
    """The cache key of a layout: SHA-256 (24 hex digits) of the float32 vectors, their shape and ``settings``."""
    array = np.ascontiguousarray(vectors, dtype=np.float32)
    digest = hashlib.sha256()
    digest.update(json.dumps({"shape": list(array.shape), **settings}, sort_keys=True).encode())
    digest.update(array.data)
    return digest.hexdigest()[:24]


def _cache_folder(cache) -> Path | None:
    if cache is None or cache is False:
        return None
    return default_cache_dir() if cache is True else Path(cache)


def label_coordinates(
    vectors,
    *,
    method: str = "umap",
    random_state: int = 0,
    deterministic: bool = False,
    n_neighbors: int = 15,
    min_dist: float = 0.1,
    cache=None,
) -> np.ndarray:
    """2-D coordinates of label vectors (cosine geometry: only their directions matter).

    Parameters
    ----------
    vectors : array-like of shape (N, k)
        Label vectors (rows in vocabulary order), optionally followed by more points of the
        same space (images' predicted vectors) for a joint layout.
    method : {"umap", "pca"}
        ``"umap"`` (needs at least 5 rows): umap-learn on the exact ``n_neighbors`` nearest
        neighbours by cosine (``n_neighbors`` capped at ``N - 1``), started from the first two
        principal components. ``"pca"``: the first two principal
        components of the unit rows, signs fixed so that the largest loading of each
        component is positive.
    random_state : int
        Seed of UMAP's start and sampling (PCA is deterministic).
    deterministic : bool, default=False
        UMAP only. False: both cores, coordinates differ slightly from run to run. True:
        one core, the same coordinates for the same ``random_state`` every time (slower).
    n_neighbors, min_dist
        UMAP settings.
    cache : bool or path-like, optional
        Folder keeping layouts by :func:`layout_key` (``True``: :func:`default_cache_dir`;
        None or False: compute every time). PCA is never cached (it is instant).

    Returns
    -------
    ndarray of shape (N, 2), dtype float32
    """
    vectors = np.asarray(vectors, dtype=np.float32)
    if vectors.ndim != 2 or vectors.shape[0] < 2:
        raise ValueError(f"label_coordinates needs a (num_labels >= 2, embedding_dim) matrix; got shape {vectors.shape}.")
    if not np.all(np.isfinite(vectors)):
        raise ValueError("Label vectors contain NaN or infinite values; recompute the embedding.")
    method = _checks.choice(method, "map method", MAP_METHODS)
    norms = np.linalg.norm(vectors.astype(np.float64), axis=1, keepdims=True)
    unit = np.divide(vectors, norms, out=np.zeros_like(vectors), where=norms > 0).astype(np.float32)
    if method == "pca":
        return _principal_components(unit, 2, fix_signs=True).astype(np.float32)
    num_points = vectors.shape[0]
    if num_points < _MIN_UMAP_LABELS:
        raise ValueError(f"UMAP needs at least {_MIN_UMAP_LABELS} labels (got {num_points}); use method='pca'.")
    n_neighbors = _checks.integer(n_neighbors, "n_neighbors", minimum=2)
    settings = _settings(method, random_state=random_state, deterministic=deterministic, n_neighbors=n_neighbors,
                         min_dist=min_dist)
    folder = _cache_folder(cache)
    path = folder / f"{layout_key(vectors, settings)}.npy" if folder is not None else None
    if path is not None and path.is_file():
        with contextlib.suppress(OSError, ValueError):
            cached = np.load(path, allow_pickle=False)
            if cached.shape == (num_points, 2) and np.all(np.isfinite(cached)):
                return cached.astype(np.float32)
    coordinates = _umap_layout(unit, random_state=int(random_state), deterministic=bool(deterministic),
                               n_neighbors=int(min(n_neighbors, num_points - 1)), min_dist=float(min_dist))
    if path is not None:
        from workbench._io import atomic_write_bytes

        buffer = io.BytesIO()
        np.save(buffer, coordinates, allow_pickle=False)
        with contextlib.suppress(OSError):  # a read-only or full cache never stops the map
            path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_bytes(path, buffer.getvalue(), durable=False)
    return coordinates


def _principal_components(unit: np.ndarray, count: int, *, fix_signs: bool = False) -> np.ndarray:
    """The rows of ``unit`` centred and projected on their ``count`` leading principal axes, ``(N, count)`` float64."""
    if unit.shape[1] <= 4 * count or unit.shape[0] <= 4 * count:
        centred = unit.astype(np.float64) - unit.astype(np.float64).mean(axis=0)
        _, _, axes = np.linalg.svd(centred, full_matrices=False)
    else:  # k×k covariance: float32 BLAS products and a small symmetric eigensolve, a second at 17,000 × 1,024
        centred = unit.astype(np.float32) - unit.astype(np.float64).mean(axis=0).astype(np.float32)
        values, vectors = np.linalg.eigh((centred.T @ centred).astype(np.float64))
        axes = vectors[:, np.argsort(values)[::-1]].T
    axes = axes[:count].astype(centred.dtype)
    if axes.shape[0] < count:
        axes = np.vstack([axes, np.zeros((count - axes.shape[0], axes.shape[1]))])
    if fix_signs:
        signs = np.sign(axes[np.arange(count), np.argmax(np.abs(axes), axis=1)])
        signs[signs == 0] = 1.0
        axes = axes * signs[:, None]
    return (centred @ axes.T).astype(np.float64)


def _nearest_neighbours(unit: np.ndarray, n_neighbors: int, *, block_bytes: int = 64 << 20) -> tuple[np.ndarray, np.ndarray]:
    """The exact ``n_neighbors`` nearest unit rows of every unit row, itself first: ``(N, n)`` int64 and float32.

    Nearest by cosine (largest dot product; ties by row order); the distances are Euclidean
    between unit rows, ``sqrt(2 - 2 cos)``. Blocks of rows are multiplied by every row (BLAS,
    float32, at most ``block_bytes`` of products at a time), and a compiled kernel keeps each
    row's best on both cores.
    """
    unit = np.ascontiguousarray(unit, dtype=np.float32)
    num_points = unit.shape[0]
    indices = np.empty((num_points, n_neighbors), dtype=np.int64)
    best = np.empty((num_points, n_neighbors), dtype=np.float32)
    rows = max(1, min(num_points, block_bytes // (4 * num_points)))
    keep_best = _best_of_rows()
    for start in range(0, num_points, rows):
        keep_best(unit[start:start + rows] @ unit.T, start, indices[start:start + rows], best[start:start + rows])
    distances = np.sqrt(np.clip(2.0 - 2.0 * best, 0.0, None)).astype(np.float32)
    distances[:, 0] = 0.0  # itself
    return indices, distances


@functools.lru_cache(maxsize=None)
def _best_of_rows():
    """The compiled kernel of :func:`_nearest_neighbours` (numba, parallel over rows, kept in numba's disk cache)."""
    import numba

    @numba.njit(parallel=True, cache=True)
    def best_of_rows(products, first_row, indices, best):  # pragma: no cover - compiled
        count = indices.shape[1]
        for row in numba.prange(products.shape[0]):
            for position in range(count):
                best[row, position] = -np.inf
                indices[row, position] = -1
            for column in range(products.shape[1]):
                value = np.inf if column == first_row + row else products[row, column]  # itself first
                if value > best[row, count - 1]:  # strictly: a tie keeps the earlier row
                    position = count - 1
                    while position > 0 and best[row, position - 1] < value:
                        best[row, position] = best[row, position - 1]
                        indices[row, position] = indices[row, position - 1]
                        position -= 1
                    best[row, position] = value
                    indices[row, position] = column

    return best_of_rows


@contextlib.contextmanager
def _seeded_legacy_generator(seed: int):
    """NumPy's global legacy generator seeded for the block, then restored (umap-learn draws from it when unseeded)."""
    saved = np.random.get_state()
    np.random.seed(seed % 2**32)
    try:
        yield
    finally:
        np.random.set_state(saved)


def _import_umap():
    """umap-learn without TensorFlow, its compiled functions kept on disk.

    ``import umap`` imports ParametricUMAP, hence TensorFlow (3 s of a cold start): when TensorFlow
    is not loaded yet, ``umap.parametric_umap`` is marked missing while ``umap`` is imported
    (umap-learn then defines a stand-in ``ParametricUMAP`` that says TensorFlow is needed), and
    unmarked afterwards, so an explicit ``import umap.parametric_umap`` still works. And most of
    umap-learn's numba functions are compiled afresh in every process (they are not declared
    ``cache=True``): they are told to keep their machine code in numba's cache, so only the first
    layout after installing compiles them.
    """
    if "umap" in sys.modules or "tensorflow" in sys.modules:
        import umap
    else:
        sys.modules["umap.parametric_umap"] = None
        try:
            import umap
        finally:
            if sys.modules.get("umap.parametric_umap", 0) is None:
                del sys.modules["umap.parametric_umap"]
    _cache_compiled_functions(umap)
    return umap


def _cache_compiled_functions(umap) -> None:
    """Turn on numba's disk cache for umap-learn's jitted functions that were declared without it."""
    try:
        from numba.core.caching import NullCache
        from numba.core.dispatcher import Dispatcher
    except ImportError:  # another numba layout: compile in every process, as umap-learn does
        return
    for name in ("umap_", "layouts", "utils", "spectral", "distances", "sparse"):
        module = sys.modules.get(f"umap.{name}")
        for value in vars(module).values() if module is not None else ():
            if isinstance(value, Dispatcher) and isinstance(getattr(value, "_cache", None), NullCache):
                with contextlib.suppress(Exception):
                    value.enable_caching()


def _umap_layout(unit, *, random_state, deterministic, n_neighbors, min_dist) -> np.ndarray:
    import warnings

    points = np.ascontiguousarray(unit, dtype=np.float32)
    indices, distances = _nearest_neighbours(points, n_neighbors)
    start = _principal_components(points, 2, fix_signs=True).astype(np.float32) if len(points) > 10 else "random"
    umap = _import_umap()
    with warnings.catch_warnings():
        # umap warns that a fixed random_state disables parallelism (deterministic: the point), and
        # about a neighbour graph with several components (clusters that meet no other: laid out apart).
        warnings.filterwarnings("ignore", category=UserWarning, module="umap")
        warnings.filterwarnings("ignore", message=".*n_jobs.*", category=UserWarning)
        reducer = umap.UMAP(
            n_components=2, n_neighbors=n_neighbors, min_dist=min_dist, metric="euclidean",
            random_state=random_state if deterministic else None, n_jobs=1 if deterministic else -1,
            init=start, precomputed_knn=(indices, distances, None),
        )
        context = contextlib.nullcontext() if deterministic else _seeded_legacy_generator(random_state)
        with context:
            coordinates = reducer.fit_transform(points)
    return np.asarray(coordinates, dtype=np.float32)


# ---------------------------------------------------------------------------------
# images in the label space
# ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class ImagePoints:
    """Images as points of the label space: a run's predicted vectors and the images' true labels.

    Parameters
    ----------
    vectors : ndarray of shape (N, k), float32
        The model's outputs (an embedding head's predicted points), in the embedding's space.
    names : tuple of str
        One name per image (its file name).
    labels : tuple of tuple of str
        Each image's true labels.
    """

    vectors: np.ndarray
    names: tuple
    labels: tuple

    def __post_init__(self):
        vectors = np.asarray(self.vectors, dtype=np.float32)
        if vectors.ndim != 2 or not (len(self.names) == len(self.labels) == len(vectors)):
            raise ValueError(f"ImagePoints needs (N, k) vectors with N names and N label sets; got {vectors.shape}, "
                             f"{len(self.names)} names and {len(self.labels)} label sets.")
        object.__setattr__(self, "vectors", vectors)
        object.__setattr__(self, "names", tuple(str(name) for name in self.names))
        object.__setattr__(self, "labels", tuple(tuple(str(label) for label in labels) for labels in self.labels))

    @classmethod
    def of_run(cls, run, dataset, *, max_images: int | None = 2000, random_state: int = 0) -> "ImagePoints":
        """The validation images of ``dataset`` (split as ``run`` split it) through ``run``: at most ``max_images``, drawn at random.

        ``run`` must have an embedding head (its outputs are points of the label space).
        """
        if run.embedding is None:
            raise ValueError(f"the {run.head} head has no label vectors: its outputs are not points of the label space; "
                             "give a run of an embedding head (pmi, random, identity).")
        _, validation = run.splits(dataset)
        positions = np.arange(len(validation))
        if max_images is not None and len(positions) > max_images:
            positions = np.sort(np.random.default_rng(random_state).choice(positions, size=int(max_images), replace=False))
            validation = validation.subset(positions)
        vectors = run.predict_points(run.images_of(validation))
        # file names; images held in memory have none: "validation image i"
        names = tuple(Path(path).name or f"validation image {int(i)}" for path, i in zip(validation.image_paths, positions))
        return cls(vectors=vectors, names=names, labels=validation.label_sets)


# ---------------------------------------------------------------------------------
# coordinates CSV
# ---------------------------------------------------------------------------------
def write_coordinates_csv(path: str | Path, *, vocabulary, coordinates, counts=None) -> Path:
    """Write ``label,group,count,x,y`` (one row per label, vocabulary order) atomically.

    Parameters
    ----------
    path : path-like
    vocabulary : Vocabulary
        Names and groups (empty group when the vocabulary has none).
    coordinates : array-like of shape (C, 2)
    counts : array-like of shape (C,), optional
        Images per label (the ``count`` column is empty without them).
    """
    from workbench._io import atomic_write_text

    coordinates = np.asarray(coordinates, dtype=np.float64)
    if coordinates.shape != (len(vocabulary), 2):
        raise ValueError(f"coordinates must be ({len(vocabulary)}, 2), one row per label; got {coordinates.shape}.")
    if not np.all(np.isfinite(coordinates)):
        raise ValueError("coordinates contain NaN or infinite values; recompute the map.")
    if counts is not None:
        counts = np.asarray(counts)
        if counts.shape != (len(vocabulary),):
            raise ValueError(f"counts must have one value per label ({len(vocabulary)}); got shape {counts.shape}.")
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(COORDINATES_HEADER)
    for position, name in enumerate(vocabulary.names):
        x, y = coordinates[position]
        count = "" if counts is None else int(counts[position])
        writer.writerow([name, vocabulary.group_of(position), count, repr(float(x)), repr(float(y))])
    path = Path(path)
    atomic_write_text(path, buffer.getvalue())
    return path


def read_coordinates_csv(path: str | Path) -> tuple[list[str], list[str], np.ndarray]:
    """Read a file written by :func:`write_coordinates_csv`: ``(labels, groups, (C, 2) float64)``.

    Files of the older ``label,group,x,y`` layout are read too; read the counts with pandas.
    """
    path = Path(path)
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        if header not in (COORDINATES_HEADER, ["label", "group", "x", "y"]):
            raise ValueError(f"{path}: expected the header {','.join(COORDINATES_HEADER)}; found {header}.")
        width = len(header)
        labels, groups, points = [], [], []
        for line, row in enumerate(reader, start=2):
            if len(row) != width:
                raise ValueError(f"{path}, line {line}: expected {width} fields ({','.join(header)}); found {len(row)}.")
            try:
                x, y = float(row[-2]), float(row[-1])
            except ValueError:
                raise ValueError(f"{path}, line {line}: x and y must be numbers; found {row[-2]!r}, {row[-1]!r}.") from None
            if not (math.isfinite(x) and math.isfinite(y)):
                raise ValueError(f"{path}, line {line}: x and y must be finite numbers.")
            labels.append(row[0])
            groups.append(row[1])
            points.append((x, y))
    return labels, groups, np.asarray(points, dtype=np.float64).reshape(-1, 2)


# ---------------------------------------------------------------------------------
# workbench map
# ---------------------------------------------------------------------------------
#: ``workbench map``'s one-line help and description.
MAP_TEXTS = (
    "every label of an embedding on a 2-D map: coordinates CSV and picture",
    "Lay out every label of an embedding (UMAP of its leading principal components, or PCA), write DIR/coordinates.csv "
    "(label,group,count,x,y) and DIR/map.png, and print the layout time. A UMAP layout is kept in a cache keyed by the "
    "embedding's vectors and the settings, so mapping the same embedding again takes a file read.",
)
#: ``workbench map``'s arguments, ``(flag, argparse options)``; each ``dest`` is a keyword of :func:`write_label_map`.
MAP_ARGUMENTS = (
    ("embedding", {"metavar": "EMBEDDING", "help": "embedding folder (from 'workbench embed --out DIR')"}),
    ("--out", {"dest": "out", "required": True, "metavar": "DIR", "help": "output folder"}),
    ("--method", {"dest": "method", "default": MAP_METHODS[0], "choices": MAP_METHODS,
                  "help": "layout (default: umap; pca: instant, but clusters overlap)"}),
    ("--deterministic", {"dest": "deterministic", "action": "store_true",
                         "help": "UMAP seeded on one core: the same map on every run, slower"}),
    ("--seed", {"dest": "random_state", "type": int, "default": 0, "metavar": "S", "help": "seed of the layout (default: 0)"}),
    ("--no-cache", {"dest": "cache", "action": "store_false", "help": "neither read nor keep a cached layout"}),
)


def write_label_map(embedding, out: str | Path, *, method: str = "umap", random_state: int = 0,
                    deterministic: bool = False, cache=True) -> str:
    """``workbench map``'s job: ``out/coordinates.csv`` (``label,group,count,x,y``) and ``out/map.png``.

    Parameters
    ----------
    embedding : LabelEmbedding or path-like
        An embedding, or its folder (from ``workbench embed --out DIR``).
    out : path-like
        Output folder (created; the two files are replaced).
    method, random_state, deterministic, cache
        As :func:`label_coordinates` (cached in :func:`default_cache_dir` by default).

    Returns
    -------
    str
        What the command prints: the layout time (and whether it came from the cache) and the files written.
    """
    from workbench.apps.plot import plot_label_map, save_plot
    from workbench.method.embedding import LabelEmbedding

    if not isinstance(embedding, LabelEmbedding):
        embedding = LabelEmbedding.load(embedding)
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"{out} is a file; give a folder for coordinates.csv and map.png.")
    settings = _settings(method, random_state=random_state, deterministic=deterministic, n_neighbors=15, min_dist=0.1)
    folder = _cache_folder(cache)
    cached = method != "pca" and folder is not None and (folder / f"{layout_key(embedding.vectors, settings)}.npy").is_file()
    began = time.perf_counter()
    coordinates = label_coordinates(embedding.vectors, method=method, random_state=random_state,
                                    deterministic=deterministic, cache=cache)
    seconds = time.perf_counter() - began
    out.mkdir(parents=True, exist_ok=True)
    vocabulary = embedding.vocabulary
    write_coordinates_csv(out / "coordinates.csv", vocabulary=vocabulary, coordinates=coordinates,
                          counts=embedding.label_counts)
    groups = vocabulary.groups if vocabulary.groups is not None and any(vocabulary.groups) else None
    title = f"{len(vocabulary):,} labels × k = {embedding.embedding_dim} ({method.upper()} map)"
    legend = groups is not None and len(set(groups)) <= 14  # the picture's palette has 14 colours
    save_plot(plot_label_map, coordinates, out / "map.png", groups=groups, title=title, legend=legend)
    source = "read from the cache" if cached else ("computed" if method == "pca" or folder is None else "computed and cached")
    return (f"{len(vocabulary):,} labels laid out ({method}) in {seconds:.1f} s ({source}); "
            f"wrote {out / 'coordinates.csv'} and {out / 'map.png'}")
