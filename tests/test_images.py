"""Tests for workbench.data.images: every awkward image kind, generated with Pillow in tmp_path."""

import io
import struct
import subprocess
import sys
import warnings
import zlib

import numpy as np
import pytest
from PIL import Image, ImageFile

from workbench.data.images import (
    DEFAULT_MAX_PIXELS,
    ImageLoadError,
    load_image,
    load_images,
    safe_filename,
)

RED, BLUE, GREEN = (255, 0, 0), (0, 0, 255), (0, 255, 0)


def save(image, path, **options):
    image.save(path, **options)
    return path


def halves(width=40, height=20, left=RED, right=BLUE):
    """An RGB image: left half ``left``, right half ``right``."""
    array = np.zeros((height, width, 3), dtype=np.uint8)
    array[:, : width // 2] = left
    array[:, width // 2 :] = right
    return Image.fromarray(array)


def noise(width=64, height=64, seed=0):
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8))


def assert_close(actual, expected, tolerance):
    difference = np.abs(np.asarray(actual, dtype=np.int32) - np.asarray(expected, dtype=np.int32))
    assert difference.max() <= tolerance, (actual, expected)


# -- colour modes -------------------------------------------------------------------
def test_rgb_png_keeps_pixels_at_own_size(tmp_path):
    image = noise(17, 11)
    array = load_image(save(image, tmp_path / "a.png"), size=None)
    assert array.shape == (11, 17, 3) and array.dtype == np.uint8
    np.testing.assert_array_equal(array, np.asarray(image))


def test_grayscale_modes(tmp_path):
    grey = np.arange(256, dtype=np.uint8).reshape(16, 16)
    array = load_image(save(Image.fromarray(grey), tmp_path / "l.png"), size=None)
    for channel in range(3):
        np.testing.assert_array_equal(array[..., channel], grey)
    bilevel = Image.fromarray(grey > 127).convert("1")
    array = load_image(save(bilevel, tmp_path / "one.png"), size=None)
    assert set(np.unique(array)) == {0, 255}


def test_sixteen_bit_png_is_scaled(tmp_path):
    values = np.array([[0, 257 * 128, 65535, 257]], dtype=np.uint16)
    path = save(Image.fromarray(values), tmp_path / "deep.png")
    assert Image.open(path).mode == "I;16"
    array = load_image(path, size=None)
    np.testing.assert_array_equal(array[0, :, 0], [0, 128, 255, 1])
    np.testing.assert_array_equal(array[..., 0], array[..., 2])


def test_thirty_two_bit_and_float_tiff(tmp_path):
    wide = Image.fromarray(np.array([[0, 65535, 32896]], dtype=np.int32))
    assert wide.mode == "I"
    np.testing.assert_array_equal(load_image(save(wide, tmp_path / "i.tif"), size=None)[0, :, 1], [0, 255, 128])
    narrow = Image.fromarray(np.array([[0, 200, 255]], dtype=np.int32))  # 8-bit values in an I image
    np.testing.assert_array_equal(load_image(save(narrow, tmp_path / "i8.tif"), size=None)[0, :, 1], [0, 200, 255])
    unit = Image.fromarray(np.array([[0.0, 0.5, 1.0, -3.0]], dtype=np.float32))
    assert unit.mode == "F"
    np.testing.assert_array_equal(load_image(save(unit, tmp_path / "f.tif"), size=None)[0, :, 0], [0, 128, 255, 0])


def test_rgba_composited_on_background(tmp_path):
    rgba = np.zeros((2, 2, 4), dtype=np.uint8)
    rgba[0, 0] = (255, 0, 0, 255)  # opaque red
    rgba[0, 1] = (255, 0, 0, 0)  # fully transparent
    rgba[1, 0] = (0, 0, 0, 128)  # half-transparent black
    rgba[1, 1] = (0, 255, 0, 255)
    path = save(Image.fromarray(rgba, mode="RGBA"), tmp_path / "rgba.png")
    white = load_image(path, size=None)
    assert white[0, 0].tolist() == [255, 0, 0] and white[0, 1].tolist() == [255, 255, 255]
    assert_close(white[1, 0], [127, 127, 127], 1)
    green = load_image(path, size=None, background=GREEN)
    assert green[0, 1].tolist() == list(GREEN) and green[1, 1].tolist() == list(GREEN)


