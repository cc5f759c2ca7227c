"""Photos with real metadata, made here, and an independent reader for what ends up in them.

Lablr writes keywords with libexiv2; these helpers read them back with exiftool (Debian's
libimage-exiftool-perl), a different implementation, and compare pictures with Pillow.
"""

import io
import json
import shutil
import struct
import subprocess
import zlib

import numpy as np
import pytest
from conftest import draw_shape
from PIL import Image, ImageCms

EXIFTOOL = shutil.which("exiftool")
needs_exiftool = pytest.mark.skipif(EXIFTOOL is None, reason="exiftool is not installed "
                                    "(apt-get install libimage-exiftool-perl)")
FORMATS = {"jpg": "JPEG", "png": "PNG", "tif": "TIFF", "webp": "WEBP"}
MIME = {"jpg": "image/jpeg", "png": "image/png", "tif": "image/tiff", "webp": "image/webp"}
WITH_IPTC = {"jpg", "tif"}
OLD_XMP = ["Old Tag", "café"]  # keywords the photo had before, written by exiftool
OLD_IPTC = ["Old Tag"]
CAMERA = {"Make": "Canon", "Model": "Canon EOS 5D Mark IV", "Orientation": "Rotate 90 CW",
          "GPSLatitude": "52 deg 30' 0.00\"", "GPSLatitudeRef": "North",
          "GPSLongitude": "13 deg 24' 0.00\"", "GPSLongitudeRef": "East"}


def srgb_profile() -> bytes:
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def make_photo(path, colour="red", shape="circle", size=96, seed=0, keywords=True):
    """A drawn photo in the format its suffix names, with an ICC profile, EXIF camera fields,
    orientation and GPS, and (unless keywords=False) keywords from another program."""
    image = draw_shape(colour, shape, size=size, seed=seed)
    suffix = path.suffix.lstrip(".")
    options = {"JPEG": {"quality": 92}, "WEBP": {"lossless": True}, "TIFF": {"compression": "tiff_lzw"}}
    image.save(path, FORMATS[suffix], icc_profile=srgb_profile(), **options.get(FORMATS[suffix], {}))
    exiftool(path, "-Make=Canon", "-Model=Canon EOS 5D Mark IV", "-Orientation#=6",
             "-GPSLatitude=52.5", "-GPSLatitudeRef=N", "-GPSLongitude=13.4", "-GPSLongitudeRef=E",
             *([f"-XMP-dc:Subject={k}" for k in OLD_XMP] if keywords else []),
             *([f"-IPTC:Keywords={k}" for k in OLD_IPTC] if keywords and suffix in WITH_IPTC else []),
             *(["-IPTC:CodedCharacterSet=UTF8"] if keywords and suffix in WITH_IPTC else []))
    return path


def recompress_icc(path, level: int):
    """The PNG with its iCCP chunk's profile compressed at another zlib level, as other programs write it."""
    data = path.read_bytes()
    at = data.index(b"iCCP") - 4
    (length,) = struct.unpack(">I", data[at:at + 4])
    name, _, rest = data[at + 8:at + 8 + length].partition(b"\0")
    body = name + b"\0" + rest[:1] + zlib.compress(zlib.decompress(rest[1:]), level)
    chunk = struct.pack(">I", len(body)) + b"iCCP" + body + struct.pack(">I", zlib.crc32(b"iCCP" + body))
    path.write_bytes(data[:at] + chunk + data[at + 12 + length:])
    return path


def with_canon_maker_note(path):
    """The photo with a Canon maker note (written by libexiv2), then rewritten by ExifTool, which ends
    the note with its trailer saying where the note is, as Canon's own software does."""
    import exiv2

    image = exiv2.ImageFactory.open(str(path))
    image.readMetadata()
    image.exifData()["Exif.Image.Make"] = "Canon"
    image.exifData()["Exif.Canon.OwnerName"] = "Lablr Tests"
    image.writeMetadata()
    exiftool(path, "-Artist=Lablr Tests")
    return path


def exiftool(path, *args):
    subprocess.run([EXIFTOOL, "-q", "-overwrite_original", "-charset", "iptc=UTF8", *args, str(path)],
                   check=True, capture_output=True)


def read_tags(path) -> dict:
    """What exiftool sees: Subject (XMP), Keywords (IPTC), Lablr's record (Added, Tagged, LablrModel)
    and the CAMERA fields; lists always lists."""
    out = subprocess.run([EXIFTOOL, "-j", "-G1", "-charset", "iptc=UTF8", "-XMP-dc:Subject", "-IPTC:Keywords",
                          "-XMP-lablr:all", *[f"-{name}" for name in CAMERA], str(path)],
                         check=True, capture_output=True, text=True).stdout
    found = {}
    for key, value in json.loads(out)[0].items():
        group, _, name = key.rpartition(":")
        if group == "XMP-lablr":
            name = {"Model": "LablrModel"}.get(name, name)
        elif group == "Composite" or (name in CAMERA and name in found):
            continue
        found[name] = value
    for key in ("Subject", "Keywords", "Added"):
        value = found.get(key, [])
        found[key] = [str(v) for v in (value if isinstance(value, list) else [value])]
    return found


def pixels(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as image:
        return np.asarray(image.convert("RGBA"))


def icc(data: bytes) -> bytes | None:
    with Image.open(io.BytesIO(data)) as image:
        return image.info.get("icc_profile")


def jpeg_scan(data: bytes) -> bytes:
    """The JPEG's entropy-coded data, from its (last) start-of-scan marker to the end. A 0xFF byte
    inside scan data is always followed by 0x00 or a restart marker, so 0xFFDA only starts a scan."""
    return data[data.rindex(b"\xff\xda"):]


CAPTION = "A caption only this photo has"
# XMP that libexiv2 cannot decode, each with a caption (dc:description) that must survive.
_XMP = ('<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
        '<rdf:Description rdf:about="" xmlns:dc="http://purl.org/dc/elements/1.1/"><dc:description><rdf:Alt>'
        f'<rdf:li xml:lang="x-default">{CAPTION}</rdf:li></rdf:Alt></dc:description>%s</rdf:Description>'
        '</rdf:RDF></x:xmpmeta>')
UNDECODABLE_XMP = {
    "undeclared prefix": _XMP % "<foo:bar>x</foo:bar>",
    "doctype": '<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "b">]>' + _XMP % "",
    "deep nesting": _XMP % ("<dc:x>" + "<rdf:Bag><rdf:li>" * 1000 + "y" + "</rdf:li></rdf:Bag>" * 1000 + "</dc:x>"),
}


def jpeg_with_xmp(path, packet: str):
    """A JPEG whose APP1 XMP segment holds `packet` as it is."""
    buffer = io.BytesIO()
    draw_shape("red", "circle", size=64).save(buffer, "JPEG")
    data = buffer.getvalue()
    payload = b"http://ns.adobe.com/xap/1.0/\x00" + packet.encode()
    segment = b"\xff\xe1" + (len(payload) + 2).to_bytes(2, "big") + payload
    path.write_bytes(data[:2] + segment + data[2:])
    return path


def padded_sidecar(path, keyword: str, size: int):
    """A real XMP sidecar (exiftool's) with `keyword`, padded with blank lines to `size` bytes, as XMP may be."""
    exiftool(path, f"-XMP-dc:Subject={keyword}")
    data = path.read_bytes()
    path.write_bytes(data + b"\n" * (size - len(data)))
