"""Emoji scenes: the workbench's built-in multi-label data with hundreds to thousands of labels.

Labels are Unicode emoji named by their CLDR short names, with their Unicode group
and subgroup (see :mod:`workbench.data.emoji`). A scene is a *topic*, a seeded mixture of
related subgroups (hand-named themes such as a kitchen or a farm, plus one generated
mixture anchored on every subgroup). Each image picks a topic (topic ``t`` in proportion to
``popularity_t ** (1 - topic_balance) * labels_t ** topic_balance``: its Zipf-skewed
popularity, or the number of labels it holds, or between), then draws ``min_labels``…``max_labels`` distinct labels from it (fewer labels are
likelier) with Zipf-skewed label popularity (the label of popularity rank ``r`` is drawn
in proportion to ``r ** -label_skew``); with probability ``unrelated_rate`` a draw comes
from the whole vocabulary instead. The defaults (``label_skew=1``, ``topic_balance=0``)
give the data sets of earlier versions bit for bit; a flatter ``label_skew`` and
``topic_balance=1`` let every label of a large vocabulary (``groups="all"``: about 1,870)
be seen often enough at a given number of images (the data card says how often:
:mod:`workbench.data.card`). Each drawn glyph is pasted at a random position
and one of three scales (overlap allowed, larger glyphs first) on a solid or
gradient background, half of them with light noise.

Web-scale label noise is optional: each drawn glyph loses its label with
probability ``missing_rate``, and each drawn glyph adds, with probability
``spurious_rate``, a label from the same topic whose glyph is not drawn. So
``min_labels``/``max_labels`` bound the glyphs drawn; noisy label sets can fall
outside those bounds (even be empty). Noise uses its own random stream: the images
and clean labels do not depend on the noise rates. The clean labels (those of the glyphs
drawn) are kept beside the noisy ones (``MultiLabelDataset.clean_label_sets``,
``DIR/clean_labels.csv``), so a run can also be scored on them (``map_at_100_clean``).

Images are generated in chunks of 256 with a random stream per chunk, so the first
``n`` images of a data set do not depend on ``num_images`` and a large data set can
be written chunk by chunk (:meth:`SceneGenerator.write`) without holding it in memory.

Why one module of about 750 lines: topics, label drawing, glyph pasting, noise and the
chunked writer are one generator whose random streams must stay in step; the glyphs
themselves (font, catalogue) live in :mod:`workbench.data.emoji`, the data card (counts,
look-alike glyphs) in :mod:`workbench.data.card`.
"""

from __future__ import annotations

import csv
import io
import re
import time
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from workbench._io import atomic_path, atomic_write_bytes, atomic_write_json, atomic_write_text, read_json
from workbench.data.datasets import MultiLabelDataset
from workbench.data.emoji import (
    EmojiCatalog,
    emoji_catalog,
    glyph_coverage,
    render_glyphs,
    resolve_font_path,
)
from workbench.data.labels import Vocabulary

__all__ = ["SceneConfig", "SceneGenerator", "emoji_catalog", "generate_scenes", "write_scenes"]

_CHUNK = 256  # images per random stream; part of the definition of a seed's output
_SCALES = (0.30, 0.42, 0.58)  # glyph side as a fraction of the image side
_LABEL_DECAY = 0.7  # P(k labels) ∝ 0.7 ** (k - min_labels)
_MARKER = "pmi-workbench-scenes"
_IMAGE_NAME = re.compile(r"\d{6,}\.png")
_OWN_ENTRIES = {"images", "labels.csv", "clean_labels.csv", "vocabulary.csv", "scenes.json", "card.json", "card.md"}

#: Hand-named scene themes (Unicode subgroups); themes with fewer than two subgroups in
#: the chosen vocabulary are dropped.
THEMES = {
    "kitchen": ("food-fruit", "food-vegetable", "food-prepared", "dishware", "drink", "household"),
    "restaurant": ("food-asian", "food-prepared", "food-marine", "dishware", "drink", "food-sweet"),
    "farm": ("animal-mammal", "animal-bird", "plant-other", "food-vegetable", "transport-ground"),
    "garden": ("plant-flower", "plant-other", "animal-bug", "tool", "animal-bird"),
    "seaside": ("animal-marine", "transport-water", "place-geographic", "sky & weather", "food-marine"),
    "wildlife": ("animal-mammal", "animal-reptile", "animal-amphibian", "animal-bird", "place-geographic"),
    "city": ("place-building", "transport-ground", "place-other", "hotel", "money"),
    "journey": ("transport-air", "place-map", "hotel", "time", "clothing", "country-flag"),
    "party": ("event", "food-sweet", "drink", "music", "musical-instrument", "face-smiling"),
    "sports": ("sport", "award-medal", "game", "clothing", "person-sport"),
    "office": ("office", "writing", "book-paper", "computer", "mail", "phone"),
    "workshop": ("tool", "household", "science", "light", "lock"),
    "clinic": ("medical", "science", "face-unwell", "person-role"),
}


