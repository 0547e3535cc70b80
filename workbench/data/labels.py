"""Label vocabularies and sparse multi-hot label matrices.

A multi-label data set is a list of *label sets*, one per image. This module turns
those sets into the two objects every later step reads:

* :class:`Vocabulary` — label name ↔ column index, with an optional group and
  subgroup per label (the emoji scenes use the Unicode group and subgroup);
* a scipy CSR matrix of shape ``(num_images, num_labels)`` with a 1 where image
  ``n`` carries label ``c`` (:func:`label_matrix`).

Duplicate labels inside one set count once. Images with an empty label set are kept
(they still count in the number of images ``N`` that PMI divides by) and are
reported by :func:`summarize_label_sets`.
"""

from __future__ import annotations

import csv
import difflib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import scipy.sparse as sp

__all__ = [
    "Vocabulary",
    "control_character",
    "label_matrix",
    "label_sets_from_matrix",
    "summarize_label_sets",
    "LABEL_MATRIX_DTYPE",
]

#: The dtype of every label matrix: one byte per stored 1. Counting code upcasts.
LABEL_MATRIX_DTYPE = np.uint8

#: Characters no label name may hold: C0 controls (tab, newline, carriage return, …), DEL, C1
#: controls and the Unicode line and paragraph separators; each would split a one-line output
#: (a Projector TSV row, ``classify``'s text, a CSV cell read by another program).
_CONTROL_CHARACTERS = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def control_character(text: str) -> str | None:
    """The first control character or line break in ``text`` (as ``repr`` shows it, ``'\\t'``), or None.

    Parameters
    ----------
    text : str
        A label, group or subgroup name.

    Returns
    -------
    str or None
    """
    found = _CONTROL_CHARACTERS.search(text)
    return None if found is None else repr(found.group())


def _control_character_message(what: str, text: str, character: str) -> str:
    return (f"{what} ({text!r}) contains the control character {character}; a name is one line of printable "
            "text: remove tabs, line breaks and other control characters.")


