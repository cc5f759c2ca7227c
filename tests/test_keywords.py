"""`lablr tag`: suggested tags written into photos as XMP and IPTC keywords, read back by exiftool."""

import io
import json
import os
import signal
import subprocess
import sys
import time
import unicodedata

import pytest
from click.testing import CliRunner
from conftest import draw_shape, on_a_terminal
from photo_files import (
    CAMERA,
    CAPTION,
    OLD_IPTC,
    OLD_XMP,
    UNDECODABLE_XMP,
    WITH_IPTC,
    exiftool,
    icc,
    jpeg_scan,
    jpeg_with_xmp,
    make_photo,
    needs_exiftool,
    padded_sidecar,
    pixels,
    read_tags,
    recompress_icc,
    with_canon_maker_note,
)
from PIL import Image, ImageSequence

from lablr.core import defaults
from lablr.core.cli import cli
from lablr.core.photometa.tagging import PARTIAL

pytestmark = needs_exiftool
SUFFIXES = ("jpg", "png", "tif", "webp")


def tag(model, *args):
    result = CliRunner().invoke(cli, ["tag", "--model", str(model), *map(str, args)])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    return result


def dry_run(model, *args) -> dict:
    result = tag(model, "--dry-run", "--json", *args)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


@pytest.fixture
def folder(tmp_path):
    for i, suffix in enumerate(SUFFIXES):
        make_photo(tmp_path / f"photo-{i}.{suffix}", colour=["red", "blue", "green", "red"][i],
                   shape=["circle", "square", "triangle", "square"][i])
    return tmp_path


def test_dry_run_json_shows_each_photos_new_tags_with_scores_and_writes_nothing(tiny_bundle, folder):
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    report = dry_run(tiny_bundle, folder, "--k", "3")
    assert {os.path.basename(p["path"]) for p in report["photos"]} == set(before)
    for photo in report["photos"]:
        assert photo["status"] == "would_tag"
        assert len(photo["added"]) == 3 and all(0 < s["score"] <= 1 for s in photo["added"])
        assert [s["score"] for s in photo["added"]] == sorted((s["score"] for s in photo["added"]), reverse=True)
        assert photo["kept"] == OLD_XMP
    assert report["summary"]["would_tag"] == 4 and report["summary"]["keywords"] == 12
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before


@pytest.mark.parametrize("suffix", SUFFIXES)
def test_tags_are_written_as_each_format_allows_and_nothing_else_changes(tiny_bundle, tmp_path, suffix):
    photo = make_photo(tmp_path / f"shot.{suffix}", colour="blue", shape="triangle")
    original = photo.read_bytes()
    would = [s["tag"] for s in dry_run(tiny_bundle, photo, "--k", "4")["photos"][0]["added"]]

    result = tag(tiny_bundle, photo, "--k", "4")
    assert result.exit_code == 0, result.output
    assert f"{photo}: added {', '.join(would)}" in result.stdout
    assert "Tagged 1 photos with 4 keywords" in result.stdout

    seen = read_tags(photo)  # exiftool, not the library that wrote them
    assert seen["Subject"] == OLD_XMP + would  # kept first, then the new ones, each once
    assert seen["Keywords"] == (OLD_IPTC + would if suffix in WITH_IPTC else [])  # PNG, WebP: XMP only
    assert seen["Added"] == would and seen["LablrModel"] == "tiny-model"
    assert {key: seen[key] for key in CAMERA} == CAMERA  # EXIF camera fields, orientation, GPS
    new = photo.read_bytes()
    assert icc(new) == icc(original) is not None
    assert (pixels(new) == pixels(original)).all()
    if suffix == "jpg":
        assert jpeg_scan(new) == jpeg_scan(original) and len(jpeg_scan(new)) > 500


def test_a_png_whose_icc_profile_another_program_compressed_is_tagged(tiny_bundle, tmp_path):
    """exiv2 compresses the profile again at its own level (scikit-image's chelsea.png was refused)."""
    photo = recompress_icc(make_photo(tmp_path / "shot.png"), level=1)
    original = photo.read_bytes()
    result = tag(tiny_bundle, photo, "--k", "2")
    assert result.exit_code == 0, result.output
    assert "Tagged 1 photos with 2 keywords" in result.stdout
    new = photo.read_bytes()
    assert icc(new) == icc(original) is not None
    assert (pixels(new) == pixels(original)).all()