@dataclass(frozen=True)
class SceneConfig:
    """Settings of an emoji-scenes data set.

    Parameters
    ----------
    num_images : int
        Number of images ``N`` (at least 1).
    num_labels : int, optional
        Number of labels ``C``: a seeded subset of the vocabulary that keeps whole
        subgroups' structure (labels spread over subgroups in proportion to their
        size). ``None``: every emoji of ``groups`` the font can draw.
    image_size : int, default=64
        Side ``S`` of the square RGB images, 16 to 1024.
    min_labels, max_labels : int, default=1, 6
        Bounds on the number of glyphs (true labels) per image.
    missing_rate, spurious_rate : float in [0, 1], default=0
        Label noise (see the module docstring).
    unrelated_rate : float in [0, 1], default=0.05
        Chance that a label is drawn from the whole vocabulary instead of the topic.
    groups : {"objects", "all"} or tuple of str, default="objects"
        Unicode groups of the vocabulary (see :func:`workbench.data.emoji.emoji_catalog`).
    label_skew : float from 0 to 4, default=1
        Exponent of the labels' Zipf popularity: the label of popularity rank ``r`` is
        drawn in proportion to ``r ** -label_skew`` within its subgroup (1: as before;
        0: every label of a subgroup equally often).
    topic_balance : float from 0 to 1, default=0
        A topic's probability is proportional to ``popularity ** (1 - topic_balance) *
        labels ** topic_balance``, its Zipf popularity and the number of labels it holds
        (0: by popularity, as before; 1: by size, so that the labels of a large topic, such
        as the 258 country flags, are not rarer than others).
    random_state : int, default=0
        Seed; the same seed gives bit-identical images and labels.
    """

    num_images: int
    num_labels: int | None = None
    image_size: int = 64
    min_labels: int = 1
    max_labels: int = 6
    missing_rate: float = 0.0
    spurious_rate: float = 0.0
    unrelated_rate: float = 0.05
    groups: str | tuple[str, ...] = "objects"
    label_skew: float = 1.0
    topic_balance: float = 0.0
    random_state: int = 0

    def __post_init__(self):
        if not isinstance(self.groups, str):
            object.__setattr__(self, "groups", tuple(self.groups))
        checks = [
            (
                _is_int(self.num_images) and self.num_images >= 1,
                f"num_images must be a positive integer; got {self.num_images!r}.",
            ),
            (
                self.num_labels is None or (_is_int(self.num_labels) and self.num_labels >= 2),
                f"num_labels must be an integer of at least 2 (or None for the whole vocabulary); got {self.num_labels!r}.",
            ),
            (
                _is_int(self.image_size) and 16 <= self.image_size <= 1024,
                f"image_size must be an integer from 16 to 1024; got {self.image_size!r}.",
            ),
            (
                _is_int(self.min_labels) and _is_int(self.max_labels) and 1 <= self.min_labels <= self.max_labels <= 32,
                f"Need 1 <= min_labels <= max_labels <= 32; got min_labels={self.min_labels!r}, max_labels={self.max_labels!r}.",
            ),
            (
                _is_int(self.random_state) and self.random_state >= 0,
                f"random_state must be a non-negative integer; got {self.random_state!r}.",
            ),
        ]
        for name, largest in (("missing_rate", 1), ("spurious_rate", 1), ("unrelated_rate", 1), ("label_skew", 4),
                              ("topic_balance", 1)):
            value = getattr(self, name)
            ok = isinstance(value, (int, float)) and not isinstance(value, bool) and 0.0 <= value <= largest
            checks.append((ok, f"{name} must be a number from 0 to {largest}; got {value!r}."))
        for ok, message in checks:
            if not ok:
                raise ValueError(message)


def _is_int(value) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


