"""The mistakes a new user makes with `lablr`: each is one clear line, never a traceback, and
nothing is lost (an output in a folder that is not there, a picture format Lablr does not draw,
a port already in use, Ctrl-C in the middle of a folder, photos with spaces, accents and
upper-case suffixes in their names)."""

import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import draw_shape, interrupted
from photo_files import exiftool, make_photo, needs_exiftool

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
def test_ctrl_c_in_personal_learn_says_what_was_learned_and_a_rerun_learns_the_rest(tiny_bundle, tmp_path):
    folder = tmp_path / "album"
    folder.mkdir()
    for i in range(160):
        draw_shape(["red", "blue", "green"][i % 3], ["circle", "square", "triangle"][i % 3], size=700,
                   seed=i).save(folder / f"p{i:03d}.jpg", quality=90)
    exiftool(folder, "-XMP-dc:Subject=holiday")
    env = {**os.environ, "XDG_DATA_HOME": str(tmp_path / "data"), "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen([sys.executable, "-m", "lablr.core.cli", "personal", "learn", str(folder), "-q",
                                "--model", str(tiny_bundle)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, env=env)
    try:
        wait_for_an_event(tmp_path / "data", process)
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=60)
    finally:
        process.kill()
    assert process.returncode == 130, (out, err)
    assert "Traceback" not in out + err and out == ""
    [line] = err.strip().splitlines()
    assert line.startswith("Interrupted after ") and " of 160 photos. Learned from " in line, line
    assert line.endswith("run it again to learn the rest (a photo counts once).")
    learned = int(line.split("Learned from ")[1].split()[0])
    assert 0 < learned < 160

    rerun = run("personal", "learn", folder, "-q", "--model", tiny_bundle, env=env)
    assert rerun.returncode == 0, rerun.stderr
    assert rerun.stdout.startswith(f"Learned from {160 - learned} photos; {learned} already known")


@needs_exiftool
@pytest.mark.parametrize("command", ["personal learn", "tag --dry-run"])
def test_ctrl_c_once_the_summary_is_printed_ends_in_one_line_or_none(tiny_bundle, tmp_path, command):
    """The work is done and Python is ending (threads joined, the model's interpreters deleted): a Ctrl-C then
    ended it as killed by SIGINT (status -2), or with a traceback or click's "Aborted!"."""
    folder = tmp_path / "album"
    folder.mkdir()
    for i in range(3):
        make_photo(folder / f"p{i}.jpg", seed=i)
    env = {"XDG_DATA_HOME": str(tmp_path / "data")}
    summary = "Learned from" if command.startswith("personal") else "Would tag"
    for after in (0, 0.01, 0.03):
        result = interrupted([sys.executable, "-m", "lablr.core.cli", *command.split(), str(folder), "-q", "--model",
                              str(tiny_bundle)], once_printed=summary, after=after, env=env)
        assert summary in result.stdout and "Traceback" not in result.stderr, result.stderr
        if result.returncode == 130:
            assert result.stderr == "Interrupted.\n", result.stderr
        else:  # in Python's last steps: let pass
            assert (result.returncode, result.stderr) == (0, ""), (after, result.returncode, result.stderr)


def test_ctrl_c_in_import_says_so_in_one_line_and_a_rerun_imports_it_all(tmp_path):
    """Held reading a photo (a named pipe stands in for a slow disk), `lablr import` is interrupted: one line,
    status 130, and the catalog holds whole batches only, so a rerun imports the rest."""
    draw_shape("red", "circle").save(tmp_path / "red.png")
    os.mkfifo(tmp_path / "slow.png")
    (tmp_path / "labels.csv").write_text("path,label\nred.png,red\nslow.png,blue\n")
    command = [sys.executable, "-m", "lablr.core.cli", "import", "csv", str(tmp_path / "labels.csv"), "--catalog",
               str(tmp_path / "c.db")]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        writer = wait_for_a_reader(tmp_path / "slow.png", process)
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=60)
        os.close(writer)
    finally:
        process.kill()
    assert (process.returncode, out, err) == (130, "", "Interrupted.\n")
    (tmp_path / "slow.png").unlink()
    draw_shape("blue", "square").save(tmp_path / "slow.png")
    rerun = run("import", "csv", tmp_path / "labels.csv", "--catalog", tmp_path / "c.db")
    assert rerun.returncode == 0 and rerun.stdout.startswith("2 new photos"), rerun.stdout + rerun.stderr


