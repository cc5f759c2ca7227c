"""Cut-off and corrupted images of every format Lablr reads: a clear 4xx, never a 5xx, never a dead connection.

The full sweep decodes in process (thousands of files in seconds); a sample of it goes to a
real server over one keep-alive connection, which must carry every answer and a good photo after.
"""

import http.client
import io
import json
import random

import numpy as np
import pytest
from conftest import photo
from lablr_server import running_server
from PIL import Image, ImageFile

from lablr.core.data import decoding as images
from lablr.core.errors import ImageError

FORMATS = ["JPEG", "PNG", "GIF", "WEBP", "BMP", "TIFF"]
SIZE = 16
EVERY_CUT_UP_TO = 1024
LONGER_CUTS = 64
FLIPS = 200


def sample(format: str) -> bytes:
    """A small, busy 64x48 picture (noise on a gradient), so that every format needs more than 1 KB for it."""
    rng = np.random.default_rng(1)
    y, x = np.mgrid[0:48, 0:64]
    pixels = np.stack([x * 4, y * 5, (x + y) * 2], -1).astype(np.uint8) + rng.integers(0, 30, (48, 64, 3), np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format)
    return buffer.getvalue()


def cuts(data: bytes, seed=0):
    rng = random.Random(seed)
    shortest = range(min(EVERY_CUT_UP_TO + 1, len(data)))
    longer_lengths = range(EVERY_CUT_UP_TO + 1, len(data))
    longer = rng.sample(longer_lengths, min(LONGER_CUTS, len(longer_lengths)))
    return [data[:n] for n in [*shortest, *sorted(longer)]]


def flips(data: bytes, count=FLIPS, seed=0):
    rng = random.Random(seed)
    flipped = []
    for _ in range(count):
        damaged = bytearray(data)
        for _ in range(rng.randint(1, 8)):
            damaged[rng.randrange(len(damaged))] = rng.randrange(256)
        flipped.append(bytes(damaged))
    return flipped


def outcome(data: bytes):
    """The decoded array, or the ImageError; anything else escapes and fails the test."""
    try:
        return images.decode(data, SIZE)
    except ImageError as error:
        return error


def test_pillow_keeps_refusing_truncated_images():
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False


@pytest.mark.parametrize("format", FORMATS)
def test_every_cut_is_refused_unless_it_only_lost_the_end_marker(format):
    data = sample(format)
    assert len(data) > EVERY_CUT_UP_TO
    whole = images.decode(data, SIZE)
    refused = 0
    for cut in cuts(data):
        result = outcome(cut)
        if isinstance(result, ImageError):
            assert 400 <= result.status < 500 and result.code and result.message, (len(cut), result.message)
            refused += 1
        else:  # a cut that kept every pixel (GIF's trailer, PNG's IEND): the same picture, nothing invented
            assert (result == whole).all(), f"a {format} cut at {len(cut)} of {len(data)} bytes decoded differently"
            assert len(data) - len(cut) <= 32
    assert refused >= len(cuts(data)) - 32


@pytest.mark.parametrize("format", FORMATS)
def test_flipped_bytes_decode_or_are_refused_with_a_4xx(format):
    statuses = set()
    for damaged in flips(sample(format)):
        result = outcome(damaged)
        if isinstance(result, ImageError):
            assert 400 <= result.status < 500 and result.message
            statuses.add(result.status)
        else:
            assert result.shape == (SIZE, SIZE, 3) and result.dtype == np.uint8
            statuses.add(200)
    assert statuses <= {200, 400, 413}


# -- a sample against the real server, on one keep-alive connection --------------------------------------


@pytest.fixture(scope="module")
def server(tiny_bundle):
    with running_server(tiny_bundle) as (base, log):
        yield base, log


def post_raw(conn: http.client.HTTPConnection, data: bytes, content_type: str):
    conn.request("POST", "/api/v1/suggest?k=2", body=data, headers={"Content-Type": content_type})
    answer = conn.getresponse()
    return answer.status, answer.getheader("Content-Type"), answer.getheader("Connection"), answer.read()


def test_a_sample_of_damaged_files_leaves_the_connection_usable(server):
    base, log = server
    rng = random.Random(7)
    port = int(base.rsplit(":", 1)[1])
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        conn.connect()
        local = conn.sock.getsockname()
        for format in FORMATS:
            data = sample(format)
            damaged = rng.sample(cuts(data), 12) + rng.sample(flips(data), 6)
            for item in damaged:
                status, content_type, connection, body = post_raw(conn, item, f"image/{format.lower()}")
                assert status == 200 or 400 <= status < 500, body
                assert content_type == "application/json" and connection != "close"
                assert status == 200 or set(json.loads(body)["error"]) == {"code", "message"}
                assert conn.sock is not None and conn.sock.getsockname() == local  # the same connection
        status, _, _, body = post_raw(conn, photo(), "image/png")
        assert status == 200 and json.loads(body)["results"][0]["suggestions"]
        assert conn.sock.getsockname() == local
    finally:
        conn.close()
    assert not [line for line in log if "Traceback" in line or "Exception" in line]
