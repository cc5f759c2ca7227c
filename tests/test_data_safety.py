"""A file or folder of the user's own is never written over: a command pointed at one (a catalog that is
another program's database or a photo, an output named like a photo or the catalog itself, a work folder
Lablr did not make) refuses in one line naming it, and leaves it byte for byte as it was."""

import os
import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import TINY_RULE_OPTIONS, draw_shape

from lablr.core.cli import cli


def lablr(*args):
    return CliRunner().invoke(cli, [str(arg) for arg in args])


def refused(result, path) -> str:
    """The one error line of a command that refused, after checking it names `path`."""
    assert result.exit_code == 1 and "Traceback" not in result.output, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("Error: ")]  # a progress bar aside
    assert len(errors) == 1 and str(path) in errors[0] and result.output.rstrip().endswith(errors[0]), result.output
    return errors[0]


@pytest.fixture
def photo(tmp_path):
    path = tmp_path / "holiday.png"
    draw_shape("red", "circle", size=64).save(path)
    return path


@pytest.fixture
def browser_history(tmp_path):
    """Another program's SQLite database."""
    path = tmp_path / "places.sqlite"
    with sqlite3.connect(path) as db:
        db.execute("create table moz_places (id integer primary key, url text)")
        db.execute("insert into moz_places (url) values ('https://example.org/')")
    return path


@pytest.fixture
def catalog(tmp_path, shapes_csv):
    path = tmp_path / "lablr.db"
    assert lablr("import", "csv", shapes_csv, "--catalog", path).exit_code == 0
    return path


@pytest.mark.parametrize("command", [["import", "csv", "{csv}"], ["prepare"], ["export", "{out}"]])
def test_a_catalog_named_at_another_programs_database_or_a_photo_is_left_as_it_was(
        command, browser_history, photo, shapes_csv, tmp_path):
    for path in (browser_history, photo):
        before = path.read_bytes()
        arguments = [part.format(csv=shapes_csv, out=tmp_path / "out.csv") for part in command]
        line = refused(lablr(*arguments, "--catalog", path), path)
        assert "not a Lablr catalog" in line
        assert path.read_bytes() == before
        assert sorted(p.name for p in tmp_path.iterdir()) == ["holiday.png", "places.sqlite"]


def test_a_new_empty_file_becomes_a_catalog(tmp_path, shapes_csv):
    path = tmp_path / "new.db"
    path.touch()
    assert lablr("import", "csv", shapes_csv, "--catalog", path).exit_code == 0
    assert lablr("import", "csv", shapes_csv, "--catalog", path).exit_code == 0


def test_export_never_writes_over_its_own_catalog_or_a_photo_and_replaces_its_csv(catalog, photo, tmp_path):
    for path in (catalog, photo):
        before = path.read_bytes()
        line = refused(lablr("export", path, "--catalog", catalog), path)
        assert "is not a path,label CSV" in line and path.read_bytes() == before
    out = tmp_path / "labels.csv"
    for _ in range(2):  # run again, it writes its CSV anew
        assert lablr("export", out, "--catalog", catalog).exit_code == 0
        assert out.read_text().splitlines()[0] == "path,label" and len(out.read_text().splitlines()) > 100


def test_plot_never_writes_over_a_photo_not_even_the_one_it_draws(tiny_bundle, photo, tmp_path):
    other = tmp_path / "other.png"
    draw_shape("blue", "square", size=64).save(other)
    for output in (photo, other):
        before = output.read_bytes()
        line = refused(lablr("plot", photo, "-o", output, "--model", tiny_bundle, "--no-personal"), output)
        assert "not a picture Lablr drew" in line and output.read_bytes() == before


@pytest.mark.parametrize("suffix", [".png", ".svg"])
def test_plot_draws_its_picture_again_over_the_one_it_drew(tiny_bundle, photo, tmp_path, suffix):
    from PIL import Image

    output = tmp_path / f"where{suffix}"
    for _ in range(2):
        result = lablr("plot", photo, "-o", output, "--model", tiny_bundle, "--no-personal")
        assert result.exit_code == 0, result.output
    if suffix == ".png":
        with Image.open(output) as picture:
            picture.load()  # every chunk's checksum is right
            assert picture.info["Comment"] == "Drawn by Lablr"
    else:
        from xml.etree import ElementTree

        assert ElementTree.parse(output).getroot().tag.endswith("svg")


def test_personal_export_never_writes_over_a_file_that_is_not_an_export(tiny_bundle, photo, tmp_path):
    before = photo.read_bytes()
    line = refused(lablr("personal", "export", photo, "--model", tiny_bundle), photo)
    assert "not an export of Lablr's personal layer" in line and photo.read_bytes() == before
    out = tmp_path / "mine.json"
    for _ in range(2):
        assert lablr("personal", "export", out, "--model", tiny_bundle).exit_code == 0


