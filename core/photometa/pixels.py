"""The bytes that are the picture itself: what writing keywords must never change.

`picture(data, mime)` returns them for a JPEG, PNG or WebP (every segment or chunk that is not
metadata, with the compressed image data byte for byte) and a digest of each decoded page of a TIFF.
Lablr compares them before and after writing, and refuses to replace a photo if they differ.
"""

import hashlib
import struct

from PIL import ImageSequence

from lablr.core.data.decoding import DAMAGED, open_image
from lablr.core.defaults import MAX_IMAGE_PIXELS
from lablr.core.errors import ImageError

# Metadata that the writer may rewrite: everything else in the file must come out as it went in.
JPEG_METADATA = {0xE1, 0xED, 0xFE}  # APP1 (Exif, XMP), APP13 (IPTC), COM; and APP2 ICC, below
# iCCP too: exiv2 compresses the profile again at its own level, so the chunk's bytes change while
# the profile does not (lablr.core.photometa.store compares the profile itself, decompressed).
PNG_METADATA = {b"tEXt", b"zTXt", b"iTXt", b"eXIf", b"iCCP"}
WEBP_METADATA = {b"VP8X", b"EXIF", b"XMP "}  # VP8X holds flags that say which metadata there is


def picture(data: bytes, mime: str) -> list[bytes]:
    try:
        if mime == "image/jpeg":
            return _jpeg(data)
        if mime == "image/png":
            return _png(data)
        if mime == "image/webp":
            return _webp(data)
        return _pixels(data)
    except (struct.error, IndexError, ValueError) as error:
        raise ImageError(f"The image's structure cannot be read ({error}).", code="truncated_image") from None


def _jpeg(data: bytes) -> list[bytes]:
    if data[:2] != b"\xff\xd8":
        raise ValueError("no JPEG start marker")
    kept, at = [], 2
    while at < len(data):
        if data[at] != 0xFF:
            raise ValueError(f"no marker at byte {at}")
        marker = data[at + 1]
        if marker == 0xFF:  # fill byte
            at += 1
            continue
        if marker == 0xDA:  # start of scan: the compressed image, to the end of the file
            kept.append(data[at:])
            return kept
        if marker == 0xD8 or 0xD0 <= marker <= 0xD7:
            raise ValueError(f"unexpected marker {marker:#x} at byte {at}")
        (length,) = struct.unpack(">H", data[at + 2:at + 4])
        segment = data[at:at + 2 + length]
        if len(segment) < 2 + length or length < 2:
            raise ValueError(f"a segment at byte {at} runs past the end")
        is_icc = marker == 0xE2 and segment[4:16] == b"ICC_PROFILE\x00"
        if marker not in JPEG_METADATA and not is_icc:
            kept.append(segment)
        at += 2 + length
    raise ValueError("no image data (start of scan)")


def _png(data: bytes) -> list[bytes]:
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError("no PNG signature")
    kept, at = [], 8
    while at < len(data):
        (length,) = struct.unpack(">I", data[at:at + 4])
        kind = data[at + 4:at + 8]
        chunk = data[at:at + 12 + length]
        if len(chunk) < 12 + length:
            raise ValueError(f"the {kind!r} chunk runs past the end")
        if kind not in PNG_METADATA:
            kept.append(chunk)
        at += 12 + length
        if kind == b"IEND":
            kept.append(data[at:])  # anything after the end, kept as it was
            return kept
    raise ValueError("no IEND chunk")


def _webp(data: bytes) -> list[bytes]:
    if data[:4] != b"RIFF" or data[8:12] != b"WEBP":
        raise ValueError("no WebP header")
    kept, at = [], 12
    while at + 8 <= len(data):
        kind = data[at:at + 4]
        (length,) = struct.unpack("<I", data[at + 4:at + 8])
        chunk = data[at:at + 8 + length + (length & 1)]
        if len(chunk) < 8 + length:
            raise ValueError(f"the {kind!r} chunk runs past the end")
        if kind not in WEBP_METADATA:
            kept.append(chunk)
        at += len(chunk)
    if not kept:
        raise ValueError("no image data")
    return kept


def _pixels(data: bytes) -> list[bytes]:
    """A digest of each frame's decoded pixels, one frame in memory at a time; every frame's pixels
    count against the budget of one image, checked from the headers before any is decoded."""
    image = open_image(data)
    try:
        sizes = [frame.size for frame in ImageSequence.Iterator(image)]
        total = sum(width * height for width, height in sizes)
        if total > MAX_IMAGE_PIXELS:
            raise ImageError(f"The image's {len(sizes)} pages have {total:,} pixels in all; Lablr reads at most "
                             f"{MAX_IMAGE_PIXELS:,}.", code="image_too_large", status=413)
        return [_digest(frame) for frame in ImageSequence.Iterator(image)]
    except DAMAGED as error:
        raise ValueError(str(error)) from None


def _digest(frame) -> bytes:
    digest = hashlib.sha256(frame.mode.encode() + repr(frame.size).encode())
    digest.update(frame.tobytes())
    return digest.digest()
