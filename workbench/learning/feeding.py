"""The training data pipeline: batches of uint8 images and their targets.

:class:`ImageSource` gives images by position, either from a data set's in-memory
array or by decoding its image files with :func:`workbench.data.images.load_image` (one
batch at a time: nothing is loaded up front; each decoded image is kept in a cache
when the whole set fits ``cache_bytes``, so later epochs read memory).
:class:`LabelBatches` is a
``keras.utils.PyDataset`` over a source: it shuffles once per epoch with a seed that
depends only on ``(random_state, epoch)`` (so a resumed run sees the same order as an
uninterrupted one), builds the targets of a batch from the sparse label matrix, and
lets Keras prefetch batches on ``workers`` threads while the model trains (Pillow
releases the GIL while decoding, so threads overlap decoding with training).

Batches hold ``uint8`` images: normalisation and augmentation happen inside the model
(:mod:`workbench.learning.models`), on the accelerator when there is one, so the pipeline only
gathers bytes. Targets are float32: the sum of the label vectors of each image for
embedding heads, the multi-hot row for the sigmoid head.
"""

from __future__ import annotations

import math

import keras
import numpy as np
import scipy.sparse as sp

from workbench import _checks

__all__ = ["ImageSource", "LabelBatches", "batch_targets", "drop_unreadable", "DECODE_CACHE_BYTES"]

#: Decoded images of a data set on disk are cached in memory when they all fit in this
#: many bytes (64×64 RGB: 12 KiB an image, so about 170,000 images).
DECODE_CACHE_BYTES = 2 * 1024**3


class ImageSource:
    """Images of a data set by position, as ``(B, size, size, 3)`` uint8 batches.

    Parameters
    ----------
    dataset : MultiLabelDataset
        Uses ``dataset.images`` when present, else decodes ``dataset.path_of(i)``.
    image_size : int
        Side of the square images returned; in-memory images of another size are
        resized with the same filter as :func:`workbench.data.images.load_image`.
    cache_bytes : int, optional
        For a data set on disk: keep every decoded image in memory (decoded once, in
        the first epoch) when all of them take at most this many bytes; 0 never
        caches. Default :data:`DECODE_CACHE_BYTES`. Memory is only touched as
        images are decoded.

    Attributes
    ----------
    failures : dict
        ``{image path: reason}`` of every file that could not be decoded. Such a file
        never stops training: it comes back as a black image, its position is reported
        by :meth:`get_with_failures`, and :class:`LabelBatches` gives it a zero target
        (the cosine loss leaves zero targets out; for the sigmoid head it is a blank
        image with no label).
    """

    def __init__(self, dataset, *, image_size: int, cache_bytes: int | None = None):
        self.dataset = dataset
        self.image_size = int(image_size)
        self.images = dataset.images
        self._cache = None
        self._cached = None
        self.failures: dict[str, str] = {}
        if cache_bytes is None:
            cache_bytes = DECODE_CACHE_BYTES
        cache_bytes = _checks.integer(cache_bytes, "cache_bytes", minimum=0)
        if self.images is None and 0 < len(dataset) * self.image_size**2 * 3 <= cache_bytes:
            # np.empty maps pages lazily: memory grows with the images decoded so far
            self._cache = np.empty((len(dataset), self.image_size, self.image_size, 3), dtype=np.uint8)
            self._cached = np.zeros(len(dataset), dtype=bool)
        if self.images is not None:
            images = self.images
            if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
                raise ValueError(
                    f"In-memory images must be (N, H, W, 3) uint8; got {images.dtype} {images.shape}. "
                    "Convert them with workbench.data.images.load_images."
                )

    def __len__(self) -> int:
        return len(self.dataset)

    @property
    def in_memory(self) -> bool:
        return self.images is not None

    @property
    def num_cached(self) -> int:
        """Decoded images held in the cache (0 for in-memory data sets or without a cache)."""
        return 0 if self._cached is None else int(self._cached.sum())

    def get(self, positions) -> np.ndarray:
        """Images at ``positions``: ndarray of shape (B, size, size, 3), dtype uint8."""
        return self.get_with_failures(positions)[0]

    def get_with_failures(self, positions) -> tuple[np.ndarray, np.ndarray]:
        """Images at ``positions``, and which of them could not be decoded (black images, see :attr:`failures`).

        Returns
        -------
        images : ndarray of shape (B, size, size, 3), dtype uint8
        failed : ndarray of shape (B,), dtype bool
        """
        positions = np.asarray(positions, dtype=np.int64)
        size = self.image_size
        failed = np.zeros(len(positions), dtype=bool)
        if self.images is not None:
            batch = self.images[positions]
            if batch.shape[1:3] != (size, size):
                batch = np.stack([_resize(image, size) for image in batch]) if len(batch) else batch[:, :size, :size]
            return np.ascontiguousarray(batch), failed
        from workbench.data.images import load_image

        out = np.empty((len(positions), size, size, 3), dtype=np.uint8)
        for slot, position in enumerate(positions):
            if self._cached is not None and self._cached[position]:
                out[slot] = self._cache[position]
                continue
            path = self.dataset.path_of(int(position))
            try:
                out[slot] = load_image(path, size=size)
            except (ValueError, OSError) as error:  # one bad file never stops training
                out[slot] = 0
                failed[slot] = True
                self.failures[str(path)] = str(error)
                continue
            if self._cached is not None:
                # batches of one epoch are disjoint, so worker threads never share a slot
                self._cache[position] = out[slot]
                self._cached[position] = True
        return out, failed

    def load_all(self) -> np.ndarray:
        """Every image: ndarray of shape (N, size, size, 3), dtype uint8."""
        return self.get(np.arange(len(self)))


