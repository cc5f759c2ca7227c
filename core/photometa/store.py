"""A photo's keywords (XMP dc:subject, IPTC Keywords) and Lablr's record, read and written in memory.

`KeywordStore` is the small interface the rest of Lablr uses; `Exiv2Store` is its one
implementation, on libexiv2 through python-exiv2. Exiv2 rewrites only the metadata segments
of a file and copies the image data as it is; it reads nothing as code. Every write is checked
before it is handed back: the picture's bytes (see lablr.core.photometa.pixels) and every metadata
key that was there must come out as they went in, or the write is refused.
"""

import logging
import re
import threading
from dataclasses import dataclass, field
from typing import Protocol

from lablr.core import defaults
from lablr.core.data.catalog import keyword_key
from lablr.core.errors import ImageError
from lablr.core.photometa.pixels import picture

SUBJECT = "Xmp.dc.subject"
KEYWORDS = "Iptc.Application2.Keywords"
HIERARCHICAL = "Xmp.lr.hierarchicalSubject"  # Lightroom's "animals|birds|heron"
CHARSET = "Iptc.Envelope.CharacterSet"
EXTENDED = "Xmp.xmpNote.HasExtendedXMP"  # the XMP goes on in a JPEG's extended packets, which exiv2 skips
UTF8 = "\x1b%G"  # ISO 2022 escape for UTF-8, the IPTC way to say so
STAMP_TAGGED = f"Xmp.{defaults.LABLR_XMP_PREFIX}.Tagged"
STAMP_MODEL = f"Xmp.{defaults.LABLR_XMP_PREFIX}.Model"
STAMP_ADDED = f"Xmp.{defaults.LABLR_XMP_PREFIX}.Added"
WRITABLE = ("image/jpeg", "image/png", "image/tiff", "image/webp")
XMP_SIDECAR = "application/rdf+xml"  # exiv2's type of an XMP file
WITH_IPTC = ("image/jpeg", "image/tiff")  # PNG and WebP have no standard place for IPTC
# The qualified names in an XMP packet that are its frame, not properties of the photo.
XMP_FRAME_PREFIXES = {"x", "rdf", "xml", "xmlns", "xmpmeta"}
XMP_TAG = re.compile(r"<([^!?/>][^>]*)>")  # an element's start tag, its inside
XMP_ELEMENT = re.compile(r"\s*([A-Za-z_][\w.-]*):([A-Za-z_][\w.-]*)")
XMP_ATTRIBUTE = re.compile(r"\s([A-Za-z_][\w.-]*):([A-Za-z_][\w.-]*)\s*=")


@dataclass(frozen=True)
class Stamp:
    """What Lablr records in a photo it tagged (XMP, in Lablr's own namespace)."""

    model: str
    tagged: str  # ISO 8601 time
    added: tuple[str, ...] = ()


@dataclass(frozen=True)
class Embedded:
    mime: str
    xmp: tuple[str, ...] = ()  # dc:subject
    iptc: tuple[str, ...] = ()  # IPTC Keywords
    stamp: Stamp | None = None
    unread: str = ""  # why not all of the metadata there could be read; empty when it all was
    hierarchical: tuple[str, ...] = ()  # Lightroom's lr:hierarchicalSubject, whole paths

    @property
    def keywords(self) -> list[str]:
        """XMP and IPTC keywords together, in order, each once."""
        return _unique(self.xmp + self.iptc)

    @property
    def hierarchy_leaves(self) -> list[str]:
        """The last word of each of Lightroom's paths: "animals|birds|heron" -> heron."""
        return [path.split("|")[-1] for path in self.hierarchical]

    @property
    def not_to_add(self) -> set[str]:
        """What no tag may be added as (keyword_key): the keywords there, and every tag Lablr's record says it
        added: one that is not there any more was removed by the photographer."""
        return {keyword_key(t) for t in [*self.keywords, *(self.stamp.added if self.stamp else ())]}


@dataclass
class Written:
    data: bytes
    added: list[str] = field(default_factory=list)  # to XMP dc:subject, and to IPTC Keywords where they fit


class KeywordStore(Protocol):
    def read(self, data: bytes) -> Embedded:
        """The keywords and stamp of a photo (or of an XMP sidecar). Raises ImageError."""

    def add(self, data: bytes, tags: list[str], stamp: Stamp) -> Written:
        """The photo with the tags it lacks added and the stamp recorded; nothing else changed."""

    def add_to_sidecar(self, data: bytes | None, tags: list[str], stamp: Stamp, *,
                       photo: Embedded | None = None) -> Written:
        """An XMP sidecar with the tags it lacks added: the one given, or when data is None a new one
        that begins with the photo's own keywords (and Lablr's record, if the photo has one)."""