def test_a_canon_maker_note_moved_by_exiv2_is_kept_whole_and_the_photo_tagged(tiny_bundle, tmp_path):
    """exiv2 writes a maker note it decoded back from its entries, without the trailer (where the note
    was) that Canon's software and ExifTool end it with: such photos were refused as changed EXIF."""
    photo = with_canon_maker_note(make_photo(tmp_path / "canon.jpg"))
    canon = ["-j", "-G1", "-Canon:all", str(photo)]
    before = subprocess.run(["exiftool", *canon], check=True, capture_output=True, text=True).stdout
    assert "Lablr Tests" in before
    result = tag(tiny_bundle, photo, "--k", "2")
    assert result.exit_code == 0, result.output
    assert "Tagged 1 photos with 2 keywords" in result.stdout
    assert subprocess.run(["exiftool", *canon], check=True, capture_output=True, text=True).stdout == before
    assert {key: read_tags(photo)[key] for key in CAMERA} == CAMERA


def test_a_photoshop_jpeg_is_tagged_and_loses_only_a_tiff_layout_tag(tiny_bundle, tmp_path):
    """Photoshop CS6 leaves PhotometricInterpretation in a JPEG's EXIF (OpenCV's sample ellipses.jpg
    has it); libexiv2 writes no JPEG with it, so such photos were refused as changed EXIF."""
    photo = make_photo(tmp_path / "edited.jpg")
    exiftool(photo, "-IFD0:PhotometricInterpretation=RGB", "-IFD0:SamplesPerPixel=3",
             "-IFD0:Software=Adobe Photoshop CS6 (Macintosh)")
    before = all_fields(photo)
    result = tag(tiny_bundle, photo, "--k", "2")
    assert result.exit_code == 0, result.output
    assert "Tagged 1 photos with 2 keywords" in result.stdout
    after = all_fields(photo)
    assert {key: value for key, value in before.items() if key not in after} == \
        {"IFD0:PhotometricInterpretation": 2}
    changed = {key for key, value in before.items() if key in after and after[key] != value}
    assert changed == {"XMP-dc:Subject", "IPTC:Keywords", "XMP-x:XMPToolkit"}  # the keywords, and who wrote them


def test_a_second_run_changes_nothing_even_when_forced(tiny_bundle, folder):
    assert tag(tiny_bundle, folder).exit_code == 0
    tagged = {p.name: p.read_bytes() for p in folder.iterdir()}

    again = tag(tiny_bundle, folder)
    assert "Tagged 0 photos" in again.stdout and "4 already tagged by Lablr" in again.stdout
    forced = tag(tiny_bundle, folder, "--force")
    assert "Tagged 0 photos" in forced.stdout and "4 with nothing new to add" in forced.stdout
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == tagged
    for photo in folder.iterdir():
        subject = read_tags(photo)["Subject"]
        assert len({s.casefold() for s in subject}) == len(subject)


def test_force_adds_only_what_is_missing_and_the_record_grows(tiny_bundle, tmp_path):
    photo = make_photo(tmp_path / "a.jpg")
    tag(tiny_bundle, photo, "--k", "2")
    first = read_tags(photo)["Added"]
    result = tag(tiny_bundle, photo, "--k", "4", "--force")
    seen = read_tags(photo)
    assert len(seen["Added"]) == 4 and seen["Added"][:2] == first
    assert seen["Subject"] == OLD_XMP + seen["Added"]
    assert f"added {', '.join(seen['Added'][2:])}" in result.stdout


def test_force_does_not_add_back_a_tag_lablr_added_and_the_photographer_removed(tiny_bundle, tmp_path):
    photo = make_photo(tmp_path / "a.jpg")
    tag(tiny_bundle, photo, "--k", "2")
    kept, removed = read_tags(photo)["Added"]
    exiftool(photo, f"-XMP-dc:Subject-={removed}", f"-IPTC:Keywords-={removed}")  # as a photo manager would
    assert "1 already tagged by Lablr" in tag(tiny_bundle, photo).stdout  # a plain rerun still skips it

    would = dry_run(tiny_bundle, photo, "--k", "3", "--force")["photos"][0]["added"]
    assert removed not in [s["tag"] for s in would] and len(would) == 1
    for run in range(2):  # the record keeps the removed tag, so a second run leaves it out too
        tag(tiny_bundle, photo, "--k", "3", "--force")
        seen = read_tags(photo)
        assert seen["Subject"] == OLD_XMP + [kept, would[0]["tag"]]
        assert seen["Keywords"] == OLD_IPTC + [kept, would[0]["tag"]]
        assert seen["Added"] == [kept, removed, would[0]["tag"]]


