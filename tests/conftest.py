"""Shared fixtures: a small tagged image set drawn here, and a tiny model trained on it."""

import atexit
import fcntl
import io
import os
import pty
import select
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import termios
import time
import zlib
from pathlib import Path
from urllib.parse import urlsplit

os.environ["LABLR_LOAD_PLUGINS"] = ""  # no third-party plugin unless a test installs one
# Personal layers (and anything else of the user's) go to a directory of this run, never ~/.local/share.
os.environ["XDG_DATA_HOME"] = tempfile.mkdtemp(prefix="lablr-test-data-")
atexit.register(shutil.rmtree, os.environ["XDG_DATA_HOME"], ignore_errors=True)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import pytest
from lablr_server import free_port
from PIL import Image, ImageDraw

LABLR = [sys.executable, "-m", "lablr.core.cli"]  # the command line, in a process of its own
COLOURS = {"red": (220, 40, 40), "blue": (40, 70, 220), "green": (40, 170, 60)}
SHAPES = ("circle", "square", "triangle")


def draw_shape(colour, shape, size=48, seed=0) -> Image.Image:
    """A coloured shape on white, placed with a little jitter: tagged by colour and shape."""
    rng = np.random.default_rng(seed)
    image = Image.new("RGB", (size, size), "white")
    draw = ImageDraw.Draw(image)
    offset = rng.integers(-4, 5, size=2)
    low, high = size // 4 + offset, 3 * size // 4 + offset
    box = [int(low[0]), int(low[1]), int(high[0]), int(high[1])]
    fill = tuple(int(np.clip(c + rng.integers(-20, 21), 0, 255)) for c in COLOURS[colour])
    if shape == "circle":
        draw.ellipse(box, fill=fill)
    elif shape == "square":
        draw.rectangle(box, fill=fill)
    else:
        draw.polygon([(box[0], box[3]), (box[2], box[3]), ((box[0] + box[2]) // 2, box[1])], fill=fill)
    return image


def encoded(image: Image.Image, format="PNG", **options) -> bytes:
    """The image as the bytes of a file in this format."""
    buffer = io.BytesIO()
    image.save(buffer, format=format, **options)
    return buffer.getvalue()


def photo(colour="red", shape="circle", seed=0, format="PNG") -> bytes:
    """A drawn shape as a file's bytes."""
    return encoded(draw_shape(colour, shape, seed=seed), format)


def arrays(path) -> dict:
    """The arrays of an .npz file, read as Lablr reads them: without pickle."""
    with np.load(path, allow_pickle=False) as data:
        return {key: data[key] for key in data.files}


def tag_statistics(bundle) -> dict:
    return arrays(Path(bundle) / "tag_stats.npz")


def write_shapes(directory, per_kind=12):
    """PNG files for every colour x shape, and their tags as (path, [colour, shape]) pairs."""
    directory.mkdir(parents=True, exist_ok=True)
    labelled = []
    for colour in COLOURS:
        for shape in SHAPES:
            for i in range(per_kind):
                path = directory / f"{colour}-{shape}-{i:02d}.png"
                draw_shape(colour, shape, seed=zlib.crc32(path.name.encode())).save(path)
                labelled.append((path, [colour, shape]))
    return labelled


def on_a_terminal(command, env=None) -> tuple[str, bytes]:
    """Run a command with its stderr on a terminal of 24 x 100 (a pseudo-terminal), as a person runs it:
    (its stdout, what the terminal showed)."""
    primary, terminal = pty.openpty()
    fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))
    shown = b""
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=terminal, env={**os.environ, **(env or {})}) as run:
        os.close(terminal)
        for _ in range(3000):  # bounded: 0.1 s each
            if not select.select([primary], [], [], 0.1)[0]:
                if run.poll() is not None:
                    break
                continue
            try:
                shown += os.read(primary, 4096)
            except OSError:  # the terminal's other end closed: the command is done
                break
        stdout = run.stdout.read().decode()
        run.wait(timeout=60)
    os.close(primary)
    return stdout, shown


