"""The emoji catalogue and glyph rendering behind the emoji scenes.

Two resources from the system, both overridable for non-Debian users:

* the Unicode emoji test data, ``emoji-test.txt`` (Debian package ``unicode-data``;
  keyword ``emoji_test_path`` or environment variable ``WORKBENCH_EMOJI_TEST``);
* the Noto Color Emoji font (Debian package ``fonts-noto-color-emoji``; keyword
  ``font_path`` or environment variable ``WORKBENCH_EMOJI_FONT``).

:func:`emoji_catalog` keeps the ``fully-qualified`` entries only and drops every
skin-tone variant (sequences containing U+1F3FB…U+1F3FF). Hair-style variants
("man: red hair") are kept: CLDR names them as distinct emoji and they carry no
skin tone. Duplicate names (none in Unicode 15) would get their code points appended.

:func:`render_glyphs` draws each emoji once at 109 px (the only size of the colour
bitmaps), crops it to its ink, pads it to a square and resizes it. Results are cached
in-process and, optionally, on disk under ``$XDG_CACHE_HOME/pmi-workbench`` (or
``~/.cache/pmi-workbench``), keyed by the font file and the glyph size. Emoji that
the font cannot draw as a single glyph are reported as missing, never drawn empty.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from workbench.data.labels import Vocabulary

__all__ = [
    "DEFAULT_EMOJI_TEST_PATH",
    "DEFAULT_FONT_PATH",
    "OBJECT_GROUPS",
    "EmojiCatalog",
    "EmojiResourceError",
    "default_cache_dir",
    "emoji_catalog",
    "glyph_coverage",
    "render_glyphs",
    "resolve_emoji_test_path",
    "resolve_font_path",
]

DEFAULT_FONT_PATH = Path("/usr/share/fonts/truetype/noto/NotoColorEmoji.ttf")
DEFAULT_EMOJI_TEST_PATH = Path("/usr/share/unicode/emoji/emoji-test.txt")
#: The object-like Unicode groups of the default vocabulary (about 850 emoji in 50 subgroups).
OBJECT_GROUPS = ("Animals & Nature", "Food & Drink", "Travel & Places", "Activities", "Objects")
_RENDER_SIZE = 109  # Noto Color Emoji's bitmap strike; Pillow refuses other sizes
_SKIN_TONES = range(0x1F3FB, 0x1F400)
_LINE = re.compile(r"^([0-9A-Fa-f ]+);\s*([a-z-]+)\s*#\s*\S+\s+E\d+\.\d+\s+(.+?)\s*$")


class EmojiResourceError(FileNotFoundError, ValueError):
    """The emoji font or the Unicode emoji test data is missing or unreadable."""


def resolve_font_path(font_path: str | Path | None = None) -> Path:
    """The emoji font: ``font_path``, else ``$WORKBENCH_EMOJI_FONT``, else the Debian path."""
    path = Path(font_path or os.environ.get("WORKBENCH_EMOJI_FONT") or DEFAULT_FONT_PATH)
    if not path.is_file():
        raise EmojiResourceError(
            f"Emoji font not found at {path}: install it with 'apt-get install fonts-noto-color-emoji', "
            "or point WORKBENCH_EMOJI_FONT (or font_path=) at NotoColorEmoji.ttf."
        )
    return path


def resolve_emoji_test_path(emoji_test_path: str | Path | None = None) -> Path:
    """The emoji test data: ``emoji_test_path``, else ``$WORKBENCH_EMOJI_TEST``, else the Debian path."""
    path = Path(emoji_test_path or os.environ.get("WORKBENCH_EMOJI_TEST") or DEFAULT_EMOJI_TEST_PATH)
    if not path.is_file():
        raise EmojiResourceError(
            f"Unicode emoji test data not found at {path}: install it with 'apt-get install unicode-data', "
            "or point WORKBENCH_EMOJI_TEST (or emoji_test_path=) at an emoji-test.txt."
        )
    return path


@dataclass(frozen=True)
class EmojiCatalog:
    """Emoji with their CLDR short name, Unicode group and subgroup, in CLDR order.

    All four tuples have one entry per emoji (length ``K``).
    """

    sequences: tuple[str, ...]
    names: tuple[str, ...]
    groups: tuple[str, ...]
    subgroups: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.names)

    @property
    def vocabulary(self) -> Vocabulary:
        """The catalogue as a :class:`~workbench.data.labels.Vocabulary` (names, groups, subgroups)."""
        return Vocabulary(self.names, self.groups, self.subgroups)

    def subset(self, positions: Sequence[int]) -> EmojiCatalog:
        """The entries at ``positions``, in that order."""
        positions = [int(p) for p in positions]
        return EmojiCatalog(
            *(
                tuple(values[p] for p in positions)
                for values in (self.sequences, self.names, self.groups, self.subgroups)
            )
        )


_CATALOG_CACHE: dict = {}


def emoji_catalog(
    *, groups: str | Sequence[str] = "objects", emoji_test_path: str | Path | None = None
) -> EmojiCatalog:
    """The fully-qualified emoji of ``emoji-test.txt`` without skin-tone variants.

    Parameters
    ----------
    groups : {"objects", "all"} or sequence of str, default="objects"
        ``"objects"``: Animals & Nature, Food & Drink, Travel & Places, Activities and
        Objects (about 850 emoji); ``"all"``: every group (about 1,870); or explicit
        Unicode group names.
    emoji_test_path : path, optional
        ``emoji-test.txt``; defaults to ``$WORKBENCH_EMOJI_TEST`` or the Debian path.

    Returns
    -------
    EmojiCatalog
        Names are unique and never contain ``|``.
    """
    path = resolve_emoji_test_path(emoji_test_path)
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if key not in _CATALOG_CACHE:
        _CATALOG_CACHE.clear()
        _CATALOG_CACHE[key] = _parse_emoji_test(path)
    full = _CATALOG_CACHE[key]
    known = tuple(dict.fromkeys(full.groups))
    if isinstance(groups, str):
        if groups not in ("objects", "all"):
            raise ValueError(f"groups must be 'objects', 'all' or a list of Unicode group names; got {groups!r}.")
        wanted = set(known) if groups == "all" else set(OBJECT_GROUPS)
    else:
        wanted = set(groups)
        unknown = sorted(wanted - set(known))
        if unknown:
            raise ValueError(f"Unknown emoji group(s) {unknown}; choose from {list(known)}.")
    return full.subset([i for i, group in enumerate(full.groups) if group in wanted])


def _parse_emoji_test(path: Path) -> EmojiCatalog:
    rows: list[tuple[str, str, str, str]] = []
    group = subgroup = ""
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if line.startswith("# group:"):
                group = line.split(":", 1)[1].strip()
            elif line.startswith("# subgroup:"):
                subgroup = line.split(":", 1)[1].strip()
            elif line.strip() and not line.startswith("#"):
                match = _LINE.match(line)
                if match is None:
                    raise ValueError(
                        f"{path}, line {number}: not an emoji-test.txt entry; give the Unicode emoji-test.txt file."
                    )
                if match.group(2) != "fully-qualified":
                    continue
                code_points = [int(code, 16) for code in match.group(1).split()]
                if any(code in _SKIN_TONES for code in code_points):
                    continue
                name = match.group(3).replace("|", "/")
                rows.append(("".join(map(chr, code_points)), name, group, subgroup))
    if not rows:
        raise ValueError(f"{path}: no fully-qualified emoji found; give the Unicode emoji-test.txt file.")
    counts: dict[str, int] = {}
    for _, name, _, _ in rows:
        counts[name] = counts.get(name, 0) + 1
    names = [
        name if counts[name] == 1 else f"{name} ({' '.join(f'U+{ord(c):04X}' for c in sequence)})"
        for sequence, name, _, _ in rows
    ]
    return EmojiCatalog(tuple(r[0] for r in rows), tuple(names), tuple(r[2] for r in rows), tuple(r[3] for r in rows))


# -- glyphs ----------------------------------------------------------------------
# (font key, size) -> {sequence: (size, size, 4) uint8 RGBA}; font key -> set of missing sequences
_GLYPH_CACHE: dict[tuple[str, int], dict[str, np.ndarray]] = {}
_MISSING: dict[str, set[str]] = {}
_LOADED_FROM_DISK: set[Path] = set()


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/pmi-workbench``, or ``~/.cache/pmi-workbench``."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "pmi-workbench"


def render_glyphs(
    sequences: Sequence[str],
    *,
    sizes: Sequence[int],
    font_path: str | Path | None = None,
    disk_cache: bool = True,
) -> tuple[dict[int, dict[str, np.ndarray]], list[str]]:
    """Draw each emoji once and resize it to every size in ``sizes``.

    Parameters
    ----------
    sequences : sequence of str
        Emoji code-point sequences (``EmojiCatalog.sequences``).
    sizes : sequence of int
        Square glyph sizes in pixels, each between 2 and 512.
    font_path : path, optional
        A colour emoji font with a 109-px bitmap strike; defaults to
        ``$WORKBENCH_EMOJI_FONT`` or the Debian Noto Color Emoji.
    disk_cache : bool, default=True
        Also read and write glyphs under :func:`default_cache_dir` (best effort: an
        unwritable cache folder is ignored).

    Returns
    -------
    glyphs : dict
        ``glyphs[size][sequence]`` is a ``(size, size, 4)`` uint8 RGBA array with
        straight (not premultiplied) alpha, for every drawable sequence.
    missing : list of str
        The sequences the font cannot draw as one glyph (skipped).
    """
    sizes = [int(size) for size in sizes]
    if not sizes or any(not 2 <= size <= 512 for size in sizes):
        raise ValueError(f"Glyph sizes must be between 2 and 512 pixels; got {sizes}.")
    path = resolve_font_path(font_path)
    font_key = _font_key(path)
    missing = _MISSING.setdefault(font_key, set())
    caches = {size: _GLYPH_CACHE.setdefault((font_key, size), {}) for size in sizes}
    if disk_cache:
        for size in sizes:
            if _cache_file(font_key, size) not in _LOADED_FROM_DISK:
                _LOADED_FROM_DISK.add(_cache_file(font_key, size))
                _read_disk_cache(font_key, size, caches[size], missing)
    todo = [s for s in dict.fromkeys(sequences) if s not in missing and any(s not in caches[z] for z in sizes)]
    if todo:
        for sequence, resized in zip(todo, _draw(todo, path, sizes)):
            if resized is None:
                missing.add(sequence)
            else:
                for size in sizes:
                    caches[size][sequence] = resized[size]
        if disk_cache:
            for size in sizes:
                _write_disk_cache(font_key, size, caches[size], missing)
    glyphs = {size: {s: caches[size][s] for s in sequences if s in caches[size]} for size in sizes}
    return glyphs, [s for s in sequences if s in missing]


_FONTS: dict = {}


def _font(path: Path):
    """The font at 109 px and the width of one glyph (of U+1F600)."""
    from PIL import ImageFont

    key = str(path)
    if key not in _FONTS:
        try:
            font = ImageFont.truetype(key, _RENDER_SIZE)
        except OSError as error:
            raise ValueError(
                f"Cannot load {path} at {_RENDER_SIZE} px ({error}); give a colour bitmap emoji font such as Noto Color Emoji."
            ) from None
        left, _, right, _ = font.getbbox("\U0001f600")
        _FONTS[key] = (font, right - left)
    return _FONTS[key]


def _single_glyph(font_and_width, sequence: str) -> bool:
    # An unknown sequence falls apart into several glyphs (twice as wide or more) or
    # lays out to an empty box (the font's blank .notdef).
    font, single_width = font_and_width
    left, top, right, bottom = font.getbbox(sequence)
    return right > left and bottom > top and right - left <= 1.5 * single_width


_COVERAGE: dict[tuple[str, str], bool] = {}


def glyph_coverage(sequences: Sequence[str], *, font_path: str | Path | None = None) -> np.ndarray:
    """Whether the font lays out each emoji as one non-empty glyph (layout only, no drawing).

    Parameters
    ----------
    sequences : sequence of str, length K
    font_path : path, optional
        As in :func:`render_glyphs`.

    Returns
    -------
    ndarray of shape (K,), dtype bool
    """
    path = resolve_font_path(font_path)
    font_key = _font_key(path)
    font = None
    covered = np.zeros(len(sequences), dtype=bool)
    for position, sequence in enumerate(sequences):
        key = (font_key, sequence)
        if key not in _COVERAGE:
            font = font or _font(path)
            _COVERAGE[key] = _single_glyph(font, sequence)
        covered[position] = _COVERAGE[key]
    return covered


def _font_key(path: Path) -> str:
    stat = path.stat()
    return hashlib.sha1(f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}".encode()).hexdigest()[:16]


def _draw(sequences: Sequence[str], path: Path, sizes: Sequence[int]):
    from PIL import Image, ImageDraw

    font_and_width = _font(path)
    font = font_and_width[0]
    for sequence in sequences:
        if not _single_glyph(font_and_width, sequence):
            yield None
            continue
        left, top, right, bottom = font.getbbox(sequence)
        canvas = Image.new("RGBA", (right - left, bottom - top), (0, 0, 0, 0))
        ImageDraw.Draw(canvas).text((-left, -top), sequence, font=font, embedded_color=True)
        ink = canvas.getchannel("A").getbbox()
        if ink is None:
            yield None
            continue
        canvas = canvas.crop(ink)
        side = max(canvas.size)
        square = Image.new("RGBA", (side, side), (0, 0, 0, 0))
        square.paste(canvas, ((side - canvas.width) // 2, (side - canvas.height) // 2))
        # Pillow resizes RGBA with premultiplied alpha, so edges do not darken.
        resized = {
            size: np.asarray(square.resize((size, size), Image.LANCZOS, reducing_gap=2.0), dtype=np.uint8)
            for size in sizes
        }
        if any(not glyph[..., 3].any() for glyph in resized.values()):
            yield None
            continue
        yield resized


def _cache_file(font_key: str, size: int) -> Path:
    return default_cache_dir() / f"emoji-glyphs-{font_key}-{size}px.npz"


def _read_disk_cache(font_key: str, size: int, cache: dict, missing: set) -> None:
    path = _cache_file(font_key, size)
    try:
        with np.load(path, allow_pickle=False) as stored:
            glyphs, sequences, absent = stored["glyphs"], stored["sequences"], stored["missing"]
    except (OSError, KeyError, ValueError):
        return  # absent or unreadable: render instead
    if glyphs.shape[1:] != (size, size, 4) or len(glyphs) != len(sequences):
        return
    for sequence, glyph in zip(sequences.tolist(), glyphs):
        cache.setdefault(sequence, glyph)
    missing.update(absent.tolist())


def _write_disk_cache(font_key: str, size: int, cache: dict, missing: set) -> None:
    from workbench._io import atomic_path

    sequences = sorted(cache)
    try:
        with atomic_path(_cache_file(font_key, size), suffix=".npz") as temporary, open(temporary, "wb") as stream:
            np.savez_compressed(
                stream,
                glyphs=np.stack([cache[s] for s in sequences]) if sequences else np.zeros((0, size, size, 4), np.uint8),
                sequences=np.array(sequences, dtype=str),
                missing=np.array(sorted(missing), dtype=str),
            )
    except OSError:
        pass  # the cache is an optimisation; an unwritable folder is not an error