@dataclass(frozen=True)
class Vocabulary:
    """An ordered set of label names, optionally with a group and subgroup each.

    Parameters
    ----------
    names : sequence of str
        Label names; position ``i`` is the label's column in label matrices and its
        row in label embeddings. Names must be unique, non-empty and one line of
        printable text (no tab, line break or other control character; the same for
        groups and subgroups).
    groups : sequence of str, optional
        One group name per label (for example the Unicode emoji group).
    subgroups : sequence of str, optional
        One subgroup name per label (for example the Unicode emoji subgroup).
    """

    names: tuple[str, ...]
    groups: tuple[str, ...] | None = None
    subgroups: tuple[str, ...] | None = None
    _index: dict = field(init=False, repr=False, compare=False, hash=False)

    def __post_init__(self):
        names = tuple(str(name) for name in self.names)
        object.__setattr__(self, "names", names)
        for attribute in ("groups", "subgroups"):
            values = getattr(self, attribute)
            if values is not None:
                values = tuple("" if value is None else str(value) for value in values)
                if len(values) != len(names):
                    raise ValueError(
                        f"Vocabulary got {len(names)} names but {len(values)} {attribute}; "
                        f"give one {attribute[:-1]} per label."
                    )
                object.__setattr__(self, attribute, values)
        for attribute in ("groups", "subgroups"):
            for position, value in enumerate(getattr(self, attribute) or ()):
                character = control_character(value)
                if character is not None:
                    raise ValueError(_control_character_message(f"The {attribute[:-1]} of label {position}", value, character))
        index = {}
        for position, name in enumerate(names):
            if not name.strip():
                raise ValueError(f"Label {position} has an empty name; every label needs a name.")
            character = control_character(name)
            if character is not None:
                raise ValueError(_control_character_message(f"Label {position}", name, character))
            if name in index:
                raise ValueError(f"Label {name!r} appears twice in the vocabulary; names must be unique.")
            index[name] = position
        object.__setattr__(self, "_index", index)

    # -- construction -------------------------------------------------------------
    @classmethod
    def from_label_sets(cls, label_sets: Iterable[Iterable[str]], *, sort: bool = True) -> "Vocabulary":
        """Build the vocabulary of every label that occurs in ``label_sets``.

        Parameters
        ----------
        label_sets : iterable of iterables of str
            One label set per image.
        sort : bool, default=True
            Sort names alphabetically; otherwise keep the order of first appearance.
        """
        seen: dict[str, None] = {}
        for label_set in label_sets:
            for label in label_set:
                seen.setdefault(str(label), None)
        names = sorted(seen) if sort else list(seen)
        return cls(tuple(names))

    @classmethod
    def read_csv(cls, path: str | Path) -> "Vocabulary":
        """Read a ``label,group,subgroup`` CSV (``group`` and ``subgroup`` optional)."""
        path = Path(path)
        # utf-8-sig: spreadsheet programs often start CSV files with a byte-order mark.
        with path.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            if reader.fieldnames is None or "label" not in reader.fieldnames:
                raise ValueError(f"{path}: expected a header row starting with 'label'; found {reader.fieldnames}.")
            rows = list(reader)
        names = [row["label"] or "" for row in rows]

        def column(name):
            # An absent or all-empty column reads as None, so that write_csv/read_csv round-trips
            # a vocabulary without groups (write_csv writes empty cells for it).
            if name not in reader.fieldnames:
                return None
            values = [row.get(name) or "" for row in rows]
            return values if any(values) else None

        groups = column("group")
        subgroups = column("subgroup")
        try:
            return cls(tuple(names), None if groups is None else tuple(groups), None if subgroups is None else tuple(subgroups))
        except ValueError as error:
            raise ValueError(f"{path}: {error}") from None

    def write_csv(self, path: str | Path) -> None:
        """Write the vocabulary as ``label,group,subgroup`` CSV (atomically)."""
        from workbench._io import atomic_write_text
        import io

        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(["label", "group", "subgroup"])
        for position, name in enumerate(self.names):
            writer.writerow([name, self.group_of(position), self.subgroup_of(position)])
        atomic_write_text(path, buffer.getvalue())

    # -- access -------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.names)

    def __iter__(self):
        return iter(self.names)

    def __contains__(self, name: object) -> bool:
        return name in self._index

    def __getitem__(self, position: int) -> str:
        return self.names[position]

    @property
    def num_labels(self) -> int:
        """Number of labels ``C``."""
        return len(self.names)

    def index(self, name: str) -> int:
        """Column index of ``name``; a ``KeyError`` naming close matches if unknown."""
        try:
            return self._index[name]
        except KeyError:
            raise KeyError(self.unknown_label_message(name)) from None

    def indices(self, names: Iterable[str]) -> np.ndarray:
        """Column indices of ``names`` as an int64 array."""
        return np.fromiter((self.index(name) for name in names), dtype=np.int64)

    def unknown_label_message(self, name: str) -> str:
        """A one-line message for an unknown label, with the closest known names."""
        close = difflib.get_close_matches(str(name), self.names, n=5, cutoff=0.5)
        if not close:
            lowered = str(name).lower()
            close = [known for known in self.names if lowered in known.lower()][:5]
        hint = f" Did you mean: {', '.join(repr(c) for c in close)}?" if close else ""
        return f"Unknown label {name!r} (the vocabulary has {len(self)} labels).{hint}"

    def group_of(self, position: int) -> str:
        return self.groups[position] if self.groups is not None else ""

    def subgroup_of(self, position: int) -> str:
        return self.subgroups[position] if self.subgroups is not None else ""

    def subset(self, positions: Sequence[int]) -> "Vocabulary":
        """The vocabulary restricted to ``positions`` (in that order)."""
        positions = [int(p) for p in positions]
        pick = lambda values: None if values is None else tuple(values[p] for p in positions)  # noqa: E731
        return Vocabulary(tuple(self.names[p] for p in positions), pick(self.groups), pick(self.subgroups))

    def to_dict(self) -> dict:
        """A JSON-serialisable form (``names``, and ``groups``/``subgroups`` when present)."""
        out = {"names": list(self.names)}
        if self.groups is not None:
            out["groups"] = list(self.groups)
        if self.subgroups is not None:
            out["subgroups"] = list(self.subgroups)
        return out

    @classmethod
    def from_dict(cls, data: dict) -> "Vocabulary":
        groups = data.get("groups")
        subgroups = data.get("subgroups")
        return cls(
            tuple(data["names"]),
            None if groups is None else tuple(groups),
            None if subgroups is None else tuple(subgroups),
        )