class _Notes(logging.Handler):
    """What exiv2 says while it reads (python-exiv2 logs it to the "exiv2" logger): kept for the
    one-line reason a photo is left alone, instead of reaching the terminal beside Lablr's lines."""

    def __init__(self):
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record):
        self.messages.append(record.getMessage().strip())


class Exiv2Store:
    """KeywordStore on libexiv2. One lock: the XMP toolkit inside exiv2 is not thread-safe."""

    _lock = threading.Lock()
    _registered = False
    _notes = _Notes()

    def __init__(self):
        import exiv2

        self.exiv2 = exiv2
        with self._lock:
            if not Exiv2Store._registered:
                exiv2.XmpProperties.registerNs(defaults.LABLR_XMP_NAMESPACE, defaults.LABLR_XMP_PREFIX)
                logger = logging.getLogger("exiv2")
                logger.addHandler(self._notes)
                logger.propagate = False
                Exiv2Store._registered = True

    def read(self, data: bytes) -> Embedded:
        with self._lock:
            return self._embedded(self._open(data))

    def add(self, data: bytes, tags: list[str], stamp: Stamp) -> Written:
        with self._lock:
            image = self._open(data)
            if image.mimeType() not in WRITABLE:
                raise _unsupported(image.mimeType(), "writes keywords into")
            refuse_unread(self._unread(image))
            before = self._keys(image)
            written = self._add_keywords(image, tags, stamp, iptc=image.mimeType() in WITH_IPTC)
            if written.added:
                self._write(image)
                written.data = self._bytes(image)
                self._check(data, written.data, image.mimeType(), before)
            else:
                written.data = data
            return written

    def add_to_sidecar(self, data: bytes | None, tags: list[str], stamp: Stamp, *,
                       photo: Embedded | None = None) -> Written:
        with self._lock:
            if data is None:
                image = self._new_sidecar(photo)
            else:
                image = self._open(data)
                if image.mimeType() != XMP_SIDECAR:
                    raise ImageError("The sidecar is not an XMP file.", code="not_xmp")
                refuse_unread(self._unread(image))
            written = self._add_keywords(image, tags, stamp, iptc=False)
            if written.added or data is None:
                self._write(image)
                written.data = self._bytes(image)
            else:
                written.data = data
            return written

    # -- inside the lock --------------------------------------------------------------------------

    def _open(self, data: bytes):
        self._notes.messages.clear()
        try:
            image = self.exiv2.ImageFactory.open(data)
            image.readMetadata()
        except self.exiv2.Exiv2Error as error:
            if error.code == self.exiv2.ErrorCode.kerMemoryContainsUnknownImageType:
                # read to learn from (`personal learn`) or to write into (`lablr tag`): both verbs are true
                raise _unsupported("this file", "reads and writes keywords in") from None
            raise ImageError(f"The photo is damaged or cut short ({error.message}).", code="truncated_image") from None
        return image

    def _new_sidecar(self, photo: Embedded | None):
        """An XMP sidecar holding the photo's keywords: programs that read a sidecar instead of the
        photo (Lightroom for raw files, digiKam when set to) show what it holds, and nothing more."""
        image = self.exiv2.ImageFactory.create(self.exiv2.ImageType.xmp)
        if photo is None:
            return image
        xmp, stamp = image.xmpData(), photo.stamp
        for key, items in ((SUBJECT, photo.keywords), (HIERARCHICAL, photo.hierarchical),
                           (STAMP_ADDED, stamp.added if stamp else ())):
            if items:
                self._set_bag(xmp, key, items)
        if stamp:  # a photo Lablr tagged before: what it added there stays Lablr's, not the photographer's
            xmp[STAMP_MODEL] = stamp.model
            xmp[STAMP_TAGGED] = stamp.tagged
        return image

    def _write(self, image):
        try:
            image.writeMetadata()
        except self.exiv2.Exiv2Error as error:
            raise ImageError(f"The keywords could not be written ({error.message}); nothing was changed.",
                             code="write_failed", status=422) from None

    def _embedded(self, image) -> Embedded:
        xmp, iptc = image.xmpData(), image.iptcData()
        stamp = None
        if self._find(xmp, STAMP_TAGGED) is not None:
            stamp = Stamp(model=self._text(xmp, STAMP_MODEL), tagged=self._text(xmp, STAMP_TAGGED),
                          added=tuple(self._bag(xmp, STAMP_ADDED)))
        return Embedded(mime=image.mimeType(), xmp=tuple(self._bag(xmp, SUBJECT)),
                        iptc=tuple(self._iptc_keywords(iptc)), stamp=stamp, unread=self._unread(image),
                        hierarchical=tuple(self._bag(xmp, HIERARCHICAL)))

    def _unread(self, image) -> str:
        """Why exiv2 did not read all of the metadata just opened (its warnings, or an XMP packet
        whose properties decoded to nothing); empty when it did. Writing would drop the rest."""
        if self._notes.messages:
            return "; ".join(dict.fromkeys(self._notes.messages))
        if any(datum.key() == EXTENDED for datum in image.xmpData()):  # findKey would need its prefix known
            return "its XMP goes on in an extended packet past 64 KB, which exiv2 does not read"
        unread = _properties(image.xmpPacket()) - _names_in({datum.key() for datum in image.xmpData()})
        if unread:
            return f"its XMP holds {', '.join(sorted(unread)[:3])}, which exiv2 did not decode"
        return ""

    def _add_keywords(self, image, tags, stamp: Stamp, *, iptc: bool) -> Written:
        """Add the tags that are in neither XMP nor IPTC yet, and were not removed after Lablr added them
        (the photographer's choice): to XMP, and to IPTC where the format has it."""
        xmp, embedded = image.xmpData(), self._embedded(image)
        not_to_add = embedded.not_to_add
        new = _unique([t for t in tags if keyword_key(t) not in not_to_add])
        if not new:
            return Written(b"")
        # XMP readers (Lightroom, the Metadata Working Group's rules) take dc:subject over IPTC once it is
        # there: it begins with every keyword the photo had, the IPTC-only ones too, or they would vanish.
        self._set_bag(xmp, SUBJECT, embedded.keywords + new)
        previous = embedded.stamp.added if embedded.stamp else ()
        self._set_bag(xmp, STAMP_ADDED, _unique(list(previous) + new))
        xmp[STAMP_MODEL] = stamp.model
        xmp[STAMP_TAGGED] = stamp.tagged
        if iptc:
            self._add_iptc(image.iptcData(), new)
        return Written(b"", added=new)

    def _add_iptc(self, iptc, new):
        utf8 = self._iptc_is_utf8(iptc)
        added = []
        for tag in new:
            if len(tag.encode("utf-8")) > defaults.IPTC_KEYWORD_MAX_BYTES:
                continue  # over the standard's limit: XMP only
            if not tag.isascii() and utf8 is False:
                continue  # the old records are in another character set: XMP only
            iptc.add(self.exiv2.IptcKey(KEYWORDS), self.exiv2.StringValue(tag))
            added.append(tag)
        if utf8 is None and not all(t.isascii() for t in added):
            iptc[CHARSET] = UTF8

    def _iptc_is_utf8(self, iptc) -> bool | None:
        """True if the IPTC says UTF-8; None if it is all ASCII (UTF-8 can be declared); else False."""
        charset = self._find(iptc, CHARSET)
        if charset is not None:
            return bytes(charset.value().data()) == UTF8.encode()
        for datum in iptc:
            value = datum.value()
            if value.typeId() == self.exiv2.TypeId.string and not bytes(value.data()).isascii():
                return False
        return None

    def _iptc_keywords(self, iptc) -> list[str]:
        utf8, declared = self._iptc_is_utf8(iptc), self._find(iptc, CHARSET) is not None
        return [_iptc_text(bytes(datum.value().data()), utf8, declared) for datum in iptc if datum.key() == KEYWORDS]

    def _find(self, data, key):
        found = data.findKey(self._key_type(key)(key))
        return None if found == data.end() else found

    def _key_type(self, key):
        return self.exiv2.IptcKey if key.startswith("Iptc.") else self.exiv2.XmpKey

    def _text(self, xmp, key) -> str:
        datum = self._find(xmp, key)
        return "" if datum is None else datum.toString()

    def _bag(self, xmp, key) -> list[str]:
        datum = self._find(xmp, key)
        if datum is None:
            return []
        value = datum.value()
        return [value.toString(i) for i in range(value.count())]

    def _set_bag(self, xmp, key, items):
        bag = self.exiv2.XmpArrayValue(self.exiv2.TypeId.xmpBag)
        for item in items:
            bag.read(item)
        existing = self._find(xmp, key)
        if existing is not None:
            xmp.erase(existing)
        xmp.add(self.exiv2.XmpKey(key), bag)

    def _bytes(self, image) -> bytes:
        io = image.io()
        with io.mmap() as view:
            return bytes(view)

    def _keys(self, image) -> dict:
        icc = image.iccProfile()
        return {"exif": self._datums(image.exifData()), "iptc": self._datums(image.iptcData()),
                "xmp": self._datums(image.xmpData()), "icc": bytes(icc.data()) if icc.size() else b"",
                "comment": image.comment()}

    def _datums(self, data) -> set:
        return {(datum.key(), datum.toString()) for datum in data}

    def _check(self, old: bytes, new: bytes, mime: str, before: dict):
        """Refuse a write that changed the picture, or dropped or changed any other metadata."""
        if picture(old, mime) != picture(new, mime):
            raise _refused("the picture itself")
        after = self._keys(self._open(new))
        for kind in ("exif", "iptc", "xmp"):
            keys_now = {key for key, _ in after[kind]}
            moved = {MAKER_NOTE, MAKER_NOTE_DECODED} if MAKER_NOTE_DECODED in keys_now else set()
            lost = {key for key, _ in before[kind] - after[kind] if not _no_loss(key, keys_now, moved, mime)}
            if lost:
                raise _refused(f"{kind.upper()} metadata ({', '.join(sorted(lost)[:3])})")
        for kind in ("icc", "comment"):
            if before[kind] != after[kind]:
                raise _refused(f"the {kind.upper() if kind == 'icc' else kind}")