def test_la_composited(tmp_path):
    la = Image.fromarray(np.array([[[50, 255], [50, 0]]], dtype=np.uint8), mode="LA")
    array = load_image(save(la, tmp_path / "la.png"), size=None, background=(10, 20, 30))
    assert array[0].tolist() == [[50, 50, 50], [10, 20, 30]]


def test_palette_with_transparency(tmp_path):
    palette_image = Image.new("P", (4, 1))
    palette_image.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    palette_image.putdata([0, 1, 1, 0])
    path = save(palette_image, tmp_path / "p.png", transparency=0)
    assert Image.open(path).mode == "P"
    array = load_image(path, size=None, background=BLUE)
    assert array[0].tolist() == [list(BLUE), list(RED), list(RED), list(BLUE)]
    # Without a transparency key index 0 is plain black.
    path = save(palette_image, tmp_path / "opaque.png")
    assert load_image(path, size=None)[0, 0].tolist() == [0, 0, 0]


def test_cmyk_jpeg(tmp_path):
    cmyk = Image.new("CMYK", (16, 16), (255, 0, 0, 0))  # pure cyan
    path = save(cmyk, tmp_path / "cmyk.jpg", quality=95)
    assert Image.open(path).mode == "CMYK"
    array = load_image(path, size=8)
    assert array.shape == (8, 8, 3)
    assert_close(array[4, 4], [0, 255, 255], 8)


def test_exif_orientation_rotates_non_square_image(tmp_path):
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90° clockwise to display"
    path = save(halves(40, 20), tmp_path / "rotated.jpg", exif=exif.tobytes(), quality=95)
    array = load_image(path, size=None)
    assert array.shape == (40, 20, 3)  # displayed portrait
    assert_close(array[5, 10], RED, 30)  # the left (red) half is now on top
    assert_close(array[35, 10], BLUE, 30)
    square = load_image(path, size=16)
    assert_close(square[2, 8], RED, 30) and assert_close(square[13, 8], BLUE, 30)


def test_animated_gif_gives_first_frame(tmp_path):
    frames = [Image.new("RGB", (8, 6), RED), Image.new("RGB", (8, 6), BLUE)]
    path = tmp_path / "anim.gif"
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=100, loop=0)
    assert Image.open(path).n_frames == 2
    array = load_image(path, size=None)
    assert array.shape == (6, 8, 3)
    assert_close(array, np.broadcast_to(RED, array.shape), 2)


def test_bytes_and_memoryview_sources(tmp_path):
    buffer = io.BytesIO()
    halves().save(buffer, format="PNG")
    data = buffer.getvalue()
    from_path = load_image(save(halves(), tmp_path / "h.png"), size=10)
    np.testing.assert_array_equal(load_image(data, size=10), from_path)
    np.testing.assert_array_equal(load_image(memoryview(data), size=10), from_path)


# -- resizing -----------------------------------------------------------------------
def test_resize_whole_image_no_crop(tmp_path):
    path = save(halves(40, 20), tmp_path / "h.png")
    array = load_image(path)  # default 64×64
    assert array.shape == (64, 64, 3)
    # Nothing cropped: both halves survive, split at the middle column.
    assert array[32, 0].tolist() == list(RED) and array[32, 63].tolist() == list(BLUE)
    assert array[:, :28].tolist() == np.broadcast_to(RED, (64, 28, 3)).tolist()
    assert load_image(path, size=(8, 12)).shape == (8, 12, 3)
    solid = load_image(save(Image.new("RGB", (300, 7), GREEN), tmp_path / "g.png"), size=5)
    assert (solid == np.array(GREEN, dtype=np.uint8)).all()


@pytest.mark.parametrize("size", [0, -3, (4,), (4, 0), "64", 2.5, True])
def test_bad_size(tmp_path, size):
    with pytest.raises(ValueError, match="size must be"):
        load_image(save(halves(), tmp_path / "h.png"), size=size)