def interrupted(command, *, once_printed: str, after: float, env=None) -> subprocess.CompletedProcess:
    """Run a command, and press Ctrl-C (SIGINT) `after` seconds once its stdout shows `once_printed`."""
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          env={**os.environ, **(env or {})}) as run:
        shown = b""
        while once_printed.encode() not in shown:
            chunk = os.read(run.stdout.fileno(), 65536)
            if not chunk:  # it ended first
                break
            shown += chunk
        time.sleep(after)
        run.send_signal(signal.SIGINT)  # nothing if it has ended
        stdout, stderr = run.communicate(timeout=120)
    return subprocess.CompletedProcess(command, run.returncode, (shown + stdout).decode(), stderr.decode())


@pytest.fixture(scope="session")
def shapes_csv(tmp_path_factory):
    """The original Lablr's path,label CSV over 108 drawn images, two labels each."""
    root = tmp_path_factory.mktemp("shapes")
    labelled = write_shapes(root / "images")
    csv_path = root / "labels.csv"
    csv_path.write_text("path,label\n" + "".join(f"images/{p.name},{t}\n" for p, tags in labelled for t in tags))
    return csv_path


TINY_RULES = dict(per_owner_cap=1000, min_tag_photos=5, min_train_photos=3)
TINY_RULE_OPTIONS = [text for name, value in TINY_RULES.items() for text in (f"--{name.replace('_', '-')}", str(value))]


@pytest.fixture(scope="session")
def tiny_bundle(tmp_path_factory, shapes_csv):
    """A real model bundle trained for a few seconds: 16x16 images, a 4-d latent space. The same model
    every run: its photos are keyed by file name (the csv source keys them by absolute path, under
    pytest's tmp directory, and the split hashes the key), and the seeded training repeats on a CPU."""
    from dataclasses import replace

    from lablr.core.data.catalog import Catalog
    from lablr.core.data.selection import Rules
    from lablr.core.pipeline.train import train
    from lablr.plugins.files import CsvSource

    root = tmp_path_factory.mktemp("tiny")
    catalog = root / "catalog.db"
    Catalog(catalog).add([replace(record, key=f"shapes:{Path(record.path).name}")
                          for record in CsvSource().records(str(shapes_csv))], "csv")
    train(catalog, root / "tiny-model", encoder_settings={"image_size": 16, "latent_dim": 4, "filters": 8},
          rules=Rules(**TINY_RULES), epochs=3, progress=False)
    return root / "tiny-model"


def real_photo():
    """scikit-image's photograph of a cat (chelsea.png; scikit-image is a test dependency), or None."""
    try:
        import skimage.data
    except ImportError:
        return None
    return Path(skimage.data.__file__).parent / "chelsea.png"


CHROMIUM = os.environ.get("LABLR_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
LOCAL_HOSTS = ("127.0.0.1", "localhost")


@pytest.fixture(scope="module")
def playwright_driver():
    """Playwright for one module's tests in Debian's Chromium (CHROMIUM); they are skipped without either."""
    sync_api = pytest.importorskip("playwright.sync_api")
    if not Path(CHROMIUM).exists():
        pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium)")
    with sync_api.sync_playwright() as driver:
        yield driver


def dead_proxy() -> dict:
    """Playwright's proxy setting for a browser that must stay on this machine: every request not to
    127.0.0.1 or localhost goes to a port on 127.0.0.1 where nothing listens, and fails there."""
    return {"server": f"http://127.0.0.1:{free_port()}", "bypass": ",".join(LOCAL_HOSTS)}


def keep_off_the_network(context, served=()):
    """Every request of a Playwright browser context that is not to 127.0.0.1 or localhost, nor under
    one of the `served` URL prefixes (the test's own routes answer those), in a list for the test to
    fail on. Watched, not routed: a route that could match the extension's requests to the local
    server pauses each of them, and its uploads stall. dead_proxy() is what stops them."""
    tried = []

    def watch(request):
        url = urlsplit(request.url)
        if url.scheme in ("http", "https") and url.hostname not in LOCAL_HOSTS and not request.url.startswith(served):
            tried.append(request.url)

    context.on("request", watch)
    return tried


def screenshot_file(name: str, tmp_path: Path) -> Path:
    """Where a test saves a picture the README shows: docs/NAME when LABLR_SCREENSHOTS=1 (retaking the
    pictures on purpose), else a file under tmp_path, so that a test run leaves the work tree as it was."""
    if os.environ.get("LABLR_SCREENSHOTS") == "1":
        return Path(__file__).resolve().parent.parent / "docs" / name
    return tmp_path / name