def wait_for_a_reader(fifo: Path, process, timeout=120) -> int:
    """Until the process opens the named pipe to read it; then the open end for writing, written nothing."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        try:
            return os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
        except OSError:  # ENXIO: no reader yet
            time.sleep(0.02)
    raise AssertionError("lablr import finished or failed before it read the pipe")


def wait_for_an_event(data: Path, process, timeout=120):
    """Until the layer holds its first event (the first batch is learned), while the command goes on."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        for layer in data.glob("lablr/personal/*.sqlite"):
            try:
                with sqlite3.connect(f"file:{layer}?mode=ro", uri=True) as db:
                    if db.execute("select count(*) from events").fetchone()[0]:
                        return
            except sqlite3.OperationalError:
                pass  # the table is being created
        time.sleep(0.02)
    raise AssertionError("lablr personal learn finished or failed before it could be interrupted")


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
    assert learned.stdout.startswith("Learned from 1 photo; 0 already known, 1 without keywords of their own")


def test_too_few_photos_for_the_rules_names_the_options_that_lower_them(tiny_bundle, tmp_path):
    for tag in ("cat", "coffee"):
        (tmp_path / "by-tag" / tag).mkdir(parents=True)
        for i in range(3):
            draw_shape("red", "circle", seed=i).save(tmp_path / "by-tag" / tag / f"{i}.png")
    catalog = str(tmp_path / "lablr.db")
    runner = CliRunner()
    assert runner.invoke(cli, ["import", "folder", str(tmp_path / "by-tag"), "--catalog", catalog]).exit_code == 0
    for command in (["fit", "--model", str(tiny_bundle)], ["train", "--epochs", "1"]):
        result = runner.invoke(cli, [*command, "--catalog", catalog, "--out", str(tmp_path / "model")])
        assert result.exit_code == 1 and result.output.count("\n") == 1, result.output
        assert "a tag needs 50 photos (--min-tag-photos) and 20 training photos (--min-train-photos)" in result.output


@pytest.mark.parametrize("command", [["export", "out.csv"], ["prepare"], ["fit", "--out", "m"],
                                     ["evaluate", "--catalog", "lablr.db"]])
def test_a_catalog_that_is_not_there_is_one_line_and_is_not_made(tiny_bundle, tmp_path, command):
    runner = CliRunner()
    with runner.isolated_filesystem(temp_dir=tmp_path):
        model = ["--model", str(tiny_bundle)] if command[0] in ("fit", "evaluate") else []
        result = runner.invoke(cli, [*command, *model])
        assert result.exit_code == 1
        assert result.output == ("Error: No catalog at lablr.db: import photos into one first (`lablr import`), "
                                 "or name yours with --catalog.\n")
        assert os.listdir(".") == []


def test_a_min_score_given_as_a_percentage_is_refused_not_silently_matched_by_nothing(tiny_bundle, photo):
    result = CliRunner().invoke(cli, ["tag", str(photo), "--min-score", "50", "--model", str(tiny_bundle)])
    assert result.exit_code == 2 and "'--min-score': 50.0 is not in the range 0<=x<=1" in result.output


@pytest.mark.parametrize("command", [["tag", "--dry-run"], ["personal", "learn"]])
def test_a_folder_without_photos_says_what_lablr_looks_for(tiny_bundle, tmp_path, command, monkeypatch):
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    (tmp_path / "phone").mkdir()
    (tmp_path / "phone" / "IMG_0001.HEIC").write_bytes(b"not read")
    (tmp_path / "empty").mkdir()
    result = CliRunner().invoke(cli, [*command, str(tmp_path / "phone"), str(tmp_path / "empty"), "-q", "--model",
                                      str(tiny_bundle)])
    assert result.exit_code == 0
    lines = result.output.splitlines()
    assert lines[0] == ("No photos found: in folders Lablr looks for .jpg, .jpeg, .jpe, .png, .tif, .tiff, .webp files "
                        "(any case; hidden ones left out).")
    if command[0] == "personal":  # learning says what it left out
        assert lines[1:] == ["1 other file left out (1 .heic): Lablr reads photos in .jpg, .jpeg, .jpe, .png, .tif, "
                             ".tiff, .webp files; for a camera's raw files, learn from the JPEG, TIFF or PNG files "
                             "exported from them."]
    else:
        assert lines[1:] == []


def test_a_file_name_with_escape_sequences_reaches_the_terminal_escaped(photo, tmp_path):
    """One error line names the file: its escape sequences (set the title, clear the screen) reached the terminal."""
    output = tmp_path / "evil\x1b]0;owned\x07\x1b[2J" / "where.png"  # in a folder that is not there
    line = one_error_line(run("plot", photo, "-o", output, "--no-personal"))
    assert "evil\\x1b]0;owned\\x07\\x1b[2J" in line and "\x1b" not in line and "\x07" not in line