def test_bad_options(tmp_path):
    path = save(halves(), tmp_path / "h.png")
    with pytest.raises(ValueError, match="background must be"):
        load_image(path, background=(0, 0, 300))
    with pytest.raises(ValueError, match="max_pixels must be a positive integer"):
        load_image(path, max_pixels=0)
    with pytest.raises(TypeError, match="path or bytes"):
        load_image(12)


# -- refusals -----------------------------------------------------------------------
def one_sentence(error):
    message = str(error.value)
    assert "\n" not in message and message.endswith(".") and len(message) < 400
    return message


def test_missing_empty_directory_and_too_large(tmp_path):
    with pytest.raises(ImageLoadError) as raised:
        load_image(tmp_path / "nope.png")
    assert "nope.png" in one_sentence(raised) and "does not exist" in str(raised.value)
    with pytest.raises(ImageLoadError, match="is not a file"):
        load_image(tmp_path)
    (tmp_path / "empty.png").write_bytes(b"")
    with pytest.raises(ImageLoadError, match=r"empty\.png is empty"):
        load_image(tmp_path / "empty.png")
    with pytest.raises(ImageLoadError, match="is empty"):
        load_image(b"")
    path = save(noise(), tmp_path / "big.png")
    with pytest.raises(ImageLoadError, match=r"big\.png has \d+ bytes, more than the limit of 100"):
        load_image(path, max_bytes=100)
    with pytest.raises(ImageLoadError, match="more than the limit of 100 bytes"):
        load_image(path.read_bytes(), max_bytes=100)