@pytest.mark.parametrize("own_file", ["backup/thesis.txt", "run.json"])
def test_train_leaves_a_work_folder_it_did_not_make_as_it_was(catalog, tmp_path, own_file):
    pytest.importorskip("tensorflow")
    mine = tmp_path / "model.work" / own_file
    mine.parent.mkdir(parents=True)
    mine.write_text("my notes")
    result = lablr("train", "--catalog", catalog, "--out", tmp_path / "model", "--image-size", "16", "--latent-dim",
                   "4", "--epochs", "1", *TINY_RULE_OPTIONS)
    line = refused(result, tmp_path / "model.work")
    assert "Lablr leaves it as it is" in line
    assert mine.read_text() == "my notes" and not (tmp_path / "model").exists()


def written_by(command, tiny_bundle, catalog, photo, destination):
    return {"export": ["export", destination, "--catalog", catalog],
            "plot": ["plot", photo, "-o", destination, "--model", tiny_bundle, "--no-personal"],
            "personal export": ["personal", "export", destination, "--model", tiny_bundle]}[command]


@pytest.mark.parametrize("command, suffix", [("export", ".csv"), ("plot", ".png"), ("personal export", ".json")])
def test_an_empty_file_such_as_mktemp_makes_is_written(command, suffix, tiny_bundle, catalog, photo, tmp_path):
    destination = tmp_path / f"tmp.Xy12{suffix}"
    destination.touch()  # `out=$(mktemp --suffix .csv); lablr export "$out"`: nothing of the user's in it
    result = lablr(*written_by(command, tiny_bundle, catalog, photo, destination))
    assert result.exit_code == 0, result.output
    assert destination.stat().st_size > 0


@pytest.mark.parametrize("command, suffix", [("export", ".csv"), ("plot", ".png"), ("personal export", ".json")])
def test_a_symbolic_link_to_an_earlier_output_stays_and_its_file_is_written(
        command, suffix, tiny_bundle, catalog, photo, tmp_path):
    real, link = tmp_path / "kept" / f"real{suffix}", tmp_path / f"link{suffix}"
    real.parent.mkdir()
    assert lablr(*written_by(command, tiny_bundle, catalog, photo, real)).exit_code == 0
    real.write_bytes(real.read_bytes()[:-1])  # changed a little, to see it written anew
    before = real.read_bytes()
    link.symlink_to(real)
    result = lablr(*written_by(command, tiny_bundle, catalog, photo, link))
    assert result.exit_code == 0, result.output
    assert link.is_symlink() and real.read_bytes() != before


@pytest.mark.parametrize("stdout", ["a pipe", "a file"])
def test_export_writes_to_dev_stdout(catalog, tmp_path, stdout):
    """`lablr export /dev/stdout | head`, as it did before outputs were checked: a pipe is written into, and a
    file that stdout was sent to (`> labels.csv`) gets the CSV, with /dev/stdout left as it was."""
    import subprocess

    from conftest import LABLR

    target = tmp_path / "labels.csv"
    with open(target, "wb") as file:
        result = subprocess.run([*LABLR, "export", "/dev/stdout", "--catalog", str(catalog)], check=False,
                                stdout=subprocess.PIPE if stdout == "a pipe" else file, stderr=subprocess.PIPE)
    assert result.returncode == 0, result.stderr.decode()
    written = result.stdout if stdout == "a pipe" else target.read_bytes()
    assert written.decode().splitlines()[0] == "path,label" and len(written.splitlines()) > 100
    assert os.path.islink("/dev/stdout") or os.path.exists("/dev/stdout")
    assert not list(Path("/dev").glob(".stdout.*"))


def test_plot_draws_again_over_a_picture_saved_from_the_api(tiny_bundle, photo, tmp_path):
    """`curl -F image=@photo.png .../api/v1/plot -o where.png`, then `lablr plot photo.png -o where.png`."""
    import httpx
    from lablr_server import running_server

    with running_server(tiny_bundle, "--no-personal") as (base, _):
        for suffix in ("png", "svg"):
            answer = httpx.post(f"{base}/api/v1/plot", params={"format": suffix}, timeout=60,
                                files={"image": (photo.name, photo.read_bytes(), "image/png")})
            assert answer.status_code == 200, answer.text
            (tmp_path / f"where.{suffix}").write_bytes(answer.content)
    for suffix in ("png", "svg"):
        result = lablr("plot", photo, "-o", tmp_path / f"where.{suffix}", "--model", tiny_bundle, "--no-personal")
        assert result.exit_code == 0, result.output


def test_a_catalog_in_a_folder_that_is_not_there_is_said_in_one_line(shapes_csv, tmp_path):
    path = tmp_path / "no such folder" / "lablr.db"
    line = refused(lablr("import", "csv", shapes_csv, "--catalog", path), path)
    assert "its folder must be there" in line and not path.parent.exists()