def drop_unreadable(*datasets, skip: bool) -> tuple[list, dict]:
    """The data sets without the image files that cannot be images (checked from their headers, before training).

    Parameters
    ----------
    *datasets : MultiLabelDataset
        For example the training and validation splits; data sets in memory pass as they are.
    skip : bool
        False: any unreadable file is a one-line ``ValueError`` naming it and how many
        there are, before anything is trained or written. True: those files are left out.

    Returns
    -------
    datasets : list of MultiLabelDataset
    skipped : dict
        ``{image path: reason}`` of the files left out.
    """
    from workbench.data.images import unreadable_images

    found = []
    for dataset in datasets:
        paths = [] if dataset.images is not None else [str(dataset.path_of(i)) for i in range(len(dataset))]
        found.append((paths, unreadable_images(paths) if paths else {}))
    bad = {path: reason for _, problems in found for path, reason in problems.items()}
    if bad and not skip:
        first, reason = next(iter(bad.items()))
        more = f" and {len(bad) - 1} more" if len(bad) > 1 else ""
        raise ValueError(f"{len(bad)} image file(s) cannot be read: {first} {reason}{more}; fix or remove them, "
                         "or leave them out with --skip-bad-images.")
    kept = []
    for dataset, (paths, problems) in zip(datasets, found):
        if problems:
            dataset = dataset.subset([i for i, path in enumerate(paths) if path not in problems], name=dataset.name)
        kept.append(dataset)
    return kept, bad


def _resize(image: np.ndarray, size: int) -> np.ndarray:
    from PIL import Image

    resized = Image.fromarray(image).resize((size, size), Image.Resampling.LANCZOS, reducing_gap=3.0)
    return np.asarray(resized, dtype=np.uint8)


