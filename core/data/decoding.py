"""Decoding images from bytes or files into the square RGB arrays the encoders take.

Everything happens in memory. Big JPEGs are scaled while decoding (Pillow's draft mode),
EXIF orientation is applied, and every mode (grayscale, palette, CMYK, 16-bit, alpha) ends
up as RGB, transparent parts on white.

Memory is bounded: an image over MAX_IMAGE_PIXELS is refused from its header, before any
pixel is decoded; a request's images together stay within MAX_REQUEST_PIXELS; no more
decodes run at once than there are cores; each image is shrunk in its own mode right after it
is decoded (16-bit, 32-bit and float ones before they become 8 bits), so no full-size copy is
ever made, and released before the next is decoded; only the first frame of an animation or a
multi-page file is decoded.
"""

import io
import os
import struct
import threading
import warnings

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from lablr.core import defaults
from lablr.core.defaults import MAX_IMAGE_PIXELS, MAX_REQUEST_PIXELS
from lablr.core.errors import ImageError

WHITE = (255, 255, 255)

# Pillow's own bomb limit is Lablr's: above it Pillow warns (up to twice it) or refuses, and
# Lablr refuses with its own message, so the warning adds nothing. Its plugins' UserWarnings
# ("Truncated File Read" in a TIFF tag) come before a clear ImageError too.
Image.MAX_IMAGE_PIXELS = MAX_IMAGE_PIXELS
warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)
warnings.filterwarnings("ignore", category=UserWarning, module=r"PIL\.")

# What Pillow's format plugins raise on malformed or cut-off data (tests/test_fuzz_images.py
# feeds them thousands of such files). Truncated images stay refused: ImageFile.LOAD_TRUNCATED_IMAGES
# is left False.
DAMAGED = (OSError, SyntaxError, ValueError, EOFError, IndexError, KeyError, TypeError, ZeroDivisionError,
           OverflowError, struct.error)

# Modes with more than 8 bits per channel: shrunk in their own mode, then scaled to 0..255.
HIGH_DEPTH = ("I;16", "I;16L", "I;16B", "I;16N", "I", "F")


def available_cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


# Decoding a big image is memory- and CPU-bound: no more at once than the cores can do.
decode_slots = threading.BoundedSemaphore(available_cores())


def open_image(data: bytes, *, max_pixels: int = MAX_IMAGE_PIXELS) -> Image.Image:
    """Open encoded image bytes, refusing non-images and decompression bombs before decoding."""
    if not data:
        raise ImageError("The image is empty.", code="empty_image")
    try:
        image = Image.open(io.BytesIO(data))
    except UnidentifiedImageError:
        raise ImageError("This is not an image Lablr can read (JPEG, PNG, GIF, WebP, BMP, TIFF).",
                         code="not_an_image") from None
    except Image.DecompressionBombError:
        raise _too_large(max_pixels) from None
    except DAMAGED as error:
        raise _damaged(error) from None
    width, height = image.size
    if width * height > max_pixels:
        raise _too_large(max_pixels)
    return image


def _too_large(max_pixels):
    return ImageError(f"The image has more than {max_pixels:,} pixels.", code="image_too_large", status=413)


def _damaged(error):
    return ImageError(f"The image is damaged or truncated ({error or type(error).__name__}).",
                      code="truncated_image")