def test_keywords_already_there_in_another_case_are_not_repeated(tiny_bundle, tmp_path):
    photo = make_photo(tmp_path / "a.jpg", keywords=False)
    top = dry_run(tiny_bundle, photo, "--k", "3")["photos"][0]["added"]
    from photo_files import exiftool

    exiftool(photo, f"-XMP-dc:Subject={top[0]['tag'].upper()}", f"-IPTC:Keywords={top[1]['tag'].title()}")
    report = dry_run(tiny_bundle, photo, "--k", "3")["photos"][0]
    assert [s["tag"] for s in report["added"]] == [top[2]["tag"]]
    tag(tiny_bundle, photo, "--k", "3")
    seen = read_tags(photo)
    assert seen["Subject"] == [top[0]["tag"].upper(), top[1]["tag"].title(), top[2]["tag"]]  # IPTC's joins XMP
    assert seen["Keywords"] == [top[1]["tag"].title(), top[2]["tag"]]


def test_min_score_follows_the_scores_shown(tiny_bundle, tmp_path):
    photo = make_photo(tmp_path / "a.png")
    shown = dry_run(tiny_bundle, photo, "--k", "6")["photos"][0]["added"]
    cut = (shown[1]["score"] + shown[2]["score"]) / 2  # between the second and third best
    report = dry_run(tiny_bundle, photo, "--k", "6", "--min-score", cut)
    assert [s["tag"] for s in report["photos"][0]["added"]] == [s["tag"] for s in shown[:2]]
    tag(tiny_bundle, photo, "--k", "6", "--min-score", cut)
    assert read_tags(photo)["Added"] == [s["tag"] for s in shown[:2]]
    assert shown[0]["score"] < 1
    nothing = dry_run(tiny_bundle, photo, "--force", "--min-score", 1)
    assert nothing["photos"][0]["status"] == "nothing_new"


def test_permissions_and_owner_are_kept_and_mtime_changes_unless_asked(tiny_bundle, tmp_path):
    kept, touched = make_photo(tmp_path / "kept.jpg"), make_photo(tmp_path / "touched.jpg")
    old = 1_000_000_000_123_456_789  # 2001, with nanoseconds
    for photo in (kept, touched):
        photo.chmod(0o640)
        os.utime(photo, ns=(old, old))
        if os.getuid() == 0:
            os.chown(photo, 1234, 5678)
    started = time.time_ns()
    tag(tiny_bundle, kept, "--keep-mtime")
    tag(tiny_bundle, touched)
    for photo in (kept, touched):
        info = photo.stat()
        assert read_tags(photo)["Added"] and info.st_mode & 0o777 == 0o640
        if os.getuid() == 0:
            assert (info.st_uid, info.st_gid) == (1234, 5678)
    assert kept.stat().st_mtime_ns == old
    assert touched.stat().st_mtime_ns >= started - 10**9  # now, not 2001


def test_sidecar_leaves_the_photo_untouched_and_begins_with_its_own_keywords(tiny_bundle, tmp_path):
    """Programs that read a sidecar instead of the photo (Lightroom for raw files) show what it holds:
    a new one begins with the photographer's keywords, and Lablr's record holds only Lablr's."""
    photo = make_photo(tmp_path / "raw-ish.tif")
    original = photo.read_bytes()
    result = tag(tiny_bundle, photo, "--sidecar", "--k", "3")
    assert "(raw-ish.xmp)" in result.stdout
    assert photo.read_bytes() == original
    sidecar = read_tags(tmp_path / "raw-ish.xmp")
    assert len(sidecar["Added"]) == 3 and sidecar["Subject"] == OLD_XMP + sidecar["Added"]
    again = tag(tiny_bundle, photo, "--sidecar")
    assert "1 already tagged by Lablr" in again.stdout


def test_a_new_sidecar_keeps_iptc_only_and_lightroom_keywords_in_their_order(tiny_bundle, tmp_path):
    photo = make_photo(tmp_path / "lr.jpg", keywords=False)
    exiftool(photo, "-XMP-dc:Subject=heron", "-XMP-dc:Subject=Marsh", "-IPTC:Keywords=Marsh",
             "-IPTC:Keywords=only in iptc", "-XMP-lr:HierarchicalSubject=animals|birds|heron")
    tag(tiny_bundle, photo, "--sidecar", "--k", "2")
    sidecar = tmp_path / "lr.xmp"
    seen = read_tags(sidecar)
    assert seen["Subject"] == ["heron", "Marsh", "only in iptc", *seen["Added"]] and len(seen["Added"]) == 2
    assert lightroom_paths(sidecar) == ["animals|birds|heron"]


def lightroom_paths(path) -> list[str]:
    out = subprocess.run(["exiftool", "-j", "-XMP-lr:HierarchicalSubject", str(path)], check=True,
                         capture_output=True, text=True).stdout
    found = json.loads(out)[0].get("HierarchicalSubject", [])
    return found if isinstance(found, list) else [found]


