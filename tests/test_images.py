"""Decoding whatever a user drops: every mode, EXIF orientation, damaged files, bombs."""

import io

import numpy as np
import pytest
from PIL import Image

from lablr.core.data import decoding as images
from lablr.core.errors import ImageError


def encode(image, format, **options):
    buffer = io.BytesIO()
    image.save(buffer, format=format, **options)
    return buffer.getvalue()


def half_red_half_blue(width=80, height=40):
    array = np.zeros((height, width, 3), np.uint8)
    array[:, : width // 2] = (255, 0, 0)
    array[:, width // 2:] = (0, 0, 255)
    return Image.fromarray(array)


@pytest.mark.parametrize("mode", ["L", "P", "CMYK", "RGBA", "LA", "I;16", "I", "1"])
def test_every_mode_becomes_rgb(mode):
    source = half_red_half_blue().convert(mode) if mode not in ("I;16", "I") else Image.fromarray(
        (np.linspace(0, 65535, 80 * 40).reshape(40, 80)).astype(np.uint16 if mode == "I;16" else np.int32))
    data = encode(source, "TIFF" if mode in ("CMYK", "I;16", "I") else "PNG")
    array = images.decode(data, 32)
    assert array.shape == (32, 32, 3) and array.dtype == np.uint8


def test_transparent_parts_are_white():
    transparent = Image.new("RGBA", (20, 20), (255, 0, 0, 0))
    array = images.decode(encode(transparent, "PNG"), 16)
    assert (array == 255).all()


def test_wide_image_is_padded_not_stretched():
    array = images.decode(encode(half_red_half_blue(80, 40), "PNG"), 32)
    assert (array[0] == 255).all() and (array[-1] == 255).all()  # white bands above and below
    assert array[16, 4, 0] > 200 and array[16, 28, 2] > 200  # red left, blue right


def test_exif_orientation_is_applied():
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    data = encode(half_red_half_blue(80, 40), "JPEG", exif=exif, quality=95)
    array = images.decode(data, 32)
    assert array[4, 16, 0] > 200 and array[28, 16, 2] > 200  # red on top, blue below after rotation


def test_big_jpeg_decodes_to_the_right_size():
    big = Image.fromarray(np.random.default_rng(0).integers(0, 255, (3000, 4000, 3), dtype=np.uint8))
    array = images.decode(encode(big, "JPEG", quality=80), 64)
    assert array.shape == (64, 64, 3)


@pytest.mark.parametrize("data, code", [
    (b"", "empty_image"),
    (b"just some text, not a picture", "not_an_image"),
])
def test_non_images_are_refused_clearly(data, code):
    with pytest.raises(ImageError) as error:
        images.decode(data, 16)
    assert error.value.code == code and error.value.status == 400


def test_truncated_image_is_refused_clearly():
    data = encode(half_red_half_blue(400, 300), "JPEG")
    with pytest.raises(ImageError) as error:
        images.decode(data[: len(data) // 3], 16)
    assert error.value.status == 400 and "truncated" in error.value.message


def test_decompression_bomb_is_refused_before_decoding():
    bomb = encode(Image.new("L", (20000, 20000)), "PNG", optimize=True)
    assert len(bomb) < 2_000_000
    with pytest.raises(ImageError) as error:
        images.decode(bomb, 16, max_pixels=100_000_000)
    assert error.value.status == 413
