"""Label co-occurrence counts: in memory, streamed in chunks, or on a Dask cluster.

For a binary label matrix ``X`` (``N × C``) the counts PMI needs are

* ``n_images`` — ``N``, images with an empty label set included;
* ``label_counts[i]`` — images carrying label ``i`` (column sums of ``X``);
* ``pair_counts[i, j]`` — images carrying both ``i`` and ``j`` (``XᵀX`` off the
  diagonal; the diagonal is 0 because it would only repeat ``label_counts``).

``pair_counts`` is a symmetric scipy CSR matrix of int64, so memory grows with the
number of label pairs that actually co-occur, not with ``C²``; chunked counting
bounds memory by the chunk, not by ``N``. The JSON layout of
:meth:`CooccurrenceCounts.save_json` is the one of the real COCO and VOC counts in
``../shared/data/cooccurrence``.

Why one module of about 550 lines: the counts artefact and the three ways of counting
(in memory, in chunks, on Dask from label shards) share one invariant checker and one
canonical CSR form; apart, each would need the other's private helpers.
"""

from __future__ import annotations

import functools
import json
import operator
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import scipy.sparse as sp

from workbench import _checks
from workbench.data.labels import Vocabulary

__all__ = [
    "CooccurrenceCounts",
    "count_cooccurrence",
    "count_cooccurrence_chunks",
    "count_cooccurrence_dask",
    "count_label_shards",
    "write_label_shards",
    "read_label_shard",
]

#: Images per chunk: bounds the temporary memory of one sparse product ``XᵀX``
#: (int32 per chunk, so a chunk must stay below 2**31 images).
DEFAULT_CHUNK_SIZE = 1_000_000


