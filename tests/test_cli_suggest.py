"""`lablr suggest` over many files: each bad one is one line on stderr, the others are still answered."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import photo
from test_decode_memory import header_only_png
from test_fuzz_images import sample

from lablr.core import defaults
from lablr.plugins import openclipart


def lablr(*args):
    return subprocess.run([sys.executable, "-m", "lablr.core.cli", *map(str, args)], capture_output=True, text=True,
                          timeout=300)


def file_lines(text, paths):
    """The lines about these files (TensorFlow may add its own start-up lines to stderr)."""
    return [line for line in text.strip().splitlines() if line.startswith(tuple(f"{p}: " for p in paths))]


@pytest.fixture
def files(tmp_path):
    made = {
        "red.png": photo("red", "circle"),
        "cut.jpg": sample("JPEG")[:700],
        "cut.webp": sample("WEBP")[:300],
        "notes.png": b"path,label\nimages/a.png,red\n",
        "empty.png": b"",
        "bomb.png": header_only_png(20_000, 10_000),
        "blue.png": photo("blue", "square"),
    }
    for name, data in made.items():
        (tmp_path / name).write_bytes(data)
    (tmp_path / "folder.png").mkdir()
    names = ["red.png", "cut.jpg", "missing.png", "cut.webp", "notes.png", "folder.png", "empty.png", "bomb.png",
             "blue.png"]
    return [tmp_path / name for name in names]


GOOD = {"red.png", "blue.png"}


def test_each_bad_file_gets_one_line_and_the_good_ones_their_tags(tiny_bundle, files):
    done = lablr("suggest", "--model", tiny_bundle, "-k", 2, *files)
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr + done.stdout
    answered = done.stdout.strip().splitlines()
    assert [line.split(":", 1)[0] for line in answered] == [str(p) for p in files if p.name in GOOD]
    assert all(line.count("(") == 2 for line in answered)  # two tags with their scores
    refused = file_lines(done.stderr, files)
    assert [line.split(": ", 1)[0] for line in refused] == [str(p) for p in files if p.name not in GOOD]
    reasons = dict(line.split(": ", 1) for line in refused)
    assert f"{defaults.MAX_IMAGE_PIXELS:,} pixels" in reasons[str(files[7])]
    assert "truncated" in reasons[str(files[1])] and "No such file" in reasons[str(files[2])]
    assert reasons[str(files[5])].startswith(f"is a folder: name its photos ({files[5] / '*.jpg'})")


def test_json_keeps_every_file_in_order_with_its_answer_or_error(tiny_bundle, files):
    done = lablr("suggest", "--model", tiny_bundle, "--json", *files)
    assert done.returncode == 1
    results = json.loads(done.stdout)["results"]
    assert [r["filename"] for r in results] == [str(p) for p in files]
    codes = [r["error"]["code"] if "error" in r else "ok" for r in results]
    assert codes == ["ok", "truncated_image", "unreadable", "truncated_image", "not_an_image", "unreadable",
                     "empty_image", "image_too_large", "ok"]
    assert len(file_lines(done.stderr, files)) == 7


def test_all_good_files_exit_zero(tiny_bundle, files):
    done = lablr("suggest", "--model", tiny_bundle, files[0], files[-1])
    assert done.returncode == 0 and not file_lines(done.stderr, files)
    assert len(done.stdout.strip().splitlines()) == 2


HUGE_HELD_OUT = [Path(openclipart.installed_root()) / "png/food/beverages/milk_mateya_01.png",
                 Path(openclipart.installed_root()) / "png/food/breads_and_carbs/pasta_mateya_01.png"]


@pytest.mark.skipif(not all(p.exists() for p in HUGE_HELD_OUT), reason="Debian's openclipart-png is not installed")
def test_the_169_megapixel_held_out_drawings_do_not_stop_a_run(tiny_bundle, files):
    done = lablr("suggest", "--model", tiny_bundle, files[0], *HUGE_HELD_OUT, files[-1])
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert len(done.stdout.strip().splitlines()) == 2
    refused = file_lines(done.stderr, HUGE_HELD_OUT)
    assert len(refused) == 2 and all("more than 100,000,000 pixels" in line for line in refused)


def test_file_names_reach_the_terminal_escaped(tiny_bundle, tmp_path):
    good, bad = tmp_path / "new\nline\x1b[31m.png", tmp_path / "cut\x1b[2J.png"
    good.write_bytes(photo())
    bad.write_bytes(photo()[:100])
    done = lablr("suggest", "--model", tiny_bundle, good, bad)
    assert done.returncode == 1 and "\x1b" not in done.stdout + done.stderr
    assert done.stdout.startswith(f"{tmp_path}/new\\x0aline\\x1b[31m.png: ")
    assert [line for line in done.stderr.splitlines() if "cut" in line][0].startswith(f"{tmp_path}/cut\\x1b[2J.png: ")
