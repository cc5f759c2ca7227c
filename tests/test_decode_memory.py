"""Decoding memory is bounded: deep images, Pillow's limit, a pixel budget per request, one decode per core."""

import io
import re
import struct
import threading
import tracemalloc
import zlib

import httpx
import numpy as np
import pytest
from conftest import encoded, photo
from lablr_server import running_server
from PIL import Image, ImageFile
from test_server import assert_error

from lablr.core import defaults
from lablr.core.data import decoding as images
from lablr.core.errors import ImageError


def deep_png(side: int) -> bytes:
    """A 16-bit grayscale PNG of side x side: 16 grey blocks a side, small on disk."""
    blocks = (np.arange(256, dtype=np.uint16).reshape(16, 16) * 257)  # 0..65535
    return encoded(Image.fromarray(blocks).resize((side, side), Image.Resampling.NEAREST))


def header_only_png(width: int, height: int) -> bytes:
    """A 1-bit PNG whose header says width x height, with no pixels: enough for the size checks."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b""))


def test_pillows_limit_is_lablrs():
    assert Image.MAX_IMAGE_PIXELS == defaults.MAX_IMAGE_PIXELS
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False


def test_an_image_under_the_cap_is_not_refused_for_its_size():
    opened = images.open_image(header_only_png(9500, 9500))  # 90.25 MP: over Pillow's own default of 89.5 MP
    assert opened.size == (9500, 9500)


@pytest.mark.parametrize("width, height", [(10_001, 10_000), (20_000, 10_000), (30_000, 30_000)])
def test_an_image_over_the_cap_is_refused_naming_the_cap(width, height):
    with pytest.raises(ImageError) as error:
        images.decode(header_only_png(width, height), 16)
    assert error.value.status == 413 and f"{defaults.MAX_IMAGE_PIXELS:,}" in error.value.message


@pytest.mark.parametrize("mode, make", [
    ("I;16", lambda ramp: (ramp * 65535).astype(np.uint16)),
    ("I", lambda ramp: (ramp * 65535).astype(np.int32)),
    ("I wide", lambda ramp: (ramp * 4_000_000).astype(np.int32)),
    ("F 0..1", lambda ramp: ramp.astype(np.float32)),
    ("F 0..255", lambda ramp: (ramp * 255).astype(np.float32)),
    ("I;16 holding 8 bits", lambda ramp: (ramp * 255).astype(np.uint16)),
])
def test_deep_images_become_the_grey_they_show(mode, make):
    ramp = np.tile(np.linspace(0, 1, 256), (64, 1))  # black on the left, white on the right
    buffer = io.BytesIO()
    Image.fromarray(make(ramp)).save(buffer, "TIFF")
    array = images.decode(buffer.getvalue(), 32)
    middle = array[16]  # the picture is 32 wide and 8 high, centred on white
    assert (middle[:, 0] == middle[:, 1]).all() and (middle[:, 1] == middle[:, 2]).all()
    assert middle[0, 0] < 20 and middle[-1, 0] > 235 and 100 < middle[16, 0] < 156
    assert (np.diff(middle[:, 0].astype(int)) >= 0).all()


def test_a_deep_image_is_never_copied_whole_into_numpy():
    data = deep_png(3000)  # 9 MP: a float64 copy would be 72 MB, even a uint8 one 9 MB
    tracemalloc.start()
    try:
        images.decode(data, 64)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1_000_000  # numpy's allocations only: Pillow's own image memory is not traced


def test_a_request_has_a_pixel_budget_across_its_images():
    four = [header_only_png(6000, 5000)] * 4  # 120 MP, under the budget of 100 MP a photo
    with pytest.raises(ImageError) as error:
        images.decode_all(four, 16, max_total_pixels=100_000_000)
    assert error.value.status == 413 and error.value.code == "too_many_pixels"
    assert "120,000,000" in error.value.message


def test_decodes_wait_for_a_free_core():
    data = encoded(Image.new("RGB", (400, 300), "red"))
    held = 0
    while images.decode_slots.acquire(blocking=False):  # every slot taken, as by busy decodes
        held += 1
    assert held == images.available_cores()
    finished = threading.Event()
    worker = threading.Thread(target=lambda: (images.decode(data, 16), finished.set()), daemon=True)
    try:
        worker.start()
        assert not finished.wait(0.5)
        images.decode_slots.release()
        held -= 1
        assert finished.wait(10)
    finally:
        for _ in range(held):
            images.decode_slots.release()
        worker.join(10)


# -- the real server ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def server(tiny_bundle):
    with running_server(tiny_bundle) as (base, log):
        pid = int(re.search(r"worker (\d+)", "\n".join(log)).group(1))
        yield base, pid


def memory(pid: int) -> dict:
    fields = dict(line.split(":", 1) for line in open(f"/proc/{pid}/status"))
    return {name: int(fields[name].split()[0]) * 1024 for name in ("VmRSS", "VmHWM")}


def peak_growth(pid: int, request) -> tuple[int, object]:
    """Bytes the process's peak RSS rose above its RSS before `request` ran, and what it answered."""
    with open(f"/proc/{pid}/clear_refs", "w") as clear:
        clear.write("5")  # resets the peak (VmHWM) to the current RSS
    before = memory(pid)["VmRSS"]
    answer = request()
    return memory(pid)["VmHWM"] - before, answer