class SceneGenerator:
    """Draws emoji scenes for a :class:`SceneConfig` (glyphs rendered once, then numpy only).

    Parameters
    ----------
    config : SceneConfig
    font_path, emoji_test_path : path, optional
        Override the Noto Color Emoji font and ``emoji-test.txt`` (defaults: the
        environment variables ``WORKBENCH_EMOJI_FONT`` / ``WORKBENCH_EMOJI_TEST``,
        then the Debian paths).
    disk_cache : bool, default=True
        Keep rendered glyphs under ``$XDG_CACHE_HOME/pmi-workbench``.

    Attributes
    ----------
    vocabulary : Vocabulary
        The ``C`` labels, in Unicode (CLDR) order, with groups and subgroups.
    skipped_emoji : tuple of str
        Names of emoji of the chosen groups that the font cannot draw (left out).
    topics : list of (str, dict)
        Topic name and its subgroup mixture ``{subgroup: weight}``.
    """

    def __init__(self, config: SceneConfig, *, font_path=None, emoji_test_path=None, disk_cache: bool = True):
        self.config = config
        catalog = emoji_catalog(groups=config.groups, emoji_test_path=emoji_test_path)
        font_path = resolve_font_path(font_path)
        size = config.image_size
        self.glyph_sizes = tuple(max(4, round(scale * size)) for scale in _SCALES)
        setup = np.random.default_rng([config.random_state, 0])

        covered = glyph_coverage(catalog.sequences, font_path=font_path)
        while True:  # the layout check rarely misses a glyph that draws empty; then choose again
            drawable = catalog.subset(np.flatnonzero(covered))
            if config.num_labels is not None and config.num_labels > len(drawable):
                every_group = len(emoji_catalog(groups="all", emoji_test_path=emoji_test_path)) == len(catalog)
                raise ValueError(
                    f"num_labels={config.num_labels} but the vocabulary has {len(drawable)} drawable emoji; "
                    + (f"ask for at most {len(drawable)} labels." if every_group
                       else "ask for fewer labels or use all groups.")
                )
            chosen = drawable.subset(
                _choose_labels(
                    drawable.subgroups, config.num_labels, np.random.default_rng([config.random_state, 0, 1])
                )
            )
            glyphs, missing = render_glyphs(
                chosen.sequences, sizes=self.glyph_sizes, font_path=font_path, disk_cache=disk_cache
            )
            if not missing:
                break
            missing = set(missing)
            covered &= np.array([sequence not in missing for sequence in catalog.sequences])
        self.skipped_emoji = tuple(name for name, ok in zip(catalog.names, covered) if not ok)
        self.catalog: EmojiCatalog = chosen
        self.vocabulary: Vocabulary = chosen.vocabulary
        num_labels = len(chosen)
        if num_labels < config.max_labels:
            raise ValueError(
                f"max_labels={config.max_labels} exceeds the {num_labels} labels; lower max_labels or raise num_labels."
            )

        # Glyphs premultiplied by alpha, float32 rows of shape (C, s, s * 3):
        # pixel = pixel * inverse_alpha + premultiplied.
        self._premultiplied, self._inverse_alpha, self._glyphs = [], [], {}
        for glyph_size in self.glyph_sizes:
            self._glyphs[glyph_size] = np.stack([glyphs[glyph_size][s] for s in chosen.sequences])
            rgba = self._glyphs[glyph_size].astype(np.float32)
            alpha = np.repeat(rgba[..., 3:] / 255.0, 3, axis=3)
            self._premultiplied.append((rgba[..., :3] * alpha).reshape(num_labels, glyph_size, 3 * glyph_size))
            self._inverse_alpha.append((1.0 - alpha).reshape(num_labels, glyph_size, 3 * glyph_size))

        # Popularity, topics and the per-topic label distributions, shape (T, C).
        popularity = 1.0 / (setup.permutation(num_labels) + 1.0) ** config.label_skew  # x ** 1.0 is x exactly
        self.topics = _make_topics(chosen.groups, chosen.subgroups, setup)
        subgroup_of = np.array(chosen.subgroups, dtype=object)
        distributions = []
        for _, mixture in self.topics:
            p = np.zeros(num_labels)
            for subgroup, weight in mixture.items():
                members = subgroup_of == subgroup
                p[members] = weight * popularity[members] / popularity[members].sum()
            distributions.append(
                (1.0 - config.unrelated_rate) * p + config.unrelated_rate * popularity / popularity.sum()
            )
        self._label_distribution = np.array(distributions)
        topic_popularity = 1.0 / (setup.permutation(len(self.topics)) + 1.0) ** 0.7
        topic_sizes = np.array([np.isin(subgroup_of, list(mixture)).sum() for _, mixture in self.topics], dtype=float)
        balance = config.topic_balance  # x ** 1.0 is x and x ** 0.0 is 1.0 exactly: 0 keeps earlier data sets
        topic_popularity = topic_popularity ** (1.0 - balance) * topic_sizes**balance
        self._topic_probability = topic_popularity / topic_popularity.sum()
        counts = np.arange(config.min_labels, config.max_labels + 1)
        self._count_values = counts
        self._count_probability = (
            _LABEL_DECAY ** (counts - config.min_labels) / (_LABEL_DECAY ** (counts - config.min_labels)).sum()
        )

        # Background banks as (S, S * 3) rows: 8 gradient ramps from 0 to 1 in 8
        # directions, and 16 Gaussian noise fields with standard deviations 3 to 12.
        angles = np.linspace(0.0, 2.0 * np.pi, 8, endpoint=False)
        y, x = np.mgrid[0:size, 0:size] / (size - 1)
        ramps = np.cos(angles)[:, None, None] * x + np.sin(angles)[:, None, None] * y
        ramps -= ramps.min(axis=(1, 2), keepdims=True)
        ramps /= ramps.max(axis=(1, 2), keepdims=True)
        self._ramps = np.repeat(ramps, 3, axis=2).astype(np.float32)
        amplitudes = np.linspace(3.0, 12.0, 16)[:, None, None]
        self._noise = (amplitudes * setup.standard_normal((16, size, size * 3))).astype(np.float32)

    @property
    def num_images(self) -> int:
        return self.config.num_images

    def image_paths(self) -> tuple[str, ...]:
        """``images/000000.png`` …, relative to the data-set folder (6 digits or more)."""
        width = max(6, len(str(self.config.num_images - 1)))
        return tuple(f"images/{n:0{width}d}.png" for n in range(self.config.num_images))

    def iter_chunks(self) -> Iterator[tuple[int, np.ndarray, list[tuple[str, ...]]]]:
        """Yield ``(start, images, label_sets)`` for consecutive chunks of up to 256 images.

        ``images`` has shape ``(B, S, S, 3)``, dtype uint8; ``label_sets`` has ``B`` tuples
        of label names in vocabulary order.
        """
        for start, images, label_sets, _ in self.iter_chunks_with_clean_labels():
            yield start, images, label_sets

    def iter_chunks_with_clean_labels(self) -> Iterator[tuple[int, np.ndarray, list, list]]:
        """As :meth:`iter_chunks`, with each image's clean labels last: ``(start, images, label_sets, clean_label_sets)``.

        The clean labels of an image are the labels of the glyphs drawn on it, before
        label noise (equal to its labels when ``missing_rate`` and ``spurious_rate`` are 0).
        """
        for chunk, start in enumerate(range(0, self.config.num_images, _CHUNK)):
            count = min(_CHUNK, self.config.num_images - start)
            yield (start, *self._chunk(chunk, count))

    def _chunk(self, chunk: int, count: int):
        config, size = self.config, self.config.image_size
        # Every chunk draws for 256 images, so a short last chunk is a prefix of a full one.
        label_rng, noise_rng, layout_rng, background_rng = (
            np.random.default_rng([config.random_state, 1, chunk, stream]) for stream in range(4)
        )
        num_labels = len(self.vocabulary)
        max_labels = config.max_labels

        # Labels: k distinct labels per image from its topic (exponential race = weighted
        # sampling without replacement), spurious ones continue the same race.
        topics = label_rng.choice(len(self.topics), size=_CHUNK, p=self._topic_probability)
        k = label_rng.choice(self._count_values, size=_CHUNK, p=self._count_probability)
        with np.errstate(divide="ignore"):
            keys = label_rng.standard_exponential((_CHUNK, num_labels)) / self._label_distribution[topics]
        depth = min(num_labels, 2 * max_labels)
        top = (
            np.argpartition(keys, depth - 1, axis=1)[:, :depth]
            if depth < num_labels
            else np.tile(np.arange(num_labels), (_CHUNK, 1))
        )
        ranked = np.take_along_axis(
            top, np.argsort(np.take_along_axis(keys, top, axis=1), axis=1, kind="stable"), axis=1
        )
        missing = noise_rng.random((_CHUNK, max_labels)) < config.missing_rate
        spurious = (noise_rng.random((_CHUNK, max_labels)) < config.spurious_rate).sum(
            axis=1, where=np.arange(max_labels) < k[:, None]
        )

        # Layout: scale index and top-left corner per glyph slot.
        scale_index = layout_rng.integers(0, len(self.glyph_sizes), size=(_CHUNK, max_labels))
        corner = layout_rng.random((_CHUNK, max_labels, 2))

        # Backgrounds: solid or gradient between two colours, half with light noise.
        first = background_rng.uniform(0, 255, (_CHUNK, 3)).astype(np.float32)
        second = background_rng.uniform(0, 255, (_CHUNK, 3)).astype(np.float32)
        gradient = background_rng.random(_CHUNK) < 0.5
        direction = background_rng.integers(0, len(self._ramps), _CHUNK)
        noisy = background_rng.random(_CHUNK) < 0.5
        field = background_rng.integers(0, len(self._noise), _CHUNK)
        first_rows, difference_rows = np.tile(first, (1, size)), np.tile(second - first, (1, size))

        # Images are (S, S * 3) float32 rows while drawn: numpy's inner loops then run
        # over whole rows instead of three channels at a time.
        canvas = np.empty((count, size, size * 3), dtype=np.float32)
        names = self.vocabulary.names
        label_sets, clean_label_sets = [], []
        for i in range(count):
            image = canvas[i]
            if gradient[i]:
                np.multiply(self._ramps[direction[i]], difference_rows[i], out=image)
                image += first_rows[i]
            else:
                image[...] = first_rows[i]
            if noisy[i]:
                image += self._noise[field[i]]
            drawn = ranked[i, : k[i]]
            self._paint(image, drawn, scale_index[i, : k[i]], corner[i, : k[i]])
            kept = drawn[~missing[i, : k[i]]].tolist() + ranked[i, k[i] : k[i] + spurious[i]].tolist()
            label_sets.append(tuple(names[c] for c in sorted(kept)))
            clean_label_sets.append(tuple(names[c] for c in sorted(drawn.tolist())))
        np.clip(canvas, 0.0, 255.0, out=canvas)
        return np.rint(canvas, out=canvas).astype(np.uint8).reshape(count, size, size, 3), label_sets, clean_label_sets

    def _paint(self, image: np.ndarray, drawn, scale_index, corner) -> None:
        """Draw the glyphs of labels ``drawn`` onto one (S, S * 3) float32 image, larger glyphs first."""
        size = self.config.image_size
        for slot in np.argsort(-np.asarray(scale_index), kind="stable"):
            z = scale_index[slot]
            glyph_size = self.glyph_sizes[z]
            y, x = (corner[slot] * (size - glyph_size + 1)).astype(int)
            region = image[y : y + glyph_size, 3 * x : 3 * (x + glyph_size)]
            region *= self._inverse_alpha[z][drawn[slot]]
            region += self._premultiplied[z][drawn[slot]]

    def label_topics(self, *, other: str = "other") -> tuple[str, ...]:
        """Each label's scene theme: the hand-named theme (:data:`THEMES`) most likely to draw it.

        For label ``c`` it is the theme ``t`` holding ``c``'s subgroup with the largest
        ``P(t) · P(c | t)`` (the theme that puts this label into the most images);
        ``other`` when no theme holds the subgroup (such labels come only from the
        generated mixtures and the unrelated draws).

        Returns
        -------
        tuple of str, length C
            In the order of :attr:`vocabulary`.
        """
        subgroups = np.array(self.vocabulary.subgroups, dtype=object)
        best_score = np.zeros(len(subgroups))
        topic_of = np.full(len(subgroups), other, dtype=object)
        for position, (name, mixture) in enumerate(self.topics):
            if name not in THEMES:
                continue
            members = np.isin(subgroups, list(mixture))
            score = np.where(members, self._topic_probability[position] * self._label_distribution[position], 0.0)
            better = score > best_score
            topic_of[better], best_score[better] = name, score[better]
        return tuple(str(name) for name in topic_of)

    def compose(self, labels, *, random_state=0) -> np.ndarray:
        """One scene of exactly ``labels`` (names of this generator's vocabulary), for hands-on work.

        The background (a solid colour or a gradient) and the glyphs' sizes and places are
        drawn from ``random_state``; no label noise is added.

        Returns
        -------
        ndarray of shape (S, S, 3), dtype uint8
        """
        names = [str(label) for label in labels]
        if not names:
            raise ValueError("Pick at least one label to compose a scene.")
        if len(names) > self.config.max_labels:
            raise ValueError(f"{len(names)} labels: a scene holds at most {self.config.max_labels}; pick fewer.")
        unknown = [name for name in names if name not in self.vocabulary]
        if unknown:
            raise ValueError(f"Label {unknown[0]!r} is not in the scenes' vocabulary; pick one of its labels.")
        size = self.config.image_size
        rng = np.random.default_rng(random_state)
        first, second = rng.uniform(0, 255, (2, 3)).astype(np.float32)
        image = np.empty((size, size * 3), dtype=np.float32)
        if rng.random() < 0.5:
            np.multiply(self._ramps[rng.integers(0, len(self._ramps))], np.tile(second - first, size), out=image)
            image += np.tile(first, size)
        else:
            image[...] = np.tile(first, size)
        drawn = [self.vocabulary.index(name) for name in names]
        self._paint(image, drawn, rng.integers(0, len(self.glyph_sizes), size=len(drawn)), rng.random((len(drawn), 2)))
        np.clip(image, 0.0, 255.0, out=image)
        return np.rint(image).astype(np.uint8).reshape(size, size, 3)

    def generate(self) -> MultiLabelDataset:
        """All images in memory: a data set with ``images`` of shape ``(N, S, S, 3)``, uint8, and its clean labels."""
        size = self.config.image_size
        images = np.empty((self.config.num_images, size, size, 3), dtype=np.uint8)
        label_sets: list[tuple[str, ...]] = []
        clean_label_sets: list[tuple[str, ...]] = []
        for start, chunk_images, chunk_labels, chunk_clean in self.iter_chunks_with_clean_labels():
            images[start : start + len(chunk_images)] = chunk_images
            label_sets.extend(chunk_labels)
            clean_label_sets.extend(chunk_clean)
        return MultiLabelDataset(
            image_paths=self.image_paths(),
            label_sets=tuple(label_sets),
            vocabulary=self.vocabulary,
            images=images,
            name=self._name(),
            format="scenes",
            clean_label_sets=tuple(clean_label_sets),
        )

    def glyphs_by_size(self) -> dict[int, np.ndarray]:
        """Every label's glyph at each size drawn: ``{size: (C, size, size, 4) uint8}``, straight-alpha RGBA."""
        return {size: glyphs.copy() for size, glyphs in self._glyphs.items()}

    def card(self, dataset: MultiLabelDataset, *, validation_fraction: float = 0.2, split_random_state: int = 0,
             min_count: int | None = None) -> dict:
        """The data card of ``dataset`` (generated here): per-label training counts and look-alike glyphs.

        See :func:`workbench.data.card.dataset_card`; ``validation_fraction`` and
        ``split_random_state`` give the split the counts are made on (0.2 and 0: an
        experiment grid's default split).
        """
        from workbench.data.card import MIN_COUNT, dataset_card

        return dataset_card(dataset, validation_fraction=validation_fraction, split_random_state=split_random_state,
                            min_count=MIN_COUNT if min_count is None else min_count,
                            glyphs_by_size=self._glyphs, image_size=self.config.image_size,
                            settings={"config": asdict(self.config)})

    def write(self, out_dir: str | Path, *, validation_fraction: float = 0.2, split_random_state: int = 0) -> dict:
        """Generate and write chunk by chunk (see :func:`write_scenes`), then the data card; returns a summary dict.

        The card (``DIR/card.json``, ``DIR/card.md``: :meth:`card`) counts labels on the
        training split of ``validation_fraction`` and ``split_random_state``; the summary
        holds it under ``"card"``.
        """
        settings = {"config": asdict(self.config), "skipped_emoji": list(self.skipped_emoji)}
        label_sets, clean_label_sets = [], []

        def kept(chunks):  # the labels, kept for the card as they are written
            for start, images, labels, clean in chunks:
                label_sets.extend(labels)
                clean_label_sets.extend(clean)
                yield start, images, labels, clean

        summary = _write(
            Path(out_dir), self.vocabulary, kept(self.iter_chunks_with_clean_labels()), self.image_paths(),
            self.config.image_size, settings
        )
        dataset = MultiLabelDataset(image_paths=self.image_paths(), label_sets=tuple(label_sets),
                                    vocabulary=self.vocabulary, name=self._name(), format="scenes",
                                    clean_label_sets=tuple(clean_label_sets))
        summary["card"] = self.card(dataset, validation_fraction=validation_fraction,
                                    split_random_state=split_random_state)
        from workbench.data.card import write_card

        write_card(summary["card"], out_dir)
        return summary

    def _name(self) -> str:
        return f"emoji scenes ({self.config.num_images} images, {len(self.vocabulary)} labels, seed {self.config.random_state})"

    def write_report(self, out_dir: str | Path, *, validation_fraction: float = 0.2, split_random_state: int = 0) -> str:
        """:meth:`write`, then what was written, in words (what ``workbench scenes`` prints)."""
        import time

        from workbench.data.card import card_summary

        began = time.perf_counter()
        summary = self.write(out_dir, validation_fraction=validation_fraction, split_random_state=split_random_state)
        skipped = f", {len(self.skipped_emoji)} emoji skipped (not in the font)" if self.skipped_emoji else ""
        return (f"wrote {summary['num_images']} images, {summary['num_labels']} labels, "
                f"{summary['mean_labels_per_image']:.2f} labels/image to {out_dir} in {time.perf_counter() - began:.1f} s{skipped}\n"
                f"data card {Path(out_dir) / 'card.md'}: {card_summary(summary['card'])}")


