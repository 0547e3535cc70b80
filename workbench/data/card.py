"""The data card of a data set: how often each label is seen in training, and which glyphs look alike.

``workbench scenes`` and ``wb.scenes(out_dir=…)`` write a card beside the data set
(``DIR/card.json`` and ``DIR/card.md``) so that a reader knows, before any training, what
the data can support:

**Per-label training counts.** How many images of the training split carry each label
(the split every call makes: ``validation_fraction`` held out, shuffled by
``split_random_state``), for the noisy labels (those counted for PMI and trained on) and
the clean ones (the glyphs drawn). The card gives the minimum, the median and how many
labels fall below ``min_count`` (default :data:`MIN_COUNT`): a label seen in fewer training
images has a PMI row of a handful of pairs.

**Look-alike glyphs.** Pairs of labels whose glyphs are (near-)identical at the sizes the
generator draws them, so that no model could tell them apart: the ceiling of every head.
Each glyph is taken as drawn, premultiplied RGBA on the 0–255 scale (two glyphs with
equal premultiplied values look the same on every background), and two glyphs are
compared by the root-mean-square difference over their ``s × s × 4`` values
(:func:`glyph_distances`). A pair *looks alike at a size* when that distance is at most
``threshold`` (default :data:`LOOK_ALIKE_RMS` = 8 of 255: of the order of the Gaussian
noise, σ 3 to 12, on half of the scenes' backgrounds); *identical* when it is at most 1 at
every size. Pairs that only look alike when one of them is mirrored are listed apart
(``under_flip``): training's augmentation flips images horizontally by default
(``ModelConfig.flip``), so a leftward glyph is then shown with its label pointing right.
Glyphs are cropped to their ink before they are scaled, so glyphs that differ only in size
(a large and a medium square) are identical in the scenes.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np

from workbench._io import atomic_write_json, atomic_write_text

__all__ = ["MIN_COUNT", "LOOK_ALIKE_RMS", "CARD_FORMAT", "training_counts", "glyph_distances", "look_alike_pairs",
           "dataset_card", "card_markdown", "write_card", "card_summary"]

#: A label seen in fewer training images than this is reported as rare (its PMI row has few pairs).
MIN_COUNT = 20
#: Root-mean-square difference (0–255, premultiplied RGBA) at or below which two glyphs look alike.
LOOK_ALIKE_RMS = 8.0
#: At or below this at every size, two glyphs are counted as identical.
IDENTICAL_RMS = 1.0
CARD_FORMAT = "workbench-data-card"
_BLOCK = 512  # rows of the distance matrix computed at once


def training_counts(labels, *, validation_fraction: float, split_random_state: int) -> tuple[np.ndarray, np.ndarray]:
    """Images of the training split that carry each label.

    The split is :meth:`MultiLabelDataset.split`'s: a permutation of the ``N`` images seeded
    by ``split_random_state``, the first ``round(validation_fraction · N)`` held out.

    Parameters
    ----------
    labels : scipy.sparse matrix of shape (N, C)
        Multi-hot labels of the whole data set.
    validation_fraction : float in [0, 1)
        0 counts every image.
    split_random_state : int

    Returns
    -------
    counts : ndarray of shape (C,), dtype int64
    train_rows : ndarray of shape (N_train,), dtype int64
        The training images' positions, sorted.
    """
    num_images = labels.shape[0]
    if validation_fraction == 0 or num_images < 2:
        rows = np.arange(num_images)
    else:
        order = np.random.default_rng(split_random_state).permutation(num_images)
        held_out = min(max(1, int(round(validation_fraction * num_images))), num_images - 1)
        rows = np.sort(order[held_out:])
    counts = np.asarray((labels[rows] > 0).sum(axis=0), dtype=np.int64).ravel()
    return counts, rows


def _premultiplied(glyphs: np.ndarray) -> np.ndarray:
    """(C, s, s, 4) straight-alpha uint8 RGBA → (C, s, s, 4) float64 premultiplied, 0–255."""
    glyphs = np.asarray(glyphs, dtype=np.float64)
    alpha = glyphs[..., 3:] / 255.0
    return np.concatenate([glyphs[..., :3] * alpha, glyphs[..., 3:]], axis=-1)


def glyph_distances(glyphs: np.ndarray, *, mirror: bool = False) -> np.ndarray:
    """Root-mean-square difference between every two glyphs (premultiplied RGBA, 0–255).

    Parameters
    ----------
    glyphs : ndarray of shape (C, s, s, 4)
        Straight-alpha RGBA glyphs (uint8 or float on the 0–255 scale), one per label.
    mirror : bool, default=False
        Compare each glyph with the *horizontal mirror image* of every other one.

    Returns
    -------
    ndarray of shape (C, C), dtype float64
        ``D[i, j] = sqrt(mean((g_i − g_j)²))`` over the ``s · s · 4`` values (``g_j``
        mirrored when ``mirror``); symmetric, 0 on the diagonal unless ``mirror``.
    """
    values = _premultiplied(glyphs)
    first = values.reshape(len(values), -1)
    second = (values[:, :, ::-1] if mirror else values).reshape(len(values), -1)
    first_norms, second_norms = (first**2).sum(axis=1), (second**2).sum(axis=1)
    distances = np.empty((len(values), len(values)))
    for start in range(0, len(values), _BLOCK):  # |a − b|² = |a|² + |b|² − 2 a·b, a block of rows at a time
        block = first[start : start + _BLOCK]
        squared = first_norms[start : start + _BLOCK, None] + second_norms[None] - 2.0 * block @ second.T
        distances[start : start + _BLOCK] = np.sqrt(np.maximum(squared, 0.0) / first.shape[1])
    for i, j in zip(*np.nonzero(distances < 1.0)):  # the expansion loses digits for near-equal glyphs: exactly there
        distances[i, j] = np.sqrt(np.mean((first[i] - second[j]) ** 2))
    if not mirror:
        np.fill_diagonal(distances, 0.0)
    return distances


def look_alike_pairs(glyphs_by_size: Mapping[int, np.ndarray], names, *, threshold: float = LOOK_ALIKE_RMS) -> list[dict]:
    """Pairs of labels whose glyphs look alike at one or more of the sizes drawn.

    Parameters
    ----------
    glyphs_by_size : mapping of int to ndarray of shape (C, s, s, 4)
        Each glyph size the data set draws, with every label's glyph at that size.
    names : sequence of str, length C
    threshold : float, default=LOOK_ALIKE_RMS

    Returns
    -------
    list of dict
        One per pair ``i < j`` alike at some size, as drawn or with one mirrored:
        ``first``, ``second`` (names), ``distances`` (the RMS at each size, smallest size first),
        ``alike_at`` (the sizes where the distance is at most ``threshold``),
        ``under_flip`` (True when the pair only looks alike with one glyph mirrored;
        then ``distances`` and ``alike_at`` are of the mirrored comparison) and
        ``identical`` (at most :data:`IDENTICAL_RMS` at every size). Sorted by the
        distance at the smallest size.
    """
    sizes = sorted(int(size) for size in glyphs_by_size)
    names = [str(name) for name in names]
    if not sizes:
        return []
    plain = {size: glyph_distances(glyphs_by_size[size]) for size in sizes}
    mirrored = {size: glyph_distances(glyphs_by_size[size], mirror=True) for size in sizes}
    mirrored = {size: np.minimum(d, d.T) for size, d in mirrored.items()}  # either glyph mirrored
    pairs = []
    for distances, under_flip in ((plain, False), (mirrored, True)):
        alike = np.zeros_like(distances[sizes[0]], dtype=bool)
        for size in sizes:
            alike |= distances[size] <= threshold
        if under_flip:
            as_drawn = np.zeros_like(alike)
            for size in sizes:
                as_drawn |= plain[size] <= threshold
            alike &= ~as_drawn
        first, second = np.nonzero(np.triu(alike, k=1))
        for i, j in zip(first.tolist(), second.tolist()):
            values = [float(distances[size][i, j]) for size in sizes]
            pairs.append({"first": names[i], "second": names[j], "distances": values,
                          "alike_at": [size for size, value in zip(sizes, values) if value <= threshold],
                          "under_flip": under_flip, "identical": max(values) <= IDENTICAL_RMS})
    pairs.sort(key=lambda pair: (pair["under_flip"], pair["distances"][0], pair["first"], pair["second"]))
    return pairs


def _count_summary(counts: np.ndarray, min_count: int) -> dict:
    return {"min": int(counts.min()), "median": float(np.median(counts)), "mean": float(counts.mean()),
            "max": int(counts.max()), "below_min_count": int((counts < min_count).sum()), "zero": int((counts == 0).sum())}


def dataset_card(dataset, *, validation_fraction: float, split_random_state: int = 0, min_count: int = MIN_COUNT,
                 glyphs_by_size: Mapping[int, np.ndarray] | None = None, threshold: float = LOOK_ALIKE_RMS,
                 image_size: int | None = None, settings: dict | None = None) -> dict:
    """The card of a data set: per-label training counts and, given the glyphs, look-alike pairs.

    Parameters
    ----------
    dataset : MultiLabelDataset
        Its ``labels`` (and ``clean_labels`` when known) are counted on the training split.
    validation_fraction : float in [0, 1)
        The share held out by the split the counts are made on (0: every image).
    split_random_state : int, default=0
    min_count : int, default=MIN_COUNT
        Labels seen in fewer training images are counted and listed as rare.
    glyphs_by_size : mapping of int to ndarray of shape (C, s, s, 4), optional
        Every label's glyph at each size drawn (:meth:`SceneGenerator.glyphs_by_size`);
        without it the card has no look-alikes section.
    threshold : float, default=LOOK_ALIKE_RMS
    image_size : int, optional
        Recorded with the look-alikes (the glyph sizes are fractions of it).
    settings : dict, optional
        Recorded as the card's ``settings`` (the generator's configuration).

    Returns
    -------
    dict
        ``format``, ``data`` (name, images, labels, image size), ``split``, ``counts``
        (``noisy`` and ``clean`` summaries: min, median, mean, max, below_min_count, zero;
        ``per_label``: label → [noisy, clean] training counts; ``rarest``),
        ``look_alikes`` (``None`` without glyphs) and ``settings``.
    """
    min_count = int(min_count)
    names = list(dataset.vocabulary.names)
    noisy, rows = training_counts(dataset.labels, validation_fraction=validation_fraction,
                                  split_random_state=split_random_state)
    clean = None
    if dataset.clean_label_sets is not None:
        clean, _ = training_counts(dataset.clean_labels, validation_fraction=validation_fraction,
                                   split_random_state=split_random_state)
    order = np.lexsort((np.arange(len(names)), noisy))
    card = {
        "format": CARD_FORMAT, "version": 1,
        "data": {"name": dataset.name, "num_images": len(dataset), "num_labels": len(names), "image_size": image_size},
        "split": {"validation_fraction": float(validation_fraction), "split_random_state": int(split_random_state),
                  "num_train": int(len(rows))},
        "counts": {
            "min_count": min_count,
            "noisy": _count_summary(noisy, min_count),
            "clean": None if clean is None else _count_summary(clean, min_count),
            "rarest": [{"label": names[c], "count": int(noisy[c]), "clean_count": None if clean is None else int(clean[c])}
                       for c in order[: max(10, int((noisy < min_count).sum()))]],
            "per_label": {name: [int(noisy[c]), None if clean is None else int(clean[c])] for c, name in enumerate(names)},
        },
        "look_alikes": None,
        "settings": settings or {},
    }
    if glyphs_by_size:
        sizes = sorted(int(size) for size in glyphs_by_size)
        pairs = look_alike_pairs(glyphs_by_size, names, threshold=threshold)
        drawn = [pair for pair in pairs if not pair["under_flip"]]
        card["look_alikes"] = {
            "distance": "root-mean-square difference of premultiplied RGBA glyphs, 0-255",
            "threshold": float(threshold), "glyph_sizes": sizes,
            "pairs": pairs,
            "num_pairs": len(drawn),
            "num_pairs_at_size": {str(size): sum(size in pair["alike_at"] for pair in drawn) for size in sizes},
            "num_pairs_every_size": sum(len(pair["alike_at"]) == len(sizes) for pair in drawn),
            "num_identical": sum(pair["identical"] for pair in drawn),
            "num_labels_involved": len({name for pair in drawn for name in (pair["first"], pair["second"])}),
            "num_pairs_under_flip": len(pairs) - len(drawn),
        }
    return card


def card_summary(card: dict) -> str:
    """One line: the training counts and the look-alike pairs (what ``workbench scenes`` prints)."""
    counts = card["counts"]
    noisy = counts["noisy"]
    line = (f"training split ({card['split']['num_train']} images): images per label min {noisy['min']}, median "
            f"{noisy['median']:g}, {noisy['below_min_count']} of {card['data']['num_labels']} labels below {counts['min_count']}")
    alike = card["look_alikes"]
    if alike is not None:
        line += (f"; {alike['num_pairs']} look-alike glyph pairs ({alike['num_identical']} identical, "
                 f"{alike['num_labels_involved']} labels), {alike['num_pairs_under_flip']} more under a horizontal flip")
    return line


def _cell(value) -> str:
    return str(value).replace("|", "\\|")


def card_markdown(card: dict) -> str:
    """The card as Markdown (``card.md``): counts, the rarest labels, every look-alike pair."""
    data, split, counts = card["data"], card["split"], card["counts"]
    lines = [f"# Data card: {data['name']}", "",
             f"{data['num_images']} images, {data['num_labels']} labels"
             + (f", {data['image_size']}×{data['image_size']} pixels" if data.get("image_size") else "") + ".",
             f"Counts are made on the training split: {split['num_train']} images "
             f"(validation fraction {split['validation_fraction']:g}, split seed {split['split_random_state']}).", ""]
    config = (card.get("settings") or {}).get("config")
    if config:
        lines += ["Generated with " + ", ".join(f"{key} {value}" for key, value in config.items()) + ".", ""]
    lines += ["## Training images per label", "",
              "| labels | min | median | mean | max | below " + str(counts["min_count"]) + " | never seen |",
              "|---|---:|---:|---:|---:|---:|---:|"]
    for kind in ("noisy", "clean"):
        summary = counts[kind]
        if summary is None:
            continue
        what = "noisy (trained on, counted for PMI)" if kind == "noisy" else "clean (the glyphs drawn)"
        lines.append(f"| {what} | {summary['min']} | {summary['median']:g} | {summary['mean']:.1f} | {summary['max']} | "
                     f"{summary['below_min_count']} | {summary['zero']} |")
    lines += ["", f"Rarest labels (training images, noisy / clean): " + "; ".join(
        f"{_cell(row['label'])} {row['count']}" + ("" if row["clean_count"] is None else f" / {row['clean_count']}")
        for row in counts["rarest"][:30]) + ("; …" if len(counts["rarest"]) > 30 else ""), ""]
    alike = card["look_alikes"]
    lines += ["## Look-alike glyphs", ""]
    if alike is None:
        lines.append("No glyphs were given: the look-alikes are not known for this data set.")
        return "\n".join(lines) + "\n"
    sizes = alike["glyph_sizes"]
    lines += [f"Glyphs are drawn at {', '.join(f'{size}' for size in sizes)} pixels. Two glyphs look alike at a size when "
              f"the {alike['distance']} is at most {alike['threshold']:g}; no model can tell such a pair apart where "
              "it is drawn at that size, so these labels bound every head's score.", "",
              f"- {alike['num_pairs']} pairs look alike at one size or more ("
              + ", ".join(f"{alike['num_pairs_at_size'][str(size)]} at {size} px" for size in sizes)
              + f"); {alike['num_pairs_every_size']} at every size; {alike['num_identical']} are identical "
              f"(RMS ≤ {IDENTICAL_RMS:g} at every size); {alike['num_labels_involved']} labels are in such a pair.",
              f"- {alike['num_pairs_under_flip']} more pairs look alike when one glyph is mirrored (training flips "
              "images horizontally by default).", "",
              "| first | second | " + " | ".join(f"RMS at {size} px" for size in sizes) + " | alike at | mirrored |",
              "|---|---|" + "---:|" * len(sizes) + "---|---|"]
    for pair in alike["pairs"]:
        lines.append(f"| {_cell(pair['first'])} | {_cell(pair['second'])} | "
                     + " | ".join(f"{value:.1f}" for value in pair["distances"])
                     + f" | {', '.join(map(str, pair['alike_at']))} | {'yes' if pair['under_flip'] else ''} |")
    return "\n".join(lines) + "\n"


def write_card(card: dict, out_dir: str | Path) -> None:
    """Write ``DIR/card.json`` (the card) and ``DIR/card.md`` (:func:`card_markdown`), each atomically."""
    out_dir = Path(out_dir)
    atomic_write_json(out_dir / "card.json", card)
    atomic_write_text(out_dir / "card.md", card_markdown(card))