@dataclass(frozen=True, eq=False)
class CooccurrenceCounts:
    """How often each label and each pair of labels occurs in ``n_images`` images.

    Parameters
    ----------
    n_images : int
        Number of images ``N`` (images without labels included).
    vocabulary : Vocabulary
        The ``C`` labels, in row/column order.
    label_counts : ndarray of shape (C,), dtype int64
        Images carrying each label.
    pair_counts : scipy.sparse.csr_matrix of shape (C, C), dtype int64
        Images carrying both labels; symmetric, zero diagonal, no stored zeros.
    """

    n_images: int
    vocabulary: Vocabulary
    label_counts: np.ndarray
    pair_counts: sp.csr_matrix

    def __post_init__(self):
        label_counts, pair_counts = _validated(self.n_images, self.vocabulary, self.label_counts, self.pair_counts)
        object.__setattr__(self, "n_images", int(self.n_images))
        object.__setattr__(self, "label_counts", label_counts)
        object.__setattr__(self, "pair_counts", pair_counts)

    def __repr__(self) -> str:
        return (
            f"CooccurrenceCounts(n_images={self.n_images}, num_labels={self.num_labels}, "
            f"num_pairs={self.pair_counts.nnz // 2})"
        )

    @property
    def num_labels(self) -> int:
        """Number of labels ``C``."""
        return len(self.vocabulary)

    def fingerprint(self) -> str:
        """A short hash (16 hex digits) of ``N``, the label names, and the label and pair counts."""
        import hashlib

        digest = hashlib.sha256()
        pairs = self.pair_counts
        digest.update(np.int64(self.n_images).tobytes())
        digest.update("\n".join(self.vocabulary.names).encode("utf-8"))
        for array in (self.label_counts, pairs.indptr, pairs.indices, pairs.data):
            digest.update(np.asarray(array, dtype=np.int64).tobytes())
        return digest.hexdigest()[:16]

    def summary(self) -> dict:
        """Numbers worth printing: images, labels, co-occurring pairs, unused labels."""
        num_labels = self.num_labels
        return {
            "n_images": self.n_images,
            "num_labels": num_labels,
            "num_pairs": int(self.pair_counts.nnz // 2),
            "pair_density": float(self.pair_counts.nnz / max(num_labels * (num_labels - 1), 1)),
            "num_unused_labels": int(np.count_nonzero(self.label_counts == 0)),
            "mean_labels_per_image": float(self.label_counts.sum() / self.n_images) if self.n_images else 0.0,
        }

    # -- the JSON layout --------------------------------------------------------------
    def save_json(self, path: str | Path, *, description: str | None = None) -> Path:
        """Write the counts in the layout of the shared COCO/VOC files (atomically).

        ``{"description", "n_images", "labels", "label_counts", "pair_counts"}`` where
        ``pair_counts`` is a dense list of ``C`` lists of ``C`` ints (diagonal 0). The
        file grows with ``C²`` (about 2 bytes per pair); rows are streamed to disk.
        """
        from workbench._io import atomic_path

        path = Path(path)
        description = description or "Images per label (label_counts) and images per label pair (pair_counts, diagonal 0)."
        head = {
            "description": description,
            "n_images": self.n_images,
            "labels": list(self.vocabulary.names),
            "label_counts": self.label_counts.tolist(),
        }
        matrix = self.pair_counts
        with atomic_path(path) as temporary, open(temporary, "w", encoding="utf-8") as stream:
            stream.write(json.dumps(head, ensure_ascii=False)[:-1] + ', "pair_counts": [')
            row = np.zeros(self.num_labels, dtype=np.int64)
            for i in range(self.num_labels):
                start, stop = matrix.indptr[i], matrix.indptr[i + 1]
                row[matrix.indices[start:stop]] = matrix.data[start:stop]
                stream.write(("," if i else "") + "\n[" + ", ".join(map(str, row.tolist())) + "]")
                row[matrix.indices[start:stop]] = 0
            stream.write("\n]}\n")
        return path

    @classmethod
    def load_json(cls, path: str | Path) -> "CooccurrenceCounts":
        """Read and validate counts written by :meth:`save_json` (or the shared files).

        Every problem is a one-line ``ValueError`` naming the file and the key.
        """
        from workbench._io import read_json

        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no such counts file; give a JSON written by 'workbench embed --save-counts'.")
        data = read_json(path)
        try:
            return cls.from_dict(data)
        except ValueError as error:
            raise ValueError(f"{path}: {error}") from None

    @classmethod
    def from_dict(cls, data: dict) -> "CooccurrenceCounts":
        """Build counts from the JSON layout (a dict), validating every key."""
        if not isinstance(data, dict):
            raise ValueError("expected a JSON object with keys n_images, labels, label_counts, pair_counts.")
        for key in ("n_images", "labels", "label_counts", "pair_counts"):
            if key not in data:
                raise ValueError(f"missing key {key!r}; expected keys n_images, labels, label_counts, pair_counts.")
        n_images = data["n_images"]
        n_images = _checks.integer(n_images, "'n_images'", minimum=0)
        labels = data["labels"]
        if not isinstance(labels, list) or not all(isinstance(name, str) for name in labels):
            raise ValueError("'labels' must be a list of label names (strings).")
        try:
            vocabulary = Vocabulary(tuple(labels))
        except ValueError as error:
            raise ValueError(f"'labels': {error}") from None
        label_counts = _integer_array(data["label_counts"], "label_counts", ndim=1)
        pair_counts = _integer_array(data["pair_counts"], "pair_counts", ndim=2)
        return cls(n_images=n_images, vocabulary=vocabulary, label_counts=label_counts, pair_counts=pair_counts)


def _integer_array(value, key: str, *, ndim: int) -> np.ndarray:
    shape = "a list of integers" if ndim == 1 else "a list of equal-length lists of integers"
    where = _boolean_at(value)
    if where is not None:  # NumPy would read [true, 3] as [1, 3]; JSON booleans are not counts
        raise ValueError(f"{key!r} must be {shape}; got a boolean (true/false, not an integer) at {key}{where}.")
    try:
        array = np.array(value)
    except ValueError:
        raise ValueError(f"{key!r} must be {shape}; its rows have different lengths.") from None
    if array.ndim != ndim or not (np.issubdtype(array.dtype, np.integer) or array.size == 0):
        raise ValueError(f"{key!r} must be {shape}; got an array of {array.dtype} with shape {array.shape}.")
    return array.astype(np.int64)


def _boolean_at(value) -> str | None:
    """Where a list (or a list of lists) read from JSON holds a boolean (``"[2]"``, ``"[0][1]"``), or None."""
    if not isinstance(value, list):
        return None
    for row_index, row in enumerate(value):
        if isinstance(row, bool):
            return f"[{row_index}]"
        if isinstance(row, list):
            for column_index, item in enumerate(row):
                if isinstance(item, bool):
                    return f"[{row_index}][{column_index}]"
    return None


def _validated(n_images, vocabulary, label_counts, pair_counts) -> tuple[np.ndarray, sp.csr_matrix]:
    """Check every invariant; return int64 ``label_counts`` and canonical CSR ``pair_counts``."""
    _checks.integer(n_images, "'n_images'", minimum=0)
    if not isinstance(vocabulary, Vocabulary):
        raise ValueError(f"vocabulary must be a workbench.data.labels.Vocabulary; got {type(vocabulary).__name__}.")
    num_labels = len(vocabulary)
    label_counts = np.asarray(label_counts)
    if label_counts.shape != (num_labels,):
        raise ValueError(f"'label_counts' has shape {label_counts.shape} but there are {num_labels} labels; give one count per label.")
    if label_counts.size and not np.issubdtype(label_counts.dtype, np.integer):
        raise ValueError(f"'label_counts' must hold integers; got {label_counts.dtype}.")
    label_counts = label_counts.astype(np.int64)
    if np.any(label_counts < 0):
        bad = int(np.flatnonzero(label_counts < 0)[0])
        raise ValueError(f"'label_counts' has a negative count ({label_counts[bad]}) for label {vocabulary[bad]!r}; counts must be >= 0.")
    if np.any(label_counts > n_images):
        bad = int(np.flatnonzero(label_counts > n_images)[0])
        raise ValueError(
            f"'label_counts' for {vocabulary[bad]!r} is {label_counts[bad]}, more than n_images={n_images}; check the counts."
        )
    if pair_counts is None or (not sp.issparse(pair_counts) and np.asarray(pair_counts).ndim != 2):
        raise ValueError("'pair_counts' must be a (num_labels, num_labels) matrix.")
    if pair_counts.shape != (num_labels, num_labels):
        raise ValueError(f"'pair_counts' has shape {pair_counts.shape} but there are {num_labels} labels; it must be {num_labels} x {num_labels}.")
    if sp.issparse(pair_counts) and pair_counts.dtype.kind not in "iu" and pair_counts.nnz:
        raise ValueError(f"'pair_counts' must hold integers; got {pair_counts.dtype}.")
    if not sp.issparse(pair_counts) and np.asarray(pair_counts).dtype.kind not in "iu" and np.asarray(pair_counts).size:
        raise ValueError(f"'pair_counts' must hold integers; got {np.asarray(pair_counts).dtype}.")
    matrix = _canonical_int64(pair_counts)
    rows = np.repeat(np.arange(num_labels, dtype=np.int64), np.diff(matrix.indptr))
    columns, values = matrix.indices, matrix.data
    if np.any(values < 0):
        k = int(np.flatnonzero(values < 0)[0])
        raise ValueError(f"'pair_counts'[{rows[k]}][{columns[k]}] is {values[k]}; pair counts must be >= 0.")
    on_diagonal = rows == columns
    if np.any(on_diagonal):
        k = int(np.flatnonzero(on_diagonal)[0])
        raise ValueError(
            f"'pair_counts'[{rows[k]}][{rows[k]}] is {values[k]}; the diagonal must be 0 (a label's own count goes in label_counts)."
        )
    transposed = matrix.T.tocsr()  # canonical: sorted indices, no duplicates
    if not (
        np.array_equal(transposed.indptr, matrix.indptr)
        and np.array_equal(transposed.indices, matrix.indices)
        and np.array_equal(transposed.data, matrix.data)
    ):
        asymmetry = (matrix - transposed).tocoo()
        asymmetry.eliminate_zeros()
        i, j = int(asymmetry.row[0]), int(asymmetry.col[0])
        raise ValueError(
            f"'pair_counts' is not symmetric: [{i}][{j}] is {matrix[i, j]} but [{j}][{i}] is {matrix[j, i]}; count each pair both ways."
        )
    too_big = values > np.minimum(label_counts[rows], label_counts[columns])
    if np.any(too_big):
        k = int(np.flatnonzero(too_big)[0])
        i, j = int(rows[k]), int(columns[k])
        raise ValueError(
            f"'pair_counts'[{i}][{j}] is {values[k]}, more than the label count of {vocabulary[i]!r} ({label_counts[i]}) "
            f"or {vocabulary[j]!r} ({label_counts[j]}); a pair cannot occur more often than either label."
        )
    union_too_big = label_counts[rows] + label_counts[columns] - values > n_images
    if np.any(union_too_big):
        k = int(np.flatnonzero(union_too_big)[0])
        raise ValueError(
            f"'pair_counts'[{rows[k]}][{columns[k]}] is {values[k]}, too small for label counts "
            f"{label_counts[rows[k]]} and {label_counts[columns[k]]} in n_images={n_images} images; check n_images."
        )
    return label_counts, matrix


def _canonical_int64(matrix) -> sp.csr_matrix:
    """CSR int64 with sorted indices, no duplicates and no stored zeros (copies, never mutates the input)."""
    if not sp.issparse(matrix):
        return sp.csr_matrix(np.asarray(matrix, dtype=np.int64))
    matrix = matrix.tocsr()
    canonical = matrix.has_canonical_format and (matrix.nnz == 0 or np.all(matrix.data != 0))
    matrix = sp.csr_matrix((matrix.data.astype(np.int64), matrix.indices, matrix.indptr), shape=matrix.shape, copy=not canonical)
    if not canonical:
        matrix.sum_duplicates()
        matrix.eliminate_zeros()
    matrix.has_canonical_format = True
    return matrix


# -- counting ----------------------------------------------------------------------------
def _binary_int32(chunk, num_labels: int, where: str) -> sp.csr_matrix:
    """A chunk of the label matrix as binary int32 CSR (any stored non-zero counts once)."""
    if not sp.issparse(chunk):
        chunk = np.asarray(chunk)
        if chunk.ndim != 2:
            raise ValueError(f"{where}: a label matrix must be 2-D (images x labels); got shape {chunk.shape}.")
    if chunk.shape[1] != num_labels:
        raise ValueError(
            f"{where}: the label matrix has {chunk.shape[1]} columns but the vocabulary has {num_labels} labels; "
            "use the vocabulary the matrix was built with."
        )
    chunk = sp.csr_matrix(chunk)
    if not chunk.has_canonical_format:  # never modify the caller's arrays
        chunk = chunk.copy()
        chunk.sum_duplicates()
    stored_zero = chunk.data == 0
    if not stored_zero.any():
        return sp.csr_matrix((np.ones(chunk.nnz, dtype=np.int32), chunk.indices, chunk.indptr), shape=chunk.shape)
    binary = sp.csr_matrix(
        ((~stored_zero).astype(np.int32), chunk.indices.copy(), chunk.indptr.copy()), shape=chunk.shape
    )
    binary.eliminate_zeros()
    return binary


def _count_block(binary: sp.csr_matrix) -> tuple[np.ndarray, sp.csr_matrix]:
    """Label counts (int64) and ``XᵀX`` with a zeroed diagonal (int32) of one binary block."""
    label_counts = np.bincount(binary.indices, minlength=binary.shape[1]).astype(np.int64)
    product = (binary.T.tocsr() @ binary).tocsr()
    rows = np.repeat(np.arange(product.shape[0], dtype=product.indices.dtype), np.diff(product.indptr))
    product.data[rows == product.indices] = 0  # the diagonal repeats label_counts
    return label_counts, product


def count_cooccurrence_chunks(
    chunks: Iterable, vocabulary: Vocabulary, *, progress: bool = False, total: int | None = None
) -> CooccurrenceCounts:
    """Count co-occurrences over a stream of label-matrix chunks.

    Only one chunk is in memory at a time, so ``N`` is bounded by disk, not memory.

    Parameters
    ----------
    chunks : iterable of sparse matrices or arrays of shape (n_chunk, C)
        Consecutive row blocks of the label matrix; any non-zero entry counts as 1.
    vocabulary : Vocabulary
        The ``C`` labels of the columns.
    progress : bool, default=False
        Show a tqdm progress bar (on stderr) over the chunks.
    total : int, optional
        Number of chunks, for the progress bar.

    Returns
    -------
    CooccurrenceCounts
    """
    num_labels = len(vocabulary)
    n_images = 0
    label_counts = np.zeros(num_labels, dtype=np.int64)
    pair_counts = None
    if progress:
        from tqdm.auto import tqdm

        chunks = tqdm(chunks, total=total, desc="counting co-occurrences", unit="chunk", leave=False)
    for number, chunk in enumerate(chunks):
        binary = _binary_int32(chunk, num_labels, f"chunk {number}")
        chunk_counts, chunk_pairs = _count_block(binary)
        n_images += binary.shape[0]
        label_counts += chunk_counts
        chunk_pairs = sp.csr_matrix((chunk_pairs.data.astype(np.int64), chunk_pairs.indices, chunk_pairs.indptr), shape=chunk_pairs.shape)
        pair_counts = chunk_pairs if pair_counts is None else (pair_counts + chunk_pairs).tocsr()
    if pair_counts is None:
        pair_counts = sp.csr_matrix((num_labels, num_labels), dtype=np.int64)
    return CooccurrenceCounts(n_images=n_images, vocabulary=vocabulary, label_counts=label_counts, pair_counts=pair_counts)


def count_cooccurrence(
    label_matrix, vocabulary: Vocabulary, *, chunk_size: int = DEFAULT_CHUNK_SIZE, progress: bool = False
) -> CooccurrenceCounts:
    """Count co-occurrences of an in-memory label matrix.

    Parameters
    ----------
    label_matrix : sparse matrix or array of shape (N, C)
        Multi-hot labels (:func:`workbench.data.labels.label_matrix`); non-zeros count as 1.
    vocabulary : Vocabulary
        The ``C`` labels of the columns.
    chunk_size : int, default=1_000_000
        Images per block of the sparse product ``XᵀX`` (bounds temporary memory).
    progress : bool, default=False
        Show a tqdm progress bar (on stderr).

    Returns
    -------
    CooccurrenceCounts
    """
    chunk_size = _checks.integer(chunk_size, "chunk_size")
    matrix = label_matrix if sp.issparse(label_matrix) else np.asarray(label_matrix)
    if matrix.ndim != 2:
        raise ValueError(f"The label matrix must be 2-D (images x labels); got shape {matrix.shape}.")
    if sp.issparse(matrix):
        matrix = sp.csr_matrix(matrix)
    num_images = matrix.shape[0]
    starts = range(0, num_images, int(chunk_size))
    return count_cooccurrence_chunks(
        (matrix[start : start + chunk_size] for start in starts),
        vocabulary,
        progress=progress,
        total=len(starts),
    ) if num_images else count_cooccurrence_chunks([matrix], vocabulary)


# -- shards and Dask ------------------------------------------------------------------------
def write_label_shards(
    label_matrix, vocabulary: Vocabulary, directory: str | Path, *, shard_size: int = 1_000_000
) -> list[Path]:
    """Split a label matrix into ``.npz`` CSR shards for :func:`count_cooccurrence_dask`.

    Writes ``shard-00000.npz``, ``shard-00001.npz`` … (:func:`scipy.sparse.save_npz`,
    ``(n_shard, C)`` uint8) and ``vocabulary.csv`` into ``directory``, each atomically.

    Returns
    -------
    list of pathlib.Path
        The shard paths, in row order.
    """
    from workbench._io import atomic_path

    shard_size = _checks.integer(shard_size, "shard_size")
    matrix = sp.csr_matrix(label_matrix)
    if matrix.shape[1] != len(vocabulary):
        raise ValueError(f"The label matrix has {matrix.shape[1]} columns but the vocabulary has {len(vocabulary)} labels.")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    vocabulary.write_csv(directory / "vocabulary.csv")
    paths = []
    for number, start in enumerate(range(0, max(matrix.shape[0], 1), int(shard_size))):
        path = directory / f"shard-{number:05d}.npz"
        with atomic_path(path, suffix=".npz") as temporary:
            sp.save_npz(temporary, matrix[start : start + shard_size].astype(np.uint8), compressed=False)
        paths.append(path)
    return paths


def read_label_shard(path: str | Path, *, vocabulary: Vocabulary | None = None) -> tuple[Vocabulary, sp.csr_matrix]:
    """Read one shard of labels.

    Two formats:

    * ``.npz`` — a CSR label matrix saved by :func:`scipy.sparse.save_npz`
      (:func:`write_label_shards`); needs ``vocabulary`` (its columns);
    * ``.csv`` — list-CSV, the layout of a data set's ``labels.csv`` (``image,labels``,
      the labels of an image joined by ``|``; read by
      :func:`workbench.data.datasets.read_list_csv`). Without ``vocabulary`` the shard's own
      labels, sorted, are used.

    Returns
    -------
    (Vocabulary, scipy.sparse.csr_matrix of shape (n_shard, C), dtype uint8)
    """
    from workbench.data.labels import label_matrix

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such label shard.")
    if path.suffix == ".npz":
        if vocabulary is None:
            raise ValueError(f"{path}: .npz shards store no label names; pass the vocabulary (vocabulary.csv beside the shards).")
        try:
            matrix = sp.load_npz(path).tocsr()
        except (ValueError, OSError, KeyError) as error:
            raise ValueError(f"{path}: not a scipy sparse .npz label matrix ({error}).") from None
        if matrix.shape[1] != len(vocabulary):
            raise ValueError(f"{path}: {matrix.shape[1]} columns but the vocabulary has {len(vocabulary)} labels; use the shards' vocabulary.")
        return vocabulary, matrix
    if path.suffix == ".csv":
        from workbench.data.datasets import read_list_csv

        # image_root: the shard's images are never opened (and not looked up on disk)
        dataset = read_list_csv(path, image_root=path.parent)
        vocabulary = vocabulary or dataset.vocabulary
        try:
            return vocabulary, label_matrix(dataset.label_sets, vocabulary)
        except ValueError as error:
            raise ValueError(f"{path}: {error}") from None
    raise ValueError(f"{path}: unknown shard format {path.suffix!r}; use .npz (CSR) or .csv (list-CSV) shards.")


def _count_shard(path: str, vocabulary: Vocabulary | None):
    """Dask task: the partial counts of one shard, as plain picklable parts."""
    shard_vocabulary, matrix = read_label_shard(path, vocabulary=vocabulary)
    label_counts, pair_counts = _count_block(_binary_int32(matrix, len(shard_vocabulary), str(path)))
    names = None if vocabulary is not None else shard_vocabulary.names
    return names, int(matrix.shape[0]), label_counts, pair_counts


def _merge_partials(*partials):
    """Dask task: sum partial counts; label names (when given) are unified, sorted."""
    n_images = sum(partial[1] for partial in partials)
    if partials[0][0] is None:
        return None, n_images, sum(p[2] for p in partials), functools.reduce(operator.add, (p[3] for p in partials)).tocsr()
    names = sorted(set().union(*(partial[0] for partial in partials)))
    position = {name: i for i, name in enumerate(names)}
    label_counts = np.zeros(len(names), dtype=np.int64)
    rows, columns, values = [], [], []
    for shard_names, _, shard_labels, shard_pairs in partials:
        mapping = np.fromiter((position[name] for name in shard_names), dtype=np.int64, count=len(shard_names))
        label_counts[mapping] += shard_labels
        coo = shard_pairs.tocoo()
        rows.append(mapping[coo.row])
        columns.append(mapping[coo.col])
        values.append(coo.data)
    pairs = sp.coo_matrix(
        (np.concatenate(values), (np.concatenate(rows), np.concatenate(columns))), shape=(len(names), len(names))
    ).tocsr()  # duplicates are summed
    return tuple(names), n_images, label_counts, pairs


def count_cooccurrence_dask(
    paths: Sequence[str | Path], *, client, vocabulary: Vocabulary | None = None, fan_in: int = 8
) -> CooccurrenceCounts:
    """Count co-occurrences over label shards on a ``dask.distributed`` cluster.

    Each shard is counted by one task (:func:`read_label_shard` formats); partial
    sparse counts are summed in a tree of tasks with ``fan_in`` inputs each, so
    only the final counts travel back to the client. Workers must see ``paths``.

    Parameters
    ----------
    paths : sequence of path-like
        The shards (``.npz`` or ``.csv``), in any order.
    client : distributed.Client
        A client of a running cluster (for example ``Client(LocalCluster())``).
    vocabulary : Vocabulary, optional
        The columns of ``.npz`` shards / the labels allowed in ``.csv`` shards. Without
        it, ``.csv`` shards are unified: the vocabulary is the sorted union of labels.
    fan_in : int, default=8
        Partial results summed per reduction task.

    Returns
    -------
    CooccurrenceCounts
        Identical to :func:`count_cooccurrence` on the concatenated shards.
    """
    paths = [str(path) for path in paths]
    if not paths:
        raise ValueError("No label shards given; pass at least one .npz or .csv shard.")
    fan_in = _checks.integer(fan_in, "fan_in", minimum=2)
    if client is None or not hasattr(client, "map"):
        raise ValueError("count_cooccurrence_dask needs a dask.distributed Client; start one with Client(LocalCluster()).")
    futures = client.map(_count_shard, paths, vocabulary=vocabulary, pure=False)
    while len(futures) > 1:
        futures = [
            client.submit(_merge_partials, *futures[start : start + fan_in], pure=False)
            for start in range(0, len(futures), fan_in)
        ]
    names, n_images, label_counts, pair_counts = futures[0].result()
    if names is None:
        names_vocabulary = vocabulary
    else:
        names, n_images, label_counts, pair_counts = _merge_partials((names, n_images, label_counts, pair_counts))
        names_vocabulary = Vocabulary(names)
    return CooccurrenceCounts(
        n_images=n_images, vocabulary=names_vocabulary, label_counts=label_counts, pair_counts=sp.csr_matrix(pair_counts)
    )


def count_label_shards(shards: Sequence[str | Path], out: str | Path, *, vocabulary=None, scheduler: str | None = None,
                       cores: int | None = None) -> str:
    """``workbench count``'s job: :func:`count_cooccurrence_dask` over ``shards`` on a Dask cluster, saved to ``out``.

    The cluster is the running ``scheduler`` (its workers must see the shards), or a local
    one of ``cores`` processes (default: every core, at most one per shard), closed after.
    ``vocabulary`` is a ``vocabulary.csv`` (needed by ``.npz`` shards). ``out`` must be a
    new file. Returns what was counted and written, in words.
    """
    import os

    from workbench._cluster import dask_client

    out = Path(out)
    if out.exists():
        raise ValueError(f"{out} exists; give --out a new file, so that nothing of yours is replaced.")
    missing = [shard for shard in shards if not Path(shard).is_file()]
    if missing:
        raise ValueError(f"label shard {missing[0]} not found{f' (and {len(missing) - 1} more)' if len(missing) > 1 else ''}.")
    vocabulary = Vocabulary.read_csv(vocabulary) if vocabulary else None
    shards = [str(Path(shard).resolve()) for shard in shards]
    if cores is not None and cores < 1:
        raise ValueError(f"--cores must be at least 1; got {cores}.")
    with dask_client(scheduler, workers=min(cores or os.cpu_count() or 1, len(shards))) as client:
        counts = count_cooccurrence_dask(shards, client=client, vocabulary=vocabulary)
    counts.save_json(out, description=f"counted by 'workbench count' over {len(shards)} label shard(s)")
    return (f"{counts.n_images} images, {len(counts.vocabulary)} labels, {counts.pair_counts.nnz // 2} label pairs "
            f"seen together; wrote {out}")