OURS = {SUBJECT, STAMP_TAGGED, STAMP_MODEL, STAMP_ADDED}
# Where a TIFF keeps its data and its metadata blocks, in any of its pages (Exif.Image, Exif.Image2,
# Exif.Thumbnail...): offsets move when the file is rewritten.
RELOCATED = {"StripOffsets", "TileOffsets", "ExifTag", "GPSTag", "InteroperabilityTag", "SubIFDs",
             "JPEGInterchangeFormat", "IPTCNAA", "XMLPacket", "ImageResources"}


# How an uncompressed TIFF's pixels are laid out, which some programs leave in a JPEG's EXIF (Photoshop
# CS6 writes PhotometricInterpretation: OpenCV's sample ellipses.jpg). The JPEG's own markers say it,
# and libexiv2 leaves these out of every JPEG it writes: their loss is no loss.
JPEG_LAYOUT = {"Exif.Image.PhotometricInterpretation", "Exif.Image.RowsPerStrip"}


def _no_loss(key: str, keys_now: set, moved: set, mime: str) -> bool:
    """Whether a key that a rewrite changed or left out lost nothing: Lablr's own; an offset of any page, or
    one of `moved`, still there with its new value; a TIFF layout tag libexiv2 leaves out of a JPEG."""
    relocated = key in moved or key.rsplit(".", 1)[-1] in RELOCATED
    return key in OURS or (relocated and key in keys_now) or (mime == "image/jpeg" and key in JPEG_LAYOUT)


