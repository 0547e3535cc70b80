"""Safe image decoding and resizing: every image the workbench reads goes through here.

Images come from data sets and from uploads, so they are untrusted. :func:`load_image`
reads at most ``max_bytes`` bytes, refuses formats outside :data:`ALLOWED_FORMATS`,
checks the pixel count *before* decoding (decompression bombs), decodes the whole
first frame (truncated files fail instead of coming back half grey), applies the
EXIF orientation, and returns an RGB ``uint8`` array.

Truncated JPEGs
    Pillow decodes a JPEG cut short and then closed with an end-of-image marker (what a
    broken download or a careless repair leaves) without a word, filling the missing
    blocks with grey. Every JPEG is therefore also read once by libjpeg-turbo
    (``simplejpeg``, at 1/8 scale, which still reads the whole entropy-coded data) and
    refused when libjpeg reports that its data ended early ("premature end of data
    segment", "premature end of JPEG file"). libjpeg's harmless warnings (extraneous
    bytes before a marker, common in camera files) are not refused.

Colour policy
    Grayscale (``1``, ``L``, 16-bit ``I;16``, 32-bit ``I``, float ``F``) becomes grey RGB:
    ``I;16`` is scaled by 255/65535; ``I`` likewise when its maximum exceeds 255 (else it
    is taken as 8-bit); ``F`` is taken as 0–1 when its maximum is at most 1, else as
    ``I``. Values are clipped. Transparent images (``RGBA``, ``LA``, ``PA``, palette or
    grey/RGB with a transparency key) are composited on ``background``. ``CMYK``,
    ``YCbCr`` and the rest use Pillow's conversion to RGB. Animated files give their
    first frame.

Resizing policy
    The whole image is resized to exactly ``size`` (height, width) with Pillow's
    Lanczos filter (antialiased when shrinking). Nothing is cropped and nothing is
    padded: the aspect ratio is not kept, so every object in a multi-label image stays
    in view. Training and classification both call :func:`load_image`, so they see the
    same pixels.

Pillow's global state (``Image.MAX_IMAGE_PIXELS``, ``ImageFile.LOAD_TRUNCATED_IMAGES``)
is never changed at import. If another library has turned
``LOAD_TRUNCATED_IMAGES`` on, it is turned off for the duration of each decode (under a
lock) and restored.
"""

from __future__ import annotations

import io
import os
import re
import threading
import unicodedata
import warnings
from pathlib import Path
from typing import Iterable

import numpy as np
from PIL import Image, ImageFile, ImageOps

from workbench import _checks

__all__ = [
    "ImageLoadError",
    "load_image",
    "unreadable_images",
    "load_images",
    "safe_filename",
    "DEFAULT_MAX_PIXELS",
    "DEFAULT_MAX_BYTES",
    "ALLOWED_FORMATS",
]

#: Largest image (width × height of the first frame) decoded by default: 50 megapixels.
DEFAULT_MAX_PIXELS = 50_000_000
#: Largest file read by default: 50 MiB.
DEFAULT_MAX_BYTES = 50 * 1024 * 1024
#: Pillow formats that are decoded (those this Pillow build has); others (EPS, which
#: runs Ghostscript, and rarer plugins) are refused. JPEG includes the MPO variant
#: many phone cameras write.
ALLOWED_FORMATS = ("PNG", "JPEG", "GIF", "BMP", "TIFF", "WEBP", "PPM", "ICO")

_TRANSPARENT_MODES = {"RGBA", "RGBa", "LA", "La", "PA"}
_TRUNCATED_LOCK = threading.Lock()


class ImageLoadError(ValueError):
    """An image that cannot be read safely; the message is one sentence naming it."""