def test_a_9400_square_16_bit_png_costs_the_server_under_500_mb(server):
    base, pid = server
    data = deep_png(9400)
    assert len(data) < 300_000
    with httpx.Client(base_url=base, timeout=120) as client:
        client.post("/api/v1/suggest", files={"image": ("warm.png", photo(), "image/png")})
        growth, answer = peak_growth(pid, lambda: client.post(
            "/api/v1/suggest", files={"image": ("deep.png", data, "image/png")}))
    assert answer.status_code == 200, answer.text
    print(f"peak RSS growth for a 9400x9400 16-bit PNG: {growth / 1e6:.0f} MB")
    assert growth <= 500e6


def test_a_request_over_the_pixel_budget_is_refused_before_decoding(server):
    base, pid = server
    many = [("image", (f"{i}.png", header_only_png(10_000, 10_000), "image/png")) for i in range(5)]
    with httpx.Client(base_url=base, timeout=60) as client:
        growth, answer = peak_growth(pid, lambda: client.post("/api/v1/suggest", files=many))
    assert_error(answer, 413, "too_many_pixels")
    assert growth < 50e6


def test_a_90_megapixel_photo_is_answered(server):
    base, _ = server
    data = encoded(Image.new("L", (9500, 9500), 200))
    answer = httpx.post(base + "/api/v1/suggest", files={"image": ("big.png", data, "image/png")}, timeout=120)
    assert answer.status_code == 200, answer.text


def rgb_png(side: int) -> bytes:
    """An 8-bit RGB PNG of side x side: 16 coloured blocks a side, small on disk."""
    blocks = np.random.default_rng(0).integers(0, 256, (16, 16, 3), dtype=np.uint8)
    return encoded(Image.fromarray(blocks).resize((side, side), Image.Resampling.NEAREST))


def test_two_requests_of_four_big_photos_cost_about_one_image_each(server):
    """Each decoded image is shrunk and released before the next: a request's peak is one
    full-size image (265 MB for a 9400x9400 RGB PNG), not four."""
    base, pid = server
    data = rgb_png(9400)
    assert len(data) < 1_000_000
    four = [("image", (f"{i}.png", data, "image/png")) for i in range(4)]
    answers = []
    with httpx.Client(base_url=base, timeout=300) as client:
        client.post("/api/v1/suggest", files={"image": ("warm.png", photo(), "image/png")})

        def both():
            threads = [threading.Thread(target=lambda: answers.append(client.post("/api/v1/suggest", files=four)))
                       for _ in range(2)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()

        growth, _ = peak_growth(pid, both)
    assert [answer.status_code for answer in answers] == [200, 200], [answer.text for answer in answers]
    print(f"peak RSS growth for two requests of four 9400x9400 RGB PNGs: {growth / 1e6:.0f} MB")
    assert growth <= 1.1e9


def multi_page_tiff(pages: int, side: int) -> bytes:
    frames = [Image.new("RGB", (side, side), (8 * i, 0, 0)) for i in range(pages)]
    buffer = io.BytesIO()
    frames[0].save(buffer, "TIFF", save_all=True, append_images=frames[1:], compression="tiff_lzw")
    return buffer.getvalue()


def test_every_page_of_a_tiff_counts_against_the_pixel_budget():
    from lablr.core.photometa.pixels import picture

    assert len(picture(multi_page_tiff(3, 100), "image/tiff")) == 3
    with pytest.raises(ImageError) as error:
        picture(multi_page_tiff(30, 2000), "image/tiff")  # 120 MP in all, each page 4 MP
    assert error.value.status == 413 and "30 pages" in error.value.message


def test_a_30_page_tiff_sent_to_embed_is_refused_without_decoding_its_pages(server):
    base, pid = server
    data = multi_page_tiff(30, 2000)
    with httpx.Client(base_url=base, timeout=120) as client:
        growth, answer = peak_growth(pid, lambda: client.post(
            "/api/v1/embed", params={"tags": "red"}, files={"image": ("pages.tif", data, "image/tiff")}))
    assert answer.status_code in (413, 422), answer.text
    assert growth < 150e6