def to_square_rgb(image: Image.Image, size: int) -> np.ndarray:
    """Fit an opened image into size x size without distortion, padded with white."""
    try:
        with decode_slots:
            image = _shrunk_rgb(image, size)
    except MemoryError:
        raise ImageError("The image is too large to decode in the memory there is.", code="image_too_large",
                         status=413) from None
    except DAMAGED as error:
        raise _damaged(error) from None
    canvas = Image.new("RGB", (size, size), WHITE)
    canvas.paste(image, ((size - image.width) // 2, (size - image.height) // 2))
    return np.asarray(canvas, dtype=np.uint8)


def _shrunk_rgb(image: Image.Image, size: int) -> Image.Image:
    """The picture at most size x size, RGB on white, upright. It is shrunk first, in its own mode:
    the full-size decode is dropped as soon as the small copy exists, and the orientation, the
    alpha and the conversion to RGB each copy only the small one."""
    if image.format == "JPEG":
        image.draft("RGB", (size * 2, size * 2))  # decodes at 1/2..1/8 scale: cheap for big photos
    if image.mode in HIGH_DEPTH:
        image = _shrunk_to_8_bits(image, size)
    else:
        if image.mode == "1":  # bilevel is resampled by nearest neighbour: grey first, then averaged
            image = image.convert("L")
        elif image.mode == "P":  # a palette is resampled by nearest neighbour too: its colours first
            image = image.convert("RGBA" if "transparency" in image.info else "RGB")
        image.thumbnail((size, size), Image.Resampling.BILINEAR, reducing_gap=2.0)  # in place
    image = ImageOps.exif_transpose(image)
    return _rgb_on_white(image)


def _shrunk_to_8_bits(image: Image.Image, size: int) -> Image.Image:
    """A deep image as 8-bit grayscale of at most size x size: resampled first, so only the small copy is scaled."""
    high = image.getextrema()[1]
    image.thumbnail((size, size), Image.Resampling.BILINEAR, reducing_gap=None)  # Pillow cannot reduce() I;16
    pixels = np.asarray(image, dtype=np.float32)
    scaled = np.clip(pixels * _to_8_bit_scale(image.mode, high), 0, 255)
    return Image.fromarray(scaled.astype(np.uint8), "L")


def _to_8_bit_scale(mode: str, high: float) -> float:
    if mode == "F" and high <= 1.0:
        return 255.0  # floats from 0 to 1
    if high <= 255:
        return 1.0  # 8-bit values stored wide
    if high <= 65535:
        return 255.0 / 65535.0
    return 255.0 / high


def _rgb_on_white(image: Image.Image) -> Image.Image:
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = image if image.mode == "RGBA" else image.convert("RGBA")
        canvas = Image.new("RGB", rgba.size, WHITE)
        canvas.paste(rgba, mask=rgba.getchannel("A"))
        return canvas
    return image if image.mode == "RGB" else image.convert("RGB")


def decode(data: bytes, size: int, *, max_pixels: int = MAX_IMAGE_PIXELS) -> np.ndarray:
    """Encoded bytes -> uint8 array (size, size, 3). Raises ImageError with a clear message."""
    return to_square_rgb(open_image(data, max_pixels=max_pixels), size)


def decode_all(datas, size: int, *, max_pixels: int = MAX_IMAGE_PIXELS,
               max_total_pixels: int = MAX_REQUEST_PIXELS) -> np.ndarray:
    """Several encoded images -> uint8 array (n, size, size, 3), within a budget of pixels for them all.

    Every header is read before any image is decoded, so a request over the budget costs nothing.
    Then each image is decoded, shrunk and released before the next: a request's peak memory is
    one full-size image, however many it sends.
    """
    total = 0
    for index, data in enumerate(datas):
        with _with_position(open_image, data, index, len(datas), max_pixels=max_pixels) as image:
            total += image.width * image.height
    if total > max_total_pixels:
        raise ImageError(f"These {len(datas)} images have {total:,} pixels in all; one request may have at most "
                         f"{max_total_pixels:,}. Send fewer or smaller photos.", code="too_many_pixels", status=413)
    decoded = np.empty((len(datas), size, size, 3), np.uint8)
    for index, data in enumerate(datas):
        decoded[index] = _with_position(decode, data, index, len(datas), size=size, max_pixels=max_pixels)
    return decoded


def _with_position(step, item, index, count, **options):
    try:
        return step(item, **options)
    except ImageError as error:
        if count > 1:
            error.message = f"Photo {index + 1} of {count}: {error.message}"
            error.args = (error.message,)
        raise


def load(path, size: int, *, max_pixels: int = MAX_IMAGE_PIXELS) -> np.ndarray:
    """An image file -> uint8 array (size, size, 3)."""
    try:
        data = read_file(path)
    except OSError as error:
        raise ImageError(f"Cannot read {path}: {error.strerror}.", code="unreadable") from None
    except ImageError as error:
        raise ImageError(f"{path} {error.message}", code=error.code, status=error.status) from None
    return decode(data, size, max_pixels=max_pixels)


def read_file(path) -> bytes:
    """A photo file's bytes (it is read whole). Raises OSError, or ImageError "is larger than..." for one over
    MAX_PHOTO_BYTES, unread."""
    with open(path, "rb") as file:
        data = file.read(defaults.MAX_PHOTO_BYTES + 1)
    if len(data) > defaults.MAX_PHOTO_BYTES:
        raise ImageError(f"is larger than {defaults.MAX_PHOTO_BYTES:,} bytes, more than Lablr reads.", code="too_large",
                         status=413)
    return data