def load_image(
    source: str | os.PathLike | bytes | bytearray | memoryview,
    *,
    size: int | tuple[int, int] | None = 64,
    background: tuple[int, int, int] = (255, 255, 255),
    max_pixels: int = DEFAULT_MAX_PIXELS,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> np.ndarray:
    """Decode one image safely into an RGB array (see the module docstring for the policies).

    Parameters
    ----------
    source : path or bytes
        An image file, or its encoded bytes (for example an upload).
    size : int or (height, width) or None, default=64
        Output size; an int means a square. ``None`` keeps the image's own size
        (after EXIF rotation).
    background : (int, int, int), default=(255, 255, 255)
        RGB colour that transparent pixels are composited on.
    max_pixels : int
        Refuse images whose first frame has more pixels than this, before decoding.
    max_bytes : int
        Refuse files larger than this many bytes.

    Returns
    -------
    ndarray of shape (height, width, 3), dtype uint8
        RGB pixels.

    Raises
    ------
    ImageLoadError
        Missing, empty, too large, not an image, an unsupported format, truncated or
        corrupt, or too many pixels.
    """
    height_width = _check_size(size)
    background = _check_background(background)
    max_pixels = _checks.integer(max_pixels, "max_pixels")
    max_bytes = _checks.integer(max_bytes, "max_bytes")
    data, label = _read_source(source, max_bytes=max_bytes)
    image = _decode(data, label, max_pixels=max_pixels)
    rgb = _to_rgb(image, background)
    if height_width is not None and (rgb.height, rgb.width) != height_width:
        rgb = rgb.resize((height_width[1], height_width[0]), Image.Resampling.LANCZOS, reducing_gap=3.0)
    return np.array(rgb, dtype=np.uint8)


def unreadable_images(
    paths: Iterable[str | os.PathLike],
    *,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    max_bytes: int = DEFAULT_MAX_BYTES,
    workers: int = 4,
) -> dict[str, str]:
    """Files that cannot be images, found cheaply from their headers (no pixel is decoded).

    Each file is checked the way :func:`load_image` starts: it exists and is a file, is
    neither empty nor above ``max_bytes``, opens as an allowed format, and declares at
    least one and at most ``max_pixels`` pixels. A file cut short after a valid header
    passes here and fails only when decoded; the training pipeline skips those
    (:class:`workbench.learning.feeding.ImageSource`).

    Parameters
    ----------
    paths : iterable of path-like
    workers : int, default=4
        Threads reading headers.

    Returns
    -------
    dict
        ``{path as str: one sentence saying why}`` for every unreadable file, in the
        order given; empty when all are readable.
    """
    from concurrent.futures import ThreadPoolExecutor

    max_pixels = _checks.integer(max_pixels, "max_pixels")
    max_bytes = _checks.integer(max_bytes, "max_bytes")
    paths = [os.fspath(path) for path in paths]

    def problem(path: str) -> str | None:
        try:
            size = os.stat(path).st_size
            if not Path(path).is_file():
                return "is not a file"
            if size == 0:
                return "is empty (0 bytes)"
            if size > max_bytes:
                return f"has {size} bytes, more than the limit of {max_bytes}"
            with open(path, "rb") as stream, warnings.catch_warnings():
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                with Image.open(stream, formats=_available_formats()) as image:
                    width, height = image.size
        except FileNotFoundError:
            return "does not exist"
        except PermissionError:
            return "cannot be read (permission denied)"
        except Image.DecompressionBombError:
            return "declares too many pixels to decode safely"
        except Image.UnidentifiedImageError:
            return f"is not an image in a supported format ({', '.join(ALLOWED_FORMATS)})"
        except MemoryError:
            raise
        except Exception as error:  # corrupt headers raise many exception types inside Pillow
            return f"could not be opened ({_reason(error)})"
        if width < 1 or height < 1:
            return f"has no pixels ({width}×{height})"
        if width * height > max_pixels:
            return f"declares {width}×{height} pixels, more than the limit of {max_pixels}"
        return None

    with ThreadPoolExecutor(max_workers=_checks.integer(workers, "workers")) as pool:
        found = list(pool.map(problem, paths))
    return {path: reason for path, reason in zip(paths, found) if reason is not None}


def load_images(paths: Iterable[str | os.PathLike | bytes], *, size: int | tuple[int, int] = 64, **options) -> np.ndarray:
    """Load many images into one array with :func:`load_image`.

    Parameters
    ----------
    paths : iterable of paths (or bytes), length N
        The images; the first one that fails raises, with its path in the message.
    size : int or (height, width), default=64
        Common output size (``None`` is refused: the images must stack).
    **options
        ``background``, ``max_pixels`` and ``max_bytes``, as in :func:`load_image`.

    Returns
    -------
    ndarray of shape (N, height, width, 3), dtype uint8
    """
    height_width = _check_size(size)
    if height_width is None:
        raise ValueError("load_images needs a size so the images can be stacked; give size=64 or (height, width).")
    paths = list(paths)
    out = np.empty((len(paths), *height_width, 3), dtype=np.uint8)
    for position, path in enumerate(paths):
        out[position] = load_image(path, size=height_width, **options)
    return out


def safe_filename(name: str, *, max_length: int = 120, default: str = "file") -> str:
    """Turn an untrusted file name into a safe single path component.

    Keeps the last component only (``/`` and ``\\`` both separate), normalises Unicode
    (NFKC), drops control characters, replaces anything other than letters, digits,
    ``.``, ``-``, ``_`` and spaces with ``_``, strips leading dots and spaces (no hidden
    files, no ``..``), and bounds the length (keeping the extension).

    Parameters
    ----------
    name : str
        For example an upload's file name.
    max_length : int, default=120
        Longest result, in characters (at least 8).
    default : str, default="file"
        Returned when nothing usable is left.

    Returns
    -------
    str
        Non-empty; never ``.`` or ``..``; contains no separator or control character.
    """
    if max_length < 8:
        raise ValueError(f"max_length must be at least 8; got {max_length}.")
    text = unicodedata.normalize("NFKC", str(name))
    text = re.split(r"[/\\]", text)[-1]
    text = "".join(c for c in text if unicodedata.category(c)[0] != "C")
    text = re.sub(r"[^\w.\- ]", "_", text).strip(" .")
    text = re.sub(r"\.{2,}", ".", text)
    if not text:
        return default
    if len(text) > max_length:
        stem, dot, extension = text.rpartition(".")
        if dot and 0 < len(extension) <= 10:
            text = stem[: max_length - len(extension) - 1].rstrip(" .") + "." + extension
        else:
            text = text[:max_length].rstrip(" .")
    return text or default


# -- steps --------------------------------------------------------------------------
def _check_size(size) -> tuple[int, int] | None:
    if size is None:
        return None
    values = (size, size) if isinstance(size, (int, np.integer)) and not isinstance(size, bool) else size
    try:
        height, width = (int(v) for v in values)
        ok = all(not isinstance(v, bool) and int(v) == v for v in values) and height >= 1 and width >= 1
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise ValueError(f"size must be a positive int or a (height, width) pair of positive ints; got {size!r}.")
    return height, width


def _check_background(background) -> tuple[int, int, int]:
    try:
        values = tuple(int(v) for v in background)
    except (TypeError, ValueError):
        values = ()
    if len(values) != 3 or not all(0 <= v <= 255 for v in values):
        raise ValueError(f"background must be an (r, g, b) triple of ints in 0–255; got {background!r}.")
    return values


def _read_source(source, *, max_bytes: int) -> tuple[bytes, str]:
    """The encoded bytes and a name for messages."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
        label = f"({len(data)} bytes uploaded)"
    elif isinstance(source, (str, os.PathLike)):
        path = Path(source)
        label = str(path)
        if not path.exists():
            raise ImageLoadError(f"Image file {label} does not exist.")
        if not path.is_file():
            raise ImageLoadError(f"Image path {label} is not a file.")
        if path.stat().st_size > max_bytes:
            raise ImageLoadError(f"Image file {label} has {path.stat().st_size} bytes, more than the limit of {max_bytes}.")
        with path.open("rb") as stream:
            data = stream.read(max_bytes + 1)
    else:
        raise TypeError(f"An image source is a path or bytes, not {type(source).__name__}.")
    if not data:
        raise ImageLoadError(f"Image {label} is empty (0 bytes).")
    if len(data) > max_bytes:
        raise ImageLoadError(f"Image {label} has more than the limit of {max_bytes} bytes.")
    return data, label


def _decode(data: bytes, label: str, *, max_pixels: int) -> Image.Image:
    """Open, check the pixel count, decode the first frame fully and apply EXIF orientation."""
    try:
        with warnings.catch_warnings():
            # Our own pixel limit below replaces Pillow's global one.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data), formats=_available_formats())
    except Image.DecompressionBombError:
        raise ImageLoadError(f"Image {label} declares too many pixels to decode safely (a decompression bomb?).") from None
    except Image.UnidentifiedImageError:
        raise ImageLoadError(
            f"Image {label} is not an image in a supported format ({', '.join(ALLOWED_FORMATS)})."
        ) from None
    except MemoryError:
        raise
    except Exception as error:  # corrupt headers raise many exception types inside Pillow
        raise ImageLoadError(f"Image {label} could not be opened ({_reason(error)}).") from None
    width, height = image.size
    if width * height > max_pixels:
        raise ImageLoadError(
            f"Image {label} is {width}×{height} = {width * height} pixels, more than the limit of {max_pixels} "
            "(a decompression bomb?)."
        )
    if width < 1 or height < 1:
        raise ImageLoadError(f"Image {label} has no pixels ({width}×{height}).")
    if image.format == "JPEG":
        _refuse_truncated_jpeg(data, label)
    try:
        with _truncated_images_refused():
            image.load()
            return ImageOps.exif_transpose(image)
    except MemoryError:
        raise
    except Exception as error:
        raise ImageLoadError(f"Image {label} is truncated or corrupt ({_reason(error)}).") from None


#: libjpeg's messages when the compressed data ends before every block is decoded.
_JPEG_DATA_ENDED = re.compile(r"premature end of (data segment|JPEG file)", re.IGNORECASE)


def _refuse_truncated_jpeg(data: bytes, label: str) -> None:
    """Raise ``ImageLoadError`` when libjpeg finds a JPEG's data cut short (see the module docstring)."""
    import simplejpeg

    try:
        simplejpeg.decode_jpeg(data, colorspace="GRAY", strict=True, min_height=1, min_width=1)
    except ValueError as error:
        if _JPEG_DATA_ENDED.search(str(error)):
            raise ImageLoadError(f"Image {label} is truncated or corrupt (its JPEG data ends before the last block: "
                                 f"{str(error).strip()}).") from None
        # any other libjpeg complaint (an unusual colour space, a harmless warning) is left to Pillow's decode


class _truncated_images_refused:
    """Turn ``ImageFile.LOAD_TRUNCATED_IMAGES`` off for one decode if someone turned it on."""

    def __enter__(self):
        self.changed = bool(ImageFile.LOAD_TRUNCATED_IMAGES)
        if self.changed:
            _TRUNCATED_LOCK.acquire()
            ImageFile.LOAD_TRUNCATED_IMAGES = False

    def __exit__(self, *exc_info):
        if self.changed:
            ImageFile.LOAD_TRUNCATED_IMAGES = True
            _TRUNCATED_LOCK.release()
        return False


def _to_rgb(image: Image.Image, background: tuple[int, int, int]) -> Image.Image:
    mode = image.mode
    if mode.startswith("I") or mode == "F":
        return Image.fromarray(_wide_to_uint8(np.asarray(image), mode), mode="L").convert("RGB")
    if mode in _TRANSPARENT_MODES or "transparency" in image.info:
        rgba = image.convert("RGBA")
        canvas = Image.new("RGBA", rgba.size, (*background, 255))
        return Image.alpha_composite(canvas, rgba).convert("RGB")
    return image.convert("RGB") if mode != "RGB" else image


def _wide_to_uint8(array: np.ndarray, mode: str) -> np.ndarray:
    """16-bit, 32-bit or float grey values to 0–255 (policy in the module docstring)."""
    values = array.astype(np.float64)
    finite = values[np.isfinite(values)]
    top = float(finite.max()) if finite.size else 0.0
    if mode == "F" and top <= 1.0:
        scaled = values * 255.0
    elif mode.startswith("I;16") or top > 255.0:
        scaled = values * (255.0 / 65535.0)
    else:
        scaled = values
    return np.clip(np.nan_to_num(np.rint(scaled), nan=0.0), 0, 255).astype(np.uint8)


def _available_formats() -> tuple[str, ...]:
    Image.init()  # registers Pillow's plugins (what Image.open does itself on a miss)
    return tuple(name for name in ALLOWED_FORMATS if name in Image.OPEN)


def _reason(error: Exception) -> str:
    text = " ".join(str(error).split()) or type(error).__name__
    return text[:200].rstrip(".")