def test_an_existing_sidecar_gains_only_the_new_tags(tiny_bundle, tmp_path):
    photo = make_photo(tmp_path / "shot.jpg")
    sidecar = tmp_path / "shot.xmp"
    exiftool(sidecar, "-XMP-dc:Subject=from darktable")  # exiftool makes a new sidecar
    tag(tiny_bundle, photo, "--sidecar", "--k", "2")
    seen = read_tags(sidecar)
    assert seen["Subject"] == ["from darktable", *seen["Added"]] and len(seen["Added"]) == 2


def test_a_sidecar_that_cannot_be_read_is_named_and_both_files_left_as_they_were(tiny_bundle, tmp_path):
    """The photo is fine: the line says what is wrong with its sidecar (it said "The photo is damaged")."""
    photo = make_photo(tmp_path / "p.jpg")
    original, sidecar = photo.read_bytes(), tmp_path / "p.xmp"
    exiftool(sidecar, "-XMP-dc:Subject=from darktable")
    whole = sidecar.read_bytes()
    cases = {whole[:200]: "Lablr could not read all of its sidecar p.xmp (", b"hello": "its sidecar p.xmp is damaged",
             original: "its sidecar p.xmp is not XMP but image/jpeg"}
    for content, said in cases.items():
        sidecar.write_bytes(content)
        result = tag(tiny_bundle, photo, "--sidecar", "--k", "2")
        assert result.exit_code == 1 and f"p.jpg: not changed: {said}" in result.output, result.output
        assert sidecar.read_bytes() == content and photo.read_bytes() == original


def test_sidecar_refuses_a_name_two_photos_would_share(tiny_bundle, tmp_path):
    make_photo(tmp_path / "same.jpg")
    make_photo(tmp_path / "same.png")
    result = tag(tiny_bundle, tmp_path, "--sidecar")
    assert result.exit_code == 1
    assert "same.xmp would also describe" in result.stderr
    assert not (tmp_path / "same.xmp").exists()