def generate_scenes(
    *,
    num_images: int,
    num_labels: int | None = None,
    image_size: int = 64,
    min_labels: int = 1,
    max_labels: int = 6,
    missing_rate: float = 0.0,
    spurious_rate: float = 0.0,
    unrelated_rate: float = 0.05,
    groups: str | Sequence[str] = "objects",
    label_skew: float = 1.0,
    topic_balance: float = 0.0,
    random_state: int = 0,
    font_path: str | Path | None = None,
    emoji_test_path: str | Path | None = None,
    disk_cache: bool = True,
) -> MultiLabelDataset:
    """Generate an emoji-scenes data set in memory.

    Parameters are those of :class:`SceneConfig` and :class:`SceneGenerator`. A
    ``UserWarning`` gives the number of emoji the font cannot draw, if any.

    Returns
    -------
    MultiLabelDataset
        ``images`` of shape ``(num_images, image_size, image_size, 3)``, dtype uint8;
        ``image_paths`` ``images/000000.png`` …; ``vocabulary`` with groups and
        subgroups; ``format="scenes"``.
    """
    config = SceneConfig(
        num_images=num_images,
        num_labels=num_labels,
        image_size=image_size,
        min_labels=min_labels,
        max_labels=max_labels,
        missing_rate=missing_rate,
        spurious_rate=spurious_rate,
        unrelated_rate=unrelated_rate,
        groups=groups,
        label_skew=label_skew,
        topic_balance=topic_balance,
        random_state=random_state,
    )
    generator = SceneGenerator(config, font_path=font_path, emoji_test_path=emoji_test_path, disk_cache=disk_cache)
    if generator.skipped_emoji:
        warnings.warn(
            f"{len(generator.skipped_emoji)} emoji are not drawable with the emoji font and were skipped.", stacklevel=2
        )
    return generator.generate()


