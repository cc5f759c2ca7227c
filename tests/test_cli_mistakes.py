"""The mistakes a new user makes with `lablr`: each is one clear line, never a traceback, and
nothing is lost (an output in a folder that is not there, a picture format Lablr does not draw,
a port already in use, Ctrl-C in the middle of a folder, photos with spaces, accents and
upper-case suffixes in their names)."""

import os
import socket
import subprocess
import sys

import pytest
from click.testing import CliRunner
from conftest import draw_shape
from photo_files import make_photo, needs_exiftool

from lablr.core.cli import cli


def run(*args, env=None):
    return subprocess.run([sys.executable, "-m", "lablr.core.cli", *map(str, args)], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=300)


def one_error_line(result) -> str:
    """The error line of a failed command, after checking that it is the only thing it said."""
    assert result.returncode == 1, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr + result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    return lines[0]


@pytest.fixture
def photo(tmp_path):
    path = tmp_path / "red.png"
    draw_shape("red", "circle", size=64).save(path)
    return path


def test_an_output_in_a_folder_that_is_not_there_is_one_line_naming_it(tiny_bundle, photo, tmp_path):
    missing = tmp_path / "no such folder"
    picture = one_error_line(run("plot", photo, "-o", missing / "where.png", "--model", tiny_bundle))
    assert picture == f"Error: {missing / 'where.png'}: No such file or directory."
    events = one_error_line(run("personal", "export", missing / "mine.json", "--model", tiny_bundle,
                                env={"XDG_DATA_HOME": str(tmp_path / "data")}))
    assert events == f"Error: {missing / 'mine.json'}: No such file or directory."
    assert not missing.exists()


def test_plot_draws_png_or_svg_and_says_so_for_any_other_name(tiny_bundle, photo, tmp_path):
    result = CliRunner().invoke(cli, ["plot", str(photo), "-o", str(tmp_path / "where.gif"), "--model",
                                      str(tiny_bundle)])
    assert result.exit_code == 1 and "give --output a name ending in .png or .svg" in result.output
    assert not (tmp_path / "where.gif").exists()
    upper = CliRunner().invoke(cli, ["plot", str(photo), "-o", str(tmp_path / "WHERE.SVG"), "--model",
                                     str(tiny_bundle)])
    assert upper.exit_code == 0, upper.output
    assert (tmp_path / "WHERE.SVG").read_text().lstrip().startswith("<?xml")


def test_serve_on_a_port_in_use_says_so_in_one_line_before_it_claims_to_serve(tiny_bundle):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run("serve", "--port", port, "--model", tiny_bundle, "--no-personal")
    line = one_error_line(result)
    assert line == (f"Error: Port {port} on 127.0.0.1 is already in use (another Lablr server, or another "
                    "program): stop it, or choose another port with --port.")
    assert "Lablr is serving" not in result.stdout + result.stderr


@needs_exiftool
def test_names_with_spaces_accents_and_upper_case_suffixes_are_found_suggested_tagged_and_learned(
        tiny_bundle, tmp_path):
    folder = tmp_path / "My Photos" / "été 2026"
    folder.mkdir(parents=True)
    photos = [make_photo(folder / "Red Circle.jpg", keywords=False), make_photo(folder / "bleu.jpg", "blue")]
    photos = [path.rename(path.with_name(name)) for path, name in zip(photos, ["Red Circle.JPG", "Bleu ça.JPEG"])]
    env = {"XDG_DATA_HOME": str(tmp_path / "data")}

    suggested = run("suggest", *photos, "-k", 2, "--model", tiny_bundle, env=env)
    assert suggested.returncode == 0, suggested.stderr
    assert [line.split(": ")[0] for line in suggested.stdout.splitlines()] == [str(p) for p in photos]
    tagged = run("tag", tmp_path / "My Photos", "-k", 2, "-q", "--model", tiny_bundle, env=env)
    assert tagged.returncode == 0, tagged.stderr
    assert tagged.stdout.splitlines()[-1].startswith("Tagged 2 photos with 4 keywords")
    learned = run("personal", "learn", tmp_path / "My Photos", "-q", "--model", tiny_bundle, env=env)
    assert learned.returncode == 0, learned.stderr
    assert learned.stdout.startswith("Learned from 1 photos; 0 already known, 1 without keywords of their own")