def batch_targets(labels: sp.csr_matrix, positions, *, vectors: np.ndarray | None) -> np.ndarray:
    """Targets of the images at ``positions``.

    Parameters
    ----------
    labels : scipy.sparse.csr_matrix of shape (N, C)
    positions : array-like of int, length B
    vectors : ndarray of shape (C, k), optional
        Label vectors of an embedding head; ``None`` for multi-hot targets.

    Returns
    -------
    ndarray of shape (B, k) or (B, C), dtype float32
        ``labels[positions] @ vectors`` (zero rows for images without labels), or the
        multi-hot rows.
    """
    rows = labels[np.asarray(positions, dtype=np.int64)]
    if vectors is None:
        return rows.toarray().astype(np.float32)
    return np.asarray(rows.astype(np.float32) @ vectors, dtype=np.float32)


class LabelBatches(keras.utils.PyDataset):
    """Shuffled ``(images, targets)`` batches for ``model.fit`` (or images only for ``predict``).

    Parameters
    ----------
    source : ImageSource
    labels : scipy.sparse.csr_matrix of shape (N, C), optional
        Required when ``targets`` is true.
    vectors : ndarray of shape (C, k), optional
        Label vectors of an embedding head (targets are their sums); ``None`` gives
        multi-hot targets.
    batch_size : int
    shuffle : bool
        Shuffle every epoch and drop the last incomplete batch (training); otherwise
        keep the order and every image (prediction).
    targets : bool, default=True
        Yield ``(images, targets)``; otherwise images only.
    random_state : int, default=0
    start_epoch : int, default=0
        Epoch of the first pass (a resumed run starts at its next epoch).
    workers : int, default=2
        Threads that prepare batches ahead of the model.
    max_queue_size : int, default=8
        Batches prepared ahead.
    """

    def __init__(
        self,
        source: ImageSource,
        labels=None,
        *,
        vectors=None,
        batch_size: int,
        shuffle: bool,
        targets: bool = True,
        random_state: int = 0,
        start_epoch: int = 0,
        workers: int = 2,
        max_queue_size: int = 8,
    ):
        super().__init__(workers=max(1, int(workers)), use_multiprocessing=False, max_queue_size=int(max_queue_size))
        batch_size = _checks.integer(batch_size, "batch_size")
        if len(source) == 0:
            raise ValueError("No images to feed; the data set (or its split) is empty.")
        if targets:
            if labels is None:
                raise ValueError("LabelBatches needs labels to build targets; pass labels= or targets=False.")
            labels = sp.csr_matrix(labels)
            if labels.shape[0] != len(source):
                raise ValueError(f"{labels.shape[0]} label rows for {len(source)} images; give one row per image.")
        self.source = source
        self.labels = labels
        self.vectors = None if vectors is None else np.asarray(vectors, dtype=np.float32)
        self.batch_size = int(batch_size)
        self.shuffle = bool(shuffle)
        self.targets = bool(targets)
        self.random_state = int(random_state)
        self.epoch = int(start_epoch)
        self._order = self._epoch_order()

    def _epoch_order(self) -> np.ndarray:
        if not self.shuffle:
            return np.arange(len(self.source))
        return np.random.default_rng([self.random_state, self.epoch]).permutation(len(self.source))

    def __len__(self) -> int:
        if self.shuffle:
            return max(1, len(self.source) // self.batch_size)
        return math.ceil(len(self.source) / self.batch_size)

    def positions(self, index: int) -> np.ndarray:
        """Image positions of batch ``index`` in the current epoch."""
        if not 0 <= index < len(self):
            raise IndexError(f"batch {index} out of range (0..{len(self) - 1})")
        return self._order[index * self.batch_size : (index + 1) * self.batch_size]

    def __getitem__(self, index: int):
        positions = self.positions(int(index))
        images, failed = self.source.get_with_failures(positions)
        if not self.targets:
            return (images,)
        targets = batch_targets(self.labels, positions, vectors=self.vectors)
        targets[failed] = 0.0  # an undecodable image teaches nothing about its labels
        return images, targets

    def on_epoch_end(self):
        self.epoch += 1
        self._order = self._epoch_order()