@pytest.mark.parametrize(
    "data",
    [b"this is a text file, not an image\n" * 10, b"\x00" * 64, b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\n"],
    ids=["text", "zeros", "eps"],
)
def test_non_image_bytes(tmp_path, data):
    (tmp_path / "fake.png").write_bytes(data)
    with pytest.raises(ImageLoadError, match=r"fake\.png is not an image in a supported format") as raised:
        load_image(tmp_path / "fake.png")
    one_sentence(raised)


@pytest.mark.parametrize("kind", ["PNG", "JPEG"])
def test_truncated_files_refused(tmp_path, kind):
    buffer = io.BytesIO()
    noise(128, 128).save(buffer, format=kind, **({"quality": 95} if kind == "JPEG" else {}))
    data = buffer.getvalue()
    path = tmp_path / f"cut.{kind.lower()}"
    path.write_bytes(data[: len(data) * 6 // 10])
    with pytest.raises(ImageLoadError, match=r"is truncated or corrupt") as raised:
        load_image(path)
    assert str(path) in one_sentence(raised)


def test_truncated_refused_even_if_another_library_allows_them(tmp_path, monkeypatch):
    buffer = io.BytesIO()
    noise(128, 128).save(buffer, format="JPEG", quality=95)
    data = buffer.getvalue()[: len(buffer.getvalue()) // 2]
    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", True)
    with pytest.raises(ImageLoadError, match="truncated or corrupt"):
        load_image(data)
    assert ImageFile.LOAD_TRUNCATED_IMAGES is True  # restored


def png_header_only(width, height):
    """A tiny PNG whose header declares ``width``×``height`` (its pixel data is a stub)."""

    def chunk(kind, payload):
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit grey
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b"")


@pytest.mark.parametrize("side", [8_000, 10_000, 100_000])
def test_decompression_bomb_refused_before_decoding(tmp_path, side):
    # 8000² is over our default limit but under Pillow's warning level; 10000² is over Pillow's
    # warning level (whose warning must not escape); 100000² is over Pillow's own hard limit.
    path = tmp_path / "bomb.png"
    path.write_bytes(png_header_only(side, side))
    assert path.stat().st_size < 200 and side * side > DEFAULT_MAX_PIXELS
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(ImageLoadError, match=r"bomb\.png .*(more than the limit of|too many pixels)") as raised:
            load_image(path)
    one_sentence(raised)


def test_real_compressible_bomb_with_low_limit(tmp_path):
    path = save(Image.new("L", (3000, 3000), 0), tmp_path / "flat.png")
    assert path.stat().st_size < 30_000  # 9 megapixels in a few kilobytes
    with pytest.raises(ImageLoadError, match=r"3000×3000 = 9000000 pixels, more than the limit of 1000000"):
        load_image(path, max_pixels=1_000_000)


def test_pil_global_state_untouched_at_import():
    code = (
        "from PIL import Image, ImageFile\n"
        "before = (Image.MAX_IMAGE_PIXELS, ImageFile.LOAD_TRUNCATED_IMAGES)\n"
        "import workbench.data.images\n"
        "assert (Image.MAX_IMAGE_PIXELS, ImageFile.LOAD_TRUNCATED_IMAGES) == before, before\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


# -- load_images and safe_filename --------------------------------------------------
def test_load_images_stacks_and_names_bad_file(tmp_path):
    paths = [save(halves(), tmp_path / "a.png"), save(noise(9, 30), tmp_path / "b.jpg")]
    stacked = load_images(paths, size=(12, 10))
    assert stacked.shape == (2, 12, 10, 3) and stacked.dtype == np.uint8
    np.testing.assert_array_equal(stacked[0], load_image(paths[0], size=(12, 10)))
    assert load_images([], size=4).shape == (0, 4, 4, 3)
    (tmp_path / "bad.png").write_bytes(b"nope")
    with pytest.raises(ImageLoadError, match=r"bad\.png"):
        load_images(paths + [tmp_path / "bad.png"])
    with pytest.raises(ValueError, match="needs a size"):
        load_images(paths, size=None)


@pytest.mark.parametrize(
    "name, expected",
    [
        ("photo.jpg", "photo.jpg"),
        ("../../etc/passwd", "passwd"),
        ("C:\\Users\\me\\cat.png", "cat.png"),
        ("..", "file"),
        ("...", "file"),
        ("", "file"),
        ("/", "file"),
        (".bashrc", "bashrc"),
        ("a\x00b\nc.png", "abc.png"),
        ("my cat (1).png", "my cat _1_.png"),
        ("ｆｕｌｌ.png", "full.png"),
        ("a..b.png", "a.b.png"),
        ("café.jpg", "café.jpg"),
    ],
)
def test_safe_filename(name, expected):
    assert safe_filename(name) == expected


def test_safe_filename_length_and_properties():
    long = safe_filename("x" * 500 + ".jpeg")
    assert len(long) == 120 and long.endswith(".jpeg")
    assert len(safe_filename("y" * 500)) == 120
    rng = np.random.default_rng(0)
    for _ in range(200):
        name = "".join(chr(c) for c in rng.integers(0, 0x3000, rng.integers(0, 40)))
        safe = safe_filename(name)
        assert safe and safe not in (".", "..") and len(safe) <= 120
        assert "/" not in safe and "\\" not in safe and not safe.startswith(".")
        assert all(ord(c) >= 32 and c != "\x7f" for c in safe)


@pytest.mark.parametrize("progressive", [False, True])
def test_a_jpeg_cut_short_and_closed_with_an_end_marker_is_refused_not_filled_with_grey(progressive):
    """Pillow decodes such a file with grey blocks and no error; libjpeg-turbo's check refuses it."""
    import io

    from PIL import Image

    from workbench.data.images import ImageLoadError, load_image

    rng = np.random.default_rng(4)
    buffer = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (96, 96, 3), dtype=np.uint8)).save(buffer, format="JPEG", quality=90,
                                                                               progressive=progressive)
    data = buffer.getvalue()
    assert load_image(data, size=32).shape == (32, 32, 3)
    for fraction in (0.3, 0.5, 0.8, 0.95):
        cut = data[: int(len(data) * fraction)] + b"\xff\xd9"
        Image.open(io.BytesIO(cut)).load()  # what Pillow alone does: no error
        with pytest.raises(ImageLoadError, match="is truncated"):
            load_image(cut, size=32)
    # a harmless libjpeg warning (extraneous bytes before the end marker, common in camera files) still loads
    padded = data[:-2] + b"\x00\x00\xff\xd9"
    assert load_image(padded, size=32).shape == (32, 32, 3)