def label_matrix(label_sets: Sequence[Iterable[str]], vocabulary: Vocabulary) -> sp.csr_matrix:
    """Sparse multi-hot matrix of shape ``(num_images, num_labels)``.

    Parameters
    ----------
    label_sets : sequence of iterables of str, length N
        One label set per image. Duplicates inside a set count once.
    vocabulary : Vocabulary
        Maps names to columns. A label missing from it raises ``ValueError``.

    Returns
    -------
    scipy.sparse.csr_matrix of shape (N, C), dtype uint8
        Sorted column indices in each row, no duplicates, every stored value 1.
    """
    indptr = np.zeros(len(label_sets) + 1, dtype=np.int64)
    columns: list[int] = []
    index = vocabulary._index
    for row, label_set in enumerate(label_sets):
        if isinstance(label_set, (str, bytes)):
            raise ValueError(
                f"Image {row} has the string {label_set!r} as its label set; give a list or tuple of labels."
            )
        try:
            unique = sorted({index[label] for label in label_set})
        except KeyError as error:
            raise ValueError(
                f"Image {row} has label {error.args[0]!r}, which is not in the vocabulary; "
                "build the vocabulary from the same label sets or add the label."
            ) from None
        columns.extend(unique)
        indptr[row + 1] = len(columns)
    indices = np.asarray(columns, dtype=np.int32)
    data = np.ones(len(indices), dtype=LABEL_MATRIX_DTYPE)
    index_dtype = np.int32 if len(indices) < np.iinfo(np.int32).max else np.int64
    matrix = sp.csr_matrix(
        (data, indices.astype(index_dtype), indptr.astype(index_dtype)),
        shape=(len(label_sets), len(vocabulary)),
    )
    matrix.has_sorted_indices = True
    return matrix


def label_sets_from_matrix(matrix: sp.spmatrix, vocabulary: Vocabulary) -> list[tuple[str, ...]]:
    """Inverse of :func:`label_matrix`: the label set of every row, in column order.

    Parameters
    ----------
    matrix : sparse or dense array of shape (N, C)
        Every nonzero entry is a label (explicit zeros and duplicate entries are ignored).
    vocabulary : Vocabulary
        Names of the ``C`` columns; a different number of labels raises ``ValueError``.

    Returns
    -------
    list of tuple of str, length N
    """
    matrix = _canonical_csr(matrix)
    if matrix.shape[1] != len(vocabulary):
        raise ValueError(
            f"The label matrix has {matrix.shape[1]} columns but the vocabulary has {len(vocabulary)} labels; "
            "use the vocabulary the matrix was built with."
        )
    names = vocabulary.names
    return [
        tuple(names[c] for c in sorted(matrix.indices[matrix.indptr[r] : matrix.indptr[r + 1]]))
        for r in range(matrix.shape[0])
    ]


def summarize_label_sets(matrix: sp.spmatrix) -> dict:
    """Counts a user should see before computing PMI.

    Parameters
    ----------
    matrix : sparse or dense array of shape (N, C)
        Multi-hot label matrix; every nonzero entry is a label.

    Returns
    -------
    dict
        ``num_images``, ``num_labels``, ``num_empty_images`` (images with no label,
        kept and counted in N), ``mean_labels_per_image``, ``max_labels_per_image``,
        ``num_unused_labels`` (labels that never occur).
    """
    matrix = _canonical_csr(matrix)
    per_image = np.diff(matrix.indptr)
    per_label = np.bincount(matrix.indices, minlength=matrix.shape[1])
    return {
        "num_images": int(matrix.shape[0]),
        "num_labels": int(matrix.shape[1]),
        "num_empty_images": int(np.count_nonzero(per_image == 0)),
        "mean_labels_per_image": float(per_image.mean()) if len(per_image) else 0.0,
        "max_labels_per_image": int(per_image.max()) if len(per_image) else 0,
        "num_unused_labels": int(np.count_nonzero(per_label == 0)),
    }


def _canonical_csr(matrix) -> sp.csr_matrix:
    """A CSR copy without duplicate entries or stored zeros, so that stored entries are the labels."""
    matrix = sp.csr_matrix(matrix, copy=True)
    matrix.sum_duplicates()
    matrix.eliminate_zeros()
    return matrix