def write_scenes(dataset: MultiLabelDataset, out_dir: str | Path, *, card: dict | None = None) -> dict:
    """Write a data set with in-memory images in the scenes layout.

    Writes ``DIR/images/000000.png`` …, ``DIR/vocabulary.csv`` (``label,group,subgroup``),
    ``DIR/scenes.json`` (settings; marks the folder as scenes output), ``DIR/clean_labels.csv``
    (as ``labels.csv``, the labels before noise; only when the data set knows them) and last
    ``DIR/labels.csv`` (``image,labels``, paths relative to ``DIR``, labels joined by
    ``|``), each file atomically. ``DIR`` must be absent, empty, or an earlier scenes
    output (whose stale images are removed). With ``card`` (:meth:`SceneGenerator.card`),
    also ``DIR/card.json`` and ``DIR/card.md`` (:func:`workbench.data.card.write_card`).

    Parameters
    ----------
    dataset : MultiLabelDataset
        With ``images`` of shape ``(N, S, S, 3)``, dtype uint8.
    out_dir : path
    card : dict, optional

    Returns
    -------
    dict
        ``num_images``, ``num_labels``, ``mean_labels_per_image``, ``out_dir``.
    """
    images = dataset.images
    if images is None or images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
        raise ValueError(
            "write_scenes needs a data set with images in memory, shape (N, H, W, 3), dtype uint8; generate it with generate_scenes."
        )
    _ = dataset.labels  # a ValueError for a label missing from the vocabulary, before anything is written
    width = max(6, len(str(len(dataset) - 1)))
    paths = tuple(f"images/{n:0{width}d}.png" for n in range(len(dataset)))
    clean = dataset.clean_label_sets
    chunks = (
        (start, images[start : start + _CHUNK], dataset.label_sets[start : start + _CHUNK],
         None if clean is None else clean[start : start + _CHUNK])
        for start in range(0, len(dataset), _CHUNK)
    )
    summary = _write(Path(out_dir), dataset.vocabulary, chunks, paths, images.shape[1], {"name": dataset.name})
    if card is not None:
        from workbench.data.card import write_card

        write_card(card, out_dir)
    return summary


