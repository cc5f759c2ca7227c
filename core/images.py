"""Decoding images from bytes or files into the square RGB arrays the encoders take.

Everything happens in memory. Big JPEGs are scaled while decoding (Pillow's draft mode),
EXIF orientation is applied, and every mode (grayscale, palette, CMYK, 16-bit, alpha) ends
up as RGB, transparent parts on white.
"""

import io
import warnings

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .defaults import MAX_IMAGE_PIXELS
from .errors import ImageError

WHITE = (255, 255, 255)


def open_image(data: bytes, *, max_pixels: int = MAX_IMAGE_PIXELS) -> Image.Image:
    """Open encoded image bytes, refusing non-images and decompression bombs before decoding."""
    if not data:
        raise ImageError("The image is empty.", code="empty_image")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
    except UnidentifiedImageError:
        raise ImageError("This is not an image Lablr can read (JPEG, PNG, GIF, WebP, BMP, TIFF).",
                         code="not_an_image") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise _too_large(max_pixels) from None
    width, height = image.size
    if width * height > max_pixels:
        raise _too_large(max_pixels)
    return image


def _too_large(max_pixels):
    return ImageError(f"The image has more than {max_pixels:,} pixels.", code="image_too_large", status=413)


def to_square_rgb(image: Image.Image, size: int) -> np.ndarray:
    """Fit an opened image into size x size without distortion, padded with white."""
    if image.format == "JPEG":
        image.draft("RGB", (size * 2, size * 2))  # decodes at 1/2..1/8 scale: cheap for big photos
    try:
        image = ImageOps.exif_transpose(image)
        image = _rgb_on_white(image)
    except (OSError, SyntaxError, ValueError) as error:
        raise ImageError(f"The image is damaged or truncated ({error}).", code="truncated_image") from None
    image.thumbnail((size, size), Image.Resampling.BILINEAR, reducing_gap=2.0)
    canvas = Image.new("RGB", (size, size), WHITE)
    canvas.paste(image, ((size - image.width) // 2, (size - image.height) // 2))
    return np.asarray(canvas, dtype=np.uint8)


def _rgb_on_white(image: Image.Image) -> Image.Image:
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        pixels = np.asarray(image, dtype=np.float64)
        top = pixels.max() or 1.0
        scale = 255.0 / (65535.0 if top > 255 else 255.0)
        image = Image.fromarray(np.clip(pixels * scale, 0, 255).astype(np.uint8), "L")
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = image.convert("RGBA")
        canvas = Image.new("RGB", rgba.size, WHITE)
        canvas.paste(rgba, mask=rgba.getchannel("A"))
        return canvas
    return image.convert("RGB")


def decode(data: bytes, size: int, *, max_pixels: int = MAX_IMAGE_PIXELS) -> np.ndarray:
    """Encoded bytes -> uint8 array (size, size, 3). Raises ImageError with a clear message."""
    return to_square_rgb(open_image(data, max_pixels=max_pixels), size)


def load(path, size: int, *, max_pixels: int = MAX_IMAGE_PIXELS) -> np.ndarray:
    """An image file -> uint8 array (size, size, 3)."""
    try:
        with open(path, "rb") as file:
            data = file.read()
    except OSError as error:
        raise ImageError(f"Cannot read {path}: {error.strerror}.", code="unreadable") from None
    return decode(data, size, max_pixels=max_pixels)