MAKER_NOTE = "Exif.Photo.MakerNote"
# A maker note that exiv2 decoded (it then records where the note was, in this key) is written back
# from its entries, each of which is compared like every other key (Exif.Canon.*, ...): its raw bytes
# change when it moves (offsets, unused padding, Canon's trailer that says where it was).
MAKER_NOTE_DECODED = "Exif.MakerNote.Offset"


def _properties(packet: str) -> set[str]:
    """The local names of the properties (and fields, and qualifiers) written in an XMP packet."""
    names = set()
    for inside in XMP_TAG.findall(packet):
        element = XMP_ELEMENT.match(inside)
        names.update([element.groups()] if element else [])
        names.update(XMP_ATTRIBUTE.findall(inside))
    return {name for prefix, name in names if prefix not in XMP_FRAME_PREFIXES}


def _names_in(keys) -> set[str]:
    """Every name in exiv2's keys, such as Xmp.xmpMM.History[1]/stEvt:action -> xmpMM, History, stEvt, action."""
    return {name for key in keys for name in re.split(r"[.:/\[\]?]+", key) if name}


def _iptc_text(raw: bytes, utf8: bool | None, declared: bool) -> str:
    """An IPTC string as text, less the NULs some programs end it with (C strings). Records that say no character
    set are Latin-1 by the standard, but many programs write UTF-8 there without saying so; Latin-1 text is almost
    never valid UTF-8 ("cafÃ©" is), so such a string is read as UTF-8 when it is valid UTF-8."""
    raw = raw.rstrip(b"\x00")
    if utf8 is not False:
        return raw.decode("utf-8", "replace")
    if not declared:
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            pass
    return raw.decode("latin-1")


def refuse_unread(why: str):
    if why:
        raise ImageError(f"Lablr could not read all of the photo's metadata ({why[:200]}), and writing would "
                         "lose what it could not read; the photo was left as it was.", code="unreadable_metadata",
                         status=422)


def _unsupported(what, does: str) -> ImageError:
    return ImageError(f"Lablr {does} JPEG, PNG, TIFF and WebP photos, and {what} is none of them.",
                      code="unsupported_format", status=415)


def _refused(what) -> ImageError:
    return ImageError(f"Writing the keywords would have changed {what}; the photo was left as it was.",
                      code="write_refused", status=422)


def _unique(tags) -> list[str]:
    seen, out = set(), []
    for tag in tags:
        if keyword_key(tag) not in seen:
            seen.add(keyword_key(tag))
            out.append(tag)
    return out