def test_unreadable_and_unwritable_files_are_listed_counted_and_left_alone(tiny_bundle, folder):
    (folder / "notes.jpg").write_bytes(b"not a photo at all")
    good = make_photo(folder / "cut.jpg").read_bytes()
    (folder / "cut.jpg").write_bytes(good[: len(good) // 2])
    make_photo(folder / "locked.jpg").chmod(0o444)
    (folder / "camera.gif").write_bytes(b"GIF89a")  # not a suffix Lablr looks for in folders
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    review = json.loads(tag(tiny_bundle, folder, "--dry-run", "--json").stdout)
    assert {os.path.basename(p["path"]): p["status"] for p in review["photos"] if p["status"] == "failed"} == \
        {"notes.jpg": "failed", "cut.jpg": "failed", "locked.jpg": "failed"}  # the dry run says so too

    result = tag(tiny_bundle, folder, folder / "missing.jpg")
    assert result.exit_code == 1
    problems = [line for line in result.stderr.splitlines() if "not changed" in line or "no such" in line]
    assert len(problems) == 4, result.stderr
    assert any("locked.jpg: not changed: it is read-only" in line for line in problems)
    assert any("notes.jpg: not changed:" in line for line in problems)
    assert any("cut.jpg: not changed:" in line for line in problems)
    assert "Tagged 4 photos" in result.stdout and "4 left unchanged because they could not be read or written" \
        in result.stdout
    for name in ("notes.jpg", "cut.jpg", "locked.jpg", "camera.gif"):
        assert (folder / name).read_bytes() == before[name]
    assert not list(folder.glob(f".*{PARTIAL}"))


def test_a_progress_bar_on_a_terminal_then_a_summary(tiny_bundle, folder):
    command = [sys.executable, "-m", "lablr.core.cli", "tag", "--model", str(tiny_bundle), str(folder)]
    stdout, shown = on_a_terminal(command)
    assert b"4/4" in shown and b"photo" in shown, shown
    assert stdout.strip().splitlines()[-1].startswith("Tagged 4 photos with")
    _, quiet = on_a_terminal([*command, "--quiet", "--force"])
    assert b"4/4" not in quiet
    logged = tag(tiny_bundle, folder, "--force")  # stderr to a file, not a terminal: no bar in the log
    assert "4/4" not in logged.stderr and logged.stdout.strip().splitlines()[-1].startswith("Tagged 0 photos with")


def test_kill_9_in_the_middle_of_a_batch_leaves_each_photo_whole(tiny_bundle, tmp_path):
    """SIGKILL a real `lablr tag` while it works: every photo is as it was or fully tagged; a rerun finishes."""
    originals = {}
    for i in range(40):
        photo = make_photo(tmp_path / f"p{i:02d}.jpg", colour=["red", "blue", "green"][i % 3],
                           shape=["circle", "square", "triangle"][i % 3], size=900, seed=i)
        originals[photo.name] = photo.read_bytes()
    command = [sys.executable, "-m", "lablr.core.cli", "tag", str(tmp_path), "--model", str(tiny_bundle), "-q"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                               env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        lines = []
        deadline = time.monotonic() + 120
        while len(lines) < 3 and time.monotonic() < deadline:
            line = process.stdout.readline()
            if not line:
                break
            lines.append(line)
        os.kill(process.pid, signal.SIGKILL)
    finally:
        process.kill()
        process.wait()
    assert len(lines) == 3, "lablr tag finished or failed before it could be killed"

    tagged = [name for name, data in originals.items() if (tmp_path / name).read_bytes() != data]
    assert 3 <= len(tagged) < len(originals)  # it was killed mid-batch
    for name, data in originals.items():
        now = (tmp_path / name).read_bytes()
        if now != data:
            assert_fully_tagged(tmp_path / name, data)

    rerun = tag(tiny_bundle, tmp_path)
    assert rerun.exit_code == 0, rerun.output
    assert f"{len(tagged)} already tagged by Lablr" in rerun.stdout
    assert not list(tmp_path.glob(f".*{PARTIAL}"))  # a leftover of the killed run is cleaned up
    for name, data in originals.items():
        assert_fully_tagged(tmp_path / name, data)


def assert_fully_tagged(path, original: bytes):
    seen = read_tags(path)
    assert seen["Added"] and seen["Subject"] == OLD_XMP + seen["Added"]
    assert seen["Keywords"] == OLD_IPTC + seen["Added"]
    assert {key: seen[key] for key in CAMERA} == CAMERA
    assert jpeg_scan(path.read_bytes()) == jpeg_scan(original)


def test_a_symlink_is_never_written_through(tiny_bundle, tmp_path):
    """`ln -s /elsewhere/v.jpg in/l.jpg; lablr tag in/` must leave /elsewhere/v.jpg alone."""
    elsewhere, inside = tmp_path / "elsewhere", tmp_path / "in"
    elsewhere.mkdir(), inside.mkdir()
    victim = make_photo(elsewhere / "v.jpg")
    (elsewhere / "sub").mkdir()
    hidden_victim = make_photo(elsewhere / "sub" / "w.jpg")
    before = {victim: victim.read_bytes(), hidden_victim: hidden_victim.read_bytes()}
    own = make_photo(inside / "own.jpg")
    (inside / "l.jpg").symlink_to(victim)
    (inside / "linked-folder").symlink_to(elsewhere / "sub")
    result = tag(tiny_bundle, inside, inside / "l.jpg")  # through the folder, and named itself
    assert all(path.read_bytes() == data for path, data in before.items())
    assert (inside / "l.jpg").is_symlink() and read_tags(own)["Added"]
    refused = [line for line in result.output.splitlines() if "l.jpg: not changed" in line]
    assert len(refused) == 2 and all("symbolic link" in line for line in refused)
    assert "Tagged 1 photos" in result.stdout and result.exit_code == 1


def test_a_link_put_in_a_photos_place_while_it_is_tagged_is_replaced_not_followed(tmp_path):
    from lablr.core.photometa.tagging import Skip, replace_file

    victim, photo = tmp_path / "victim.jpg", tmp_path / "photo.jpg"
    victim.write_bytes(b"victim"), photo.write_bytes(b"photo")
    expected = photo.stat()
    photo.unlink()
    photo.symlink_to(victim)
    with pytest.raises(Skip, match="changed"):
        replace_file(photo, b"tagged", expected=expected, keep_mtime=False)
    assert victim.read_bytes() == b"victim" and photo.is_symlink()


@pytest.mark.parametrize("kind", list(UNDECODABLE_XMP))
def test_metadata_lablr_cannot_read_whole_is_never_dropped(tiny_bundle, tmp_path, kind):
    photo = jpeg_with_xmp(tmp_path / "captioned.jpg", UNDECODABLE_XMP[kind])
    exiftool(photo, "-IPTC:Keywords=kept in iptc")  # readable beside the XMP that is not
    original = photo.read_bytes()
    for args in (["--dry-run"], [], ["--force"]):
        result = tag(tiny_bundle, *args, photo)
        assert photo.read_bytes() == original and result.exit_code == 1
        lines = [line for line in result.output.splitlines() if "captioned.jpg" in line]
        assert len(lines) == 1 and "not changed: Lablr could not read all of the photo's metadata" in lines[0]
        assert lines[0].endswith("With --sidecar its tags go to captioned.xmp beside it instead.")
    assert CAPTION.encode() in photo.read_bytes()
    sidecar = tag(tiny_bundle, "--sidecar", photo)
    assert sidecar.exit_code == 0 and photo.read_bytes() == original
    seen = read_tags(tmp_path / "captioned.xmp")  # what could be read, then Lablr's tags, and it says so
    assert seen["Subject"] == ["kept in iptc", *seen["Added"]] and seen["Added"]
    assert sidecar.stdout.splitlines()[0].endswith(
        "(captioned.xmp; not all of the photo's metadata could be read, so it may lack some of its keywords)")


def test_dry_run_leaves_a_killed_runs_partial_files_and_a_real_run_removes_them(tiny_bundle, folder):
    leftover = folder / f".photo-0.jpg.{2**22 + 12345}{PARTIAL}"  # a process id no live process has
    leftover.write_bytes(b"half a photo")
    dry_run(tiny_bundle, folder)
    assert leftover.exists()
    tag(tiny_bundle, folder)
    assert not leftover.exists()


def test_names_and_library_notes_cannot_reach_the_terminal_raw(tiny_bundle, tmp_path):
    """A newline or an escape sequence in a file name is shown escaped, and exiv2's own warnings
    become the reason on Lablr's one line instead of lines of their own."""
    make_photo(tmp_path / "new\nline.jpg")
    make_photo(tmp_path / "\x1b[31mred.jpg")
    jpeg_with_xmp(tmp_path / "bad-xmp.jpg", UNDECODABLE_XMP["undeclared prefix"])
    command = [sys.executable, "-m", "lablr.core.cli", "tag", str(tmp_path), "--model", str(tiny_bundle), "-q"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 1
    assert "\x1b" not in result.stdout + result.stderr
    assert "new\\x0aline.jpg: added" in result.stdout and "\\x1b[31mred.jpg: added" in result.stdout
    [refused] = result.stderr.splitlines()
    assert refused.startswith(f"{tmp_path}/bad-xmp.jpg: not changed: Lablr could not read all of the photo's metadata")
    assert "Failed to decode XMP metadata" in refused and refused.endswith(
        "the photo was left as it was. With --sidecar its tags go to bad-xmp.xmp beside it instead.")
    assert len(result.stdout.splitlines()) == 3


UNICODE_NAMES = {"red": "rouge vif", "blue": "синий", "green": "緑", "circle": "círculo", "square": "carré",
                 "triangle": "τρίγωνο"}


def test_a_keyword_already_there_behind_a_byte_order_mark_is_not_added_again(tiny_bundle, tmp_path):
    """A keyword pasted from a text file can begin with an editor's byte-order mark, which no one sees:
    it is the same keyword, as it is the same tag when learned."""
    photo = make_photo(tmp_path / "pasted.jpg", keywords=False)
    top = dry_run(tiny_bundle, photo, "--k", "2")["photos"][0]["added"]
    exiftool(photo, f"-XMP-dc:Subject=\ufeff{top[0]['tag']}")
    assert [s["tag"] for s in dry_run(tiny_bundle, photo, "--k", "2")["photos"][0]["added"]] == [top[1]["tag"]]
    tag(tiny_bundle, photo, "--k", "2")
    assert read_tags(photo)["Subject"] == [f"\ufeff{top[0]['tag']}", top[1]["tag"]]


@pytest.fixture(scope="module")
def unicode_bundle(tmp_path_factory):
    """A tiny model whose tags are in five scripts, trained like the shared one."""
    from conftest import TINY_RULES, write_shapes

    from lablr.core.data.importing import import_source
    from lablr.core.data.selection import Rules
    from lablr.core.pipeline.train import train

    root = tmp_path_factory.mktemp("unicode")
    rows = [f"images/{path.name},{UNICODE_NAMES[tag]}\n" for path, tags in write_shapes(root / "images", per_kind=6)
            for tag in tags]
    (root / "labels.csv").write_text("path,label\n" + "".join(rows), encoding="utf-8")
    import_source("csv", str(root / "labels.csv"), root / "catalog.db", progress=False)
    train(root / "catalog.db", root / "unicode-model",
          encoder_settings={"image_size": 16, "latent_dim": 4, "filters": 8}, rules=Rules(**{**TINY_RULES, "min_tag_photos": 3}), epochs=2, progress=False)
    return root / "unicode-model"


@pytest.mark.parametrize("suffix", ["jpg", "webp"])
def test_unicode_tags_are_written_and_read_back(unicode_bundle, tmp_path, suffix):
    photo = make_photo(tmp_path / f"a.{suffix}", colour="green", shape="triangle")
    result = tag(unicode_bundle, photo, "--k", "6")
    assert result.exit_code == 0, result.output
    seen = read_tags(photo)
    assert sorted(seen["Added"]) == sorted(UNICODE_NAMES.values())
    assert seen["Subject"] == OLD_XMP + seen["Added"]
    assert seen["Keywords"] == (OLD_IPTC + seen["Added"] if suffix in WITH_IPTC else [])
    assert f"{photo}: added {', '.join(seen['Added'])}" in result.stdout


def test_keywords_in_an_extended_xmp_packet_are_never_hidden_by_a_second_list(tiny_bundle, tmp_path):
    """Past 64 KB a JPEG's XMP goes on in extended packets (exiftool writes them), which exiv2 does
    not read: tagging must not write a second dc:subject beside the photo's own thousands."""
    photo = make_photo(tmp_path / "archive.jpg", keywords=False)
    own = [f"archive keyword {i:04d}" for i in range(3000)]
    exiftool(photo, *[f"-XMP-dc:Subject={k}" for k in own])
    original = photo.read_bytes()
    assert b"http://ns.adobe.com/xmp/extension/" in original
    for request in (["--dry-run"], [], ["--force"]):
        result = tag(tiny_bundle, *request, photo)
        lines = [line for line in result.output.splitlines() if "archive.jpg" in line]
        assert photo.read_bytes() == original and result.exit_code == 1, result.output
        assert len(lines) == 1 and "not changed: Lablr could not read all of the photo's metadata" in lines[0]


def test_a_keyword_already_there_with_decomposed_accents_is_not_added_again(unicode_bundle, tmp_path):
    photo = make_photo(tmp_path / "mac.jpg", colour="green", shape="triangle", keywords=False)
    decomposed = unicodedata.normalize("NFD", UNICODE_NAMES["square"])  # as macOS writes "carré"
    exiftool(photo, f"-XMP-dc:Subject={decomposed}")
    result = tag(unicode_bundle, photo, "--k", "6")
    assert result.exit_code == 0, result.output
    subject = read_tags(photo)["Subject"]
    assert [unicodedata.normalize("NFC", k) for k in subject].count(UNICODE_NAMES["square"]) == 1, subject
    assert subject[0] == decomposed and len(subject) == 6  # the photographer's own, then the five others


def all_fields(path) -> dict:
    """Every field exiftool reads, by group, less the file system's and where each page's strips lie."""
    out = subprocess.run(["exiftool", "-j", "-G1", "-a", "-n", str(path)], check=True, capture_output=True,
                         text=True).stdout
    return {key: value for key, value in json.loads(out)[0].items()
            if not key.startswith(("System:", "File:", "SourceFile")) and not key.endswith(":StripOffsets")}


def test_a_multi_page_tiff_is_tagged_with_every_page_and_its_fields_kept(tiny_bundle, tmp_path):
    photo = tmp_path / "scan.tif"
    pages = [draw_shape("red", "circle", size=96), draw_shape("blue", "square", size=64),
             draw_shape("green", "triangle", size=48)]
    pages[0].save(photo, "TIFF", save_all=True, append_images=pages[1:], compression="tiff_lzw")
    exiftool(photo, "-IFD0:ImageDescription=page one", "-IFD1:ImageDescription=page two", "-IFD0:Artist=Me",
             "-XMP-dc:Subject=Old Tag", "-IPTC:Keywords=Old Tag")
    before, original = all_fields(photo), photo.read_bytes()
    result = tag(tiny_bundle, photo, "--k", "2")
    assert result.exit_code == 0 and "Tagged 1 photos" in result.stdout, result.output
    after = all_fields(photo)
    new = [key for key in after if key not in before]
    assert {key: after[key] for key in before if key not in CHANGED} == {k: v for k, v in before.items()
                                                                         if k not in CHANGED}
    assert sorted(new) == ["XMP-lablr:Added", "XMP-lablr:Model", "XMP-lablr:Tagged"]
    assert len(after["XMP-dc:Subject"]) == 3 and after["XMP-dc:Subject"][0] == "Old Tag"
    with Image.open(io.BytesIO(original)) as was, Image.open(photo) as now:
        assert [frame.tobytes() for frame in ImageSequence.Iterator(was)] == \
            [frame.tobytes() for frame in ImageSequence.Iterator(now)]


CHANGED = {"XMP-dc:Subject", "IPTC:Keywords", "XMP-x:XMPToolkit"}  # what lablr tag documents it writes


def test_keywords_only_in_iptc_stay_what_xmp_readers_see(tiny_bundle, tmp_path):
    """A photo keyworded by an older program has IPTC Keywords and no XMP. Lightroom and every reader
    that follows the Metadata Working Group take XMP dc:subject over IPTC once it is there: the XMP
    list Lablr begins must carry the photographer's keywords too, or they vanish from those readers."""
    photo = make_photo(tmp_path / "slide.jpg", keywords=False)
    exiftool(photo, "-IPTC:Keywords=Grandma", "-IPTC:Keywords=Lake Garda", "-IPTC:CodedCharacterSet=UTF8")
    result = tag(tiny_bundle, photo, "--k", "2")
    assert result.exit_code == 0, result.output
    seen = read_tags(photo)
    assert seen["Subject"] == ["Grandma", "Lake Garda", *seen["Added"]] and len(seen["Added"]) == 2
    mwg = subprocess.run(["exiftool", "-j", "-use", "MWG", "-MWG:Keywords", str(photo)], check=True,
                         capture_output=True, text=True).stdout
    assert json.loads(mwg)[0]["Keywords"] == seen["Subject"]


def test_an_enormous_sidecar_is_named_and_both_files_left_as_they_were(tiny_bundle, tmp_path):
    photo, sidecar = make_photo(tmp_path / "p.jpg"), tmp_path / "p.xmp"
    padded_sidecar(sidecar, "from darktable", defaults.MAX_SIDECAR_BYTES + 1)
    original, content = photo.read_bytes(), sidecar.read_bytes()
    result = tag(tiny_bundle, photo, "--sidecar", "--k", "2")
    assert result.exit_code == 1, result.output
    assert (f"p.jpg: not changed: its sidecar p.xmp is larger than {defaults.MAX_SIDECAR_BYTES:,} bytes"
            in result.output), result.output
    assert sidecar.read_bytes() == content and photo.read_bytes() == original


def test_iptc_keywords_written_as_utf8_without_saying_so_reach_xmp_as_written(tiny_bundle, tmp_path):
    """The XMP list Lablr begins carries the IPTC keywords: "café", stored as UTF-8 with no character set
    record, was copied into it as "cafÃ©" (read as Latin-1), for every XMP reader to show from then on."""
    photo = make_photo(tmp_path / "slide.jpg", keywords=False)
    exiftool(photo, "-charset", "iptc=UTF8", "-IPTC:Keywords=café", "-IPTC:Keywords=Lake Garda")
    result = tag(tiny_bundle, photo, "--k", "2")
    assert result.exit_code == 0, result.output
    seen = read_tags(photo)
    assert seen["Subject"] == ["café", "Lake Garda", *seen["Added"]] and len(seen["Added"]) == 2


def test_a_photo_file_past_the_size_lablr_reads_is_named_and_left_as_it_was(tiny_bundle, tmp_path, monkeypatch):
    """Photos were read whole: a small JPEG followed by 3 GB of zeros (a sparse file, nothing on disk) took
    3.1 GB to suggest tags for, and would have been written again whole; one of tens of gigabytes took the
    machine's memory. Here the bound is made small, as a big file would meet the real one."""
    photo = make_photo(tmp_path / "padded.jpg")
    original = photo.read_bytes()
    monkeypatch.setattr(defaults, "MAX_PHOTO_BYTES", len(original) + 1000)
    with open(photo, "r+b") as file:
        file.truncate(len(original) + 1001)  # what follows a JPEG's end is kept as it is
    for flags in (["--dry-run"], []):
        result = tag(tiny_bundle, photo, *flags)
        assert result.exit_code == 1, result.output
        assert (f"padded.jpg: not changed: it is larger than {len(original) + 1000:,} bytes, more than Lablr reads"
                in result.output), result.output
        assert photo.read_bytes() == original + bytes(1001)
    learned = CliRunner().invoke(cli, ["personal", "learn", str(photo), "--model", str(tiny_bundle), "-q"],
                                 env={"XDG_DATA_HOME": str(tmp_path / "data")})
    assert learned.exit_code == 1 and "0 unreadable" not in learned.output, learned.output
    assert "is larger than" in learned.output
    for command in (["suggest", str(photo)], ["plot", str(photo), "-o", str(tmp_path / "where.png")]):
        result = CliRunner().invoke(cli, [*command, "--model", str(tiny_bundle), "--no-personal"])
        assert result.exit_code == 1 and "is larger than" in result.output, result.output