def _write(
    out_dir: Path, vocabulary: Vocabulary, chunks, paths: Sequence[str], image_size: int, settings: dict
) -> dict:
    from PIL import Image

    bad = [name for name in vocabulary.names if "|" in name or "\n" in name or "\r" in name]
    if bad:
        raise ValueError(
            f"Label {bad[0]!r} contains '|' or a line break, which labels.csv cannot hold; rename the label."
        )
    _check_out_dir(out_dir)
    began = time.perf_counter()
    (out_dir / "labels.csv").unlink(missing_ok=True)  # an earlier output is incomplete from here on
    (out_dir / "clean_labels.csv").unlink(missing_ok=True)
    for name in ("card.json", "card.md"):  # a card describes the data set written with it, never a later one
        (out_dir / name).unlink(missing_ok=True)
    atomic_write_json(
        out_dir / "scenes.json",
        {
            "format": _MARKER,
            "version": 1,
            "num_images": len(paths),
            "num_labels": len(vocabulary),
            "image_size": int(image_size),
            **settings,
        },
    )
    (out_dir / "images").mkdir(exist_ok=True)
    vocabulary.write_csv(out_dir / "vocabulary.csv")
    total_labels = 0
    clean_rows = io.StringIO()  # written before labels.csv, the commit point (``None`` when unknown)
    clean_writer = csv.writer(clean_rows, lineterminator="\n")
    clean_writer.writerow(["image", "labels"])
    clean_known = True
    with atomic_path(out_dir / "labels.csv") as temporary, open(temporary, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(["image", "labels"])
        for start, images, label_sets, clean_sets in chunks:
            clean_known = clean_known and clean_sets is not None
            for offset, (image, labels) in enumerate(zip(images, label_sets)):
                buffer = io.BytesIO()
                Image.fromarray(np.ascontiguousarray(image)).save(buffer, format="PNG", compress_level=1)
                atomic_write_bytes(out_dir / paths[start + offset], buffer.getvalue(), durable=False)
                writer.writerow([paths[start + offset], "|".join(labels)])
                if clean_known:
                    clean_writer.writerow([paths[start + offset], "|".join(clean_sets[offset])])
                total_labels += len(labels)
        if clean_known and paths:
            atomic_write_text(out_dir / "clean_labels.csv", clean_rows.getvalue())
    current = {Path(path).name for path in paths}
    for stale in (out_dir / "images").iterdir():
        if _IMAGE_NAME.fullmatch(stale.name) and stale.name not in current:
            stale.unlink()
    return {
        "out_dir": str(out_dir),
        "num_images": len(paths),
        "num_labels": len(vocabulary),
        "mean_labels_per_image": total_labels / max(1, len(paths)),
        "seconds": time.perf_counter() - began,
    }


def _check_out_dir(out_dir: Path) -> None:
    if out_dir.exists() and not out_dir.is_dir():
        raise ValueError(f"{out_dir} exists and is not a folder; choose a new or empty folder for the scenes.")
    if not out_dir.exists() or not any(out_dir.iterdir()):
        return
    refusal = ValueError(
        f"{out_dir} is not empty and is not an earlier 'workbench scenes' output; choose a new or empty folder."
    )
    marker = out_dir / "scenes.json"
    try:
        ours = marker.is_file() and read_json(marker).get("format") == _MARKER
    except (ValueError, AttributeError, OSError):
        ours = False
    names = {entry.name for entry in out_dir.iterdir() if not entry.name.startswith(".")}
    if not ours or not names <= _OWN_ENTRIES or ((out_dir / "images").exists() and not (out_dir / "images").is_dir()):
        raise refusal
    if (out_dir / "images").is_dir():
        for entry in (out_dir / "images").iterdir():
            if not entry.name.startswith(".") and not _IMAGE_NAME.fullmatch(entry.name):
                raise refusal


def _choose_labels(subgroups: Sequence[str], num_labels: int | None, rng: np.random.Generator) -> np.ndarray:
    """Positions of ``num_labels`` labels spread over subgroups in proportion to their size.

    Keeps about ``num_labels / 3`` subgroups (at least two labels each where the
    subgroup allows), chosen with probability proportional to their size; returns
    sorted positions (so the catalogue order, and group order, survive).
    """
    if num_labels is None or num_labels >= len(subgroups):
        return np.arange(len(subgroups))
    names = list(dict.fromkeys(subgroups))
    members = [np.flatnonzero(np.array(subgroups, dtype=object) == name) for name in names]
    sizes = np.array([len(m) for m in members], dtype=float)
    order = np.argsort(rng.standard_exponential(len(names)) / sizes, kind="stable")  # size-weighted random order
    keep = min(len(names), max(1, num_labels // 3))
    while sizes[order[:keep]].sum() < num_labels:
        keep += 1
    kept = order[:keep]
    target = num_labels * sizes[kept] / sizes[kept].sum()
    allocation = np.minimum(sizes[kept], np.maximum(2, np.floor(target))).astype(int)  # no lone labels
    while allocation.sum() < num_labels:
        room = allocation < sizes[kept]
        allocation[np.argmax(np.where(room, target - allocation, -np.inf))] += 1
    while allocation.sum() > num_labels:
        allocation[np.argmax(allocation)] -= 1
    chosen = [rng.choice(members[s], size=a, replace=False) for s, a in zip(kept, allocation)]
    return np.sort(np.concatenate(chosen))


def _make_topics(groups: Sequence[str], subgroups: Sequence[str], rng: np.random.Generator) -> list[tuple[str, dict]]:
    """Hand-named themes present in the vocabulary plus one generated topic per subgroup.

    A generated topic mixes its anchor subgroup with one or two others, drawn from the
    same Unicode group with probability 0.7. Mixture weights are Dirichlet(2) draws.
    """
    present = list(dict.fromkeys(subgroups))
    group_of = dict(zip(subgroups, groups))
    recipes = []
    for name, theme in THEMES.items():
        members = [s for s in theme if s in group_of]
        if len(members) >= 2:
            recipes.append((name, members))
    for anchor in rng.permutation(np.array(present, dtype=object)).tolist():
        members = [anchor]
        for _ in range(int(rng.integers(1, 3))):
            same = [s for s in present if group_of[s] == group_of[anchor] and s not in members]
            pool = same if same and rng.random() < 0.7 else [s for s in present if s not in members]
            if pool:
                members.append(pool[int(rng.integers(len(pool)))])
        recipes.append((f"{anchor} mix", members))
    return [(name, dict(zip(members, rng.dirichlet(np.full(len(members), 2.0)).tolist()))) for name, members in recipes]
