"""The keyword store and the picture check, on photos cut short and changed byte by byte."""

import pytest
from photo_files import MIME, OLD_XMP, exiftool, make_photo, needs_exiftool

from lablr.core.errors import ImageError
from lablr.core.photometa.pixels import picture
from lablr.core.photometa.store import Exiv2Store, Stamp
from lablr.core.photometa.tagging import check_image, embed

pytestmark = needs_exiftool
STAMP = Stamp(model="test", tagged="2026-01-01T00:00:00+00:00")


@pytest.fixture(scope="module")
def store():
    return Exiv2Store()


@pytest.mark.filterwarnings("ignore::UserWarning")  # Pillow's notes on cut TIFF tags
@pytest.mark.parametrize("suffix", list(MIME))
def test_a_photo_cut_at_any_length_is_refused_cleanly_or_tagged_whole(store, tmp_path, suffix):
    whole = make_photo(tmp_path / f"a.{suffix}").read_bytes()
    lengths = [*range(0, min(len(whole), 700)), *range(700, len(whole), 53)]
    for length in lengths:
        data = whole[:length]
        try:
            check_image(data)
            written = store.add(data, ["red"], STAMP)
        except ImageError as error:
            assert error.message and error.status in (400, 413, 415, 422)
            continue
        assert store.read(written.data).keywords[-1] == "red"
        assert picture(written.data, MIME[suffix]) == picture(data, MIME[suffix])


def test_the_picture_check_sees_the_image_data_and_not_the_metadata(tmp_path):
    data = make_photo(tmp_path / "a.jpg").read_bytes()
    scan = data.rindex(b"\xff\xda") + 20
    flipped = data[:scan] + bytes([data[scan] ^ 0x01]) + data[scan + 1:]
    assert picture(flipped, "image/jpeg") != picture(data, "image/jpeg")
    comment = b"\xff\xfe\x00\x07hello"  # a COM segment right after the start marker: metadata
    assert picture(data[:2] + comment + data[2:], "image/jpeg") == picture(data, "image/jpeg")
    quantisation = data.index(b"\xff\xdb") + 10  # a quantisation table: part of the picture
    changed = data[:quantisation] + bytes([data[quantisation] ^ 0x01]) + data[quantisation + 1:]
    assert picture(changed, "image/jpeg") != picture(data, "image/jpeg")


def test_a_sidecar_is_created_and_merged(store):
    first = store.add_to_sidecar(None, ["red", "été"], STAMP)
    assert store.read(first.data).xmp == ("red", "été")
    second = store.add_to_sidecar(first.data, ["RED", "circle"], STAMP)
    assert second.added == ["circle"] and store.read(second.data).xmp == ("red", "été", "circle")
    assert store.read(second.data).stamp.added == ("red", "été", "circle")


def test_a_new_sidecar_begins_with_the_photos_keywords_and_records_only_lablrs(store, tmp_path):
    photo = make_photo(tmp_path / "a.jpg", keywords=False)
    exiftool(photo, "-XMP-dc:Subject=heron", "-IPTC:Keywords=only in iptc",
             "-XMP-lr:HierarchicalSubject=animals|birds|heron")
    embedded = store.read(photo.read_bytes())
    sidecar = store.read(store.add_to_sidecar(None, ["HERON", "water"], STAMP, photo=embedded).data)
    assert sidecar.xmp == ("heron", "only in iptc", "water") and sidecar.stamp.added == ("water",)
    assert sidecar.hierarchical == ("animals|birds|heron",)


def test_a_tag_lablr_added_and_someone_removed_is_not_embedded_again(store, tmp_path):
    """The web page's "Download with tags" writes through the same store as `lablr tag --force`."""
    photo = make_photo(tmp_path / "a.jpg")
    photo.write_bytes(store.add(photo.read_bytes(), ["red", "circle"], STAMP).data)
    exiftool(photo, "-XMP-dc:Subject-=circle", "-IPTC:Keywords-=circle")
    written, _ = embed(photo.read_bytes(), ["circle", "round"], "test")
    assert written.added == ["round"]
    after = store.read(written.data)
    assert after.xmp == (*OLD_XMP, "red", "round") and after.stamp.added == ("red", "circle", "round")


def test_a_sidecar_cut_at_any_length_is_refused_cleanly_or_merged_keeping_what_it_held(store, tmp_path):
    """What learning reads and what `lablr tag --sidecar` merges into: never a traceback, and never a
    sidecar written back without a keyword the cut one was read with."""
    from lablr.core.errors import LablrError
    from lablr.core.personal.from_photos import own_keywords

    photo = make_photo(tmp_path / "a.jpg", keywords=False)
    exiftool(photo, "-XMP-dc:Subject=heron", "-XMP-lr:HierarchicalSubject=animals|birds|heron")
    whole = store.add_to_sidecar(None, ["red", "circle"], STAMP, photo=store.read(photo.read_bytes())).data
    merged = 0
    for length in range(len(whole) + 1):
        data = whole[:length]
        try:
            held = store.read(data)
            own_keywords(held)
        except ImageError as error:
            assert error.message
            held = None
        try:
            written = store.add_to_sidecar(data, ["sky"], STAMP)
        except LablrError as error:
            assert error.message and "\n" not in error.message
            continue
        merged += 1
        assert held is not None and not held.unread, length
        assert set(held.xmp) | {"sky"} <= set(store.read(written.data).xmp), length
    assert merged >= 1  # the whole sidecar, at least, is merged into
