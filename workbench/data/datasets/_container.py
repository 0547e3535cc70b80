"""The multi-label data-set container every step of the workbench reads."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import scipy.sparse as sp

from workbench.data.labels import Vocabulary, label_matrix

__all__ = ["MultiLabelDataset"]


@dataclass(frozen=True, eq=False)
class MultiLabelDataset:
    """Images with a set of labels each.

    Parameters
    ----------
    image_paths : tuple of str, length N
        Image file paths, relative to ``root`` (or absolute). Empty strings when the
        images live in memory only.
    label_sets : tuple of tuple of str, length N
        The labels of each image (duplicates removed, order kept).
    vocabulary : Vocabulary
        Every label of the data set; its order fixes label-matrix columns.
    root : pathlib.Path, optional
        Folder that relative ``image_paths`` are resolved against.
    images : ndarray of shape (N, height, width, 3), dtype uint8, optional
        The images themselves, when generated in memory.
    name : str
        A short human-readable name (used in summaries and run configs).
    format : str
        The format it was read from (``"list-csv"``, ``"coco"``, ``"scenes"`` …).
    clean_label_sets : tuple of tuple of str, length N, optional
        The clean labels of each image, when the data set knows them (generated emoji
        scenes: the labels of the glyphs drawn, before label noise); ``None`` otherwise.
        Only measured against (``map_at_100_clean``), never trained on; not part of
        :meth:`fingerprint`.
    """

    image_paths: tuple[str, ...]
    label_sets: tuple[tuple[str, ...], ...]
    vocabulary: Vocabulary
    root: Path | None = None
    images: np.ndarray | None = None
    name: str = "dataset"
    format: str = "memory"
    clean_label_sets: tuple[tuple[str, ...], ...] | None = None
    _cache: dict = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self):
        object.__setattr__(self, "image_paths", tuple(str(p) for p in self.image_paths))
        object.__setattr__(
            self, "label_sets", tuple(tuple(dict.fromkeys(str(label) for label in s)) for s in self.label_sets)
        )
        if len(self.image_paths) != len(self.label_sets):
            raise ValueError(
                f"{len(self.image_paths)} image paths but {len(self.label_sets)} label sets; give one label set per image."
            )
        if self.clean_label_sets is not None:
            object.__setattr__(self, "clean_label_sets", tuple(
                tuple(dict.fromkeys(str(label) for label in s)) for s in self.clean_label_sets))
            if len(self.clean_label_sets) != len(self.label_sets):
                raise ValueError(f"{len(self.clean_label_sets)} clean label sets but {len(self.label_sets)} label sets; "
                                 "give one clean label set per image.")
        if self.images is not None and len(self.images) != len(self.label_sets):
            raise ValueError(f"{len(self.images)} images but {len(self.label_sets)} label sets; give one label set per image.")
        if self.root is not None:
            object.__setattr__(self, "root", Path(self.root))

    def __len__(self) -> int:
        return len(self.label_sets)

    @property
    def num_images(self) -> int:
        return len(self.label_sets)

    @property
    def num_labels(self) -> int:
        return len(self.vocabulary)

    @property
    def labels(self) -> sp.csr_matrix:
        """Multi-hot label matrix, shape ``(N, C)``, dtype uint8 (computed once)."""
        if "labels" not in self._cache:
            self._cache["labels"] = label_matrix(self.label_sets, self.vocabulary)
        return self._cache["labels"]

    @property
    def clean_labels(self) -> sp.csr_matrix | None:
        """Multi-hot clean label matrix, shape ``(N, C)``, dtype uint8; ``None`` when the data set does not know them."""
        if self.clean_label_sets is None:
            return None
        if "clean_labels" not in self._cache:
            self._cache["clean_labels"] = label_matrix(self.clean_label_sets, self.vocabulary)
        return self._cache["clean_labels"]

    def path_of(self, position: int) -> Path:
        """Absolute path of image ``position``."""
        path = Path(self.image_paths[position])
        if not path.is_absolute() and self.root is not None:
            path = self.root / path
        return path

    def subset(self, positions: Sequence[int], *, name: str | None = None) -> "MultiLabelDataset":
        """The images at ``positions`` (same vocabulary)."""
        positions = np.asarray(positions, dtype=np.int64)
        return MultiLabelDataset(
            image_paths=tuple(self.image_paths[p] for p in positions),
            label_sets=tuple(self.label_sets[p] for p in positions),
            vocabulary=self.vocabulary,
            root=self.root,
            images=None if self.images is None else self.images[positions],
            name=name or self.name,
            format=self.format,
            clean_label_sets=None if self.clean_label_sets is None else tuple(self.clean_label_sets[p] for p in positions),
        )

    def split(self, *, validation_fraction: float = 0.2, random_state: int = 0):
        """Shuffle and split into ``(train, validation)`` data sets.

        Parameters
        ----------
        validation_fraction : float in (0, 1)
            Share of images that go to the validation split (at least one image each).
        random_state : int
            Seed of the shuffle.
        """
        if not 0.0 < validation_fraction < 1.0:
            raise ValueError(f"validation_fraction must be between 0 and 1 (exclusive); got {validation_fraction}.")
        if len(self) < 2:
            raise ValueError(f"Cannot split a data set of {len(self)} image(s); it needs at least 2.")
        order = np.random.default_rng(random_state).permutation(len(self))
        num_validation = min(max(1, int(round(validation_fraction * len(self)))), len(self) - 1)
        return (
            self.subset(np.sort(order[num_validation:]), name=f"{self.name} (train)"),
            self.subset(np.sort(order[:num_validation]), name=f"{self.name} (validation)"),
        )

    def fingerprint(self) -> str:
        """A short hash of the image references, labels, vocabulary and (when in memory) pixels.

        Equal for data sets that would train the same model; used by trained runs and the
        notebook workspace to tell whether an artefact was made from this data.

        Returns
        -------
        str
            16 hex digits.
        """
        import hashlib

        digest = hashlib.sha256()
        labels = self.labels
        digest.update(np.asarray(labels.shape, dtype=np.int64).tobytes())
        digest.update(np.asarray(labels.indptr, dtype=np.int64).tobytes())
        digest.update(np.asarray(labels.indices, dtype=np.int64).tobytes())
        digest.update("\n".join(self.image_paths).encode("utf-8"))
        digest.update("\n".join(self.vocabulary.names).encode("utf-8"))
        if self.images is not None:
            digest.update(np.ascontiguousarray(self.images).tobytes())
        return digest.hexdigest()[:16]

    def summary(self) -> dict:
        """Image and label counts (see :func:`workbench.data.labels.summarize_label_sets`)."""
        from workbench.data.labels import summarize_label_sets

        return {"name": self.name, "format": self.format, **summarize_label_sets(self.labels)}
