"""The web page in a real browser: Debian's chromium, driven by playwright, against the real server."""

import base64
import contextlib
import io
import json
from pathlib import Path

import pytest
from conftest import (
    CHROMIUM,
    COLOURS,
    SHAPES,
    dead_proxy,
    draw_shape,
    encoded,
    keep_off_the_network,
    real_photo,
    screenshot_file,
)
from lablr_server import running_server
from photo_files import (
    OLD_IPTC,
    OLD_XMP,
    jpeg_scan,
    make_photo,
    needs_exiftool,
    read_tags,
)
from PIL import Image

from lablr.core import defaults

pytestmark = pytest.mark.browser

ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]
TAGS = set(COLOURS) | set(SHAPES)


@pytest.fixture(scope="module")
def base(tiny_bundle):
    with running_server(tiny_bundle) as (base, _):
        yield base


@pytest.fixture(scope="module")
def browser(playwright_driver):
    browser = playwright_driver.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True, proxy=dead_proxy())
    yield browser
    browser.close()


@contextlib.contextmanager
def page_of(browser, base):
    """The server's page in a fresh browser context that may talk to 127.0.0.1 only."""
    context = browser.new_context(viewport={"width": 1100, "height": 900})
    tried = keep_off_the_network(context)
    try:
        page = context.new_page()
        page.goto(base + "/")
        yield page
    finally:
        context.close()
    assert not tried, f"requests beyond 127.0.0.1: {tried}"


@pytest.fixture
def page(browser, base):
    with page_of(browser, base) as page:
        yield page


def shown_tags(page):
    page.wait_for_selector("#results:not([hidden]) #tags li")
    return page.locator("#tags .name").all_inner_texts()


def wait_for_picture(page):
    page.wait_for_function("() => { const p = document.getElementById('plot');"
                           " return p.complete && p.naturalWidth > 300; }")


def show_every_tag(page):
    """Threshold 0: every tag the server returns is shown, so counts and order can be compared."""
    page.fill("#threshold", "0")


def test_choose_a_photo_see_its_tags_scores_and_picture(page):
    page.wait_for_function("() => document.getElementById('model').textContent.includes('6 tags')")
    show_every_tag(page)
    photo = encoded(draw_shape("red", "circle", size=240))
    page.set_input_files("#photo", files=[{"name": "red-circle.png", "mimeType": "image/png", "buffer": photo}])
    tags = shown_tags(page)
    assert len(tags) == len(TAGS) and set(tags) == TAGS  # k=10 asked; the tiny model has 6 tags
    scores = [float(s) for s in page.locator("#tags .score").all_inner_texts()]
    assert scores == sorted(scores, reverse=True) and scores[0] > 0 and all(0 <= s <= 1 for s in scores)
    wait_for_picture(page)
    assert page.locator("#preview").is_visible()
    assert page.locator("#error").is_hidden()

    page.select_option("#k", "5")  # fewer tags: the same photo is asked again
    page.wait_for_function("() => document.querySelectorAll('#tags li').length === 5")
    assert page.locator("#tags .name").all_inner_texts() == tags[:5]
    page.select_option("#k", "10")
    page.wait_for_function("() => document.querySelectorAll('#tags li').length === 6")
    wait_for_picture(page)


def test_tags_below_the_threshold_are_hidden_and_the_page_says_so(page):
    page.wait_for_function("() => document.getElementById('model').textContent.includes('6 tags')")
    assert page.locator("#threshold").input_value() == "0.2"  # the server's default, until the user picks one
    page.set_input_files("#photo", files=[{"name": "red-circle.png", "mimeType": "image/png",
                                           "buffer": encoded(draw_shape("red", "circle", size=240))}])
    page.wait_for_selector("#results:not([hidden])")
    shown = [float(s) for s in page.locator("#tags .score").all_inner_texts()]
    assert all(s >= 0.2 for s in shown)
    hidden = len(TAGS) - len(shown)
    if hidden:
        assert f"{hidden} more below a probability of 0.2" in page.locator("#hidden-note").inner_text()

    page.fill("#threshold", "1")  # no tag is certain: none is shown, and the page says why
    page.wait_for_function("() => document.querySelectorAll('#tags li').length === 0")
    assert "No tag reaches a probability of 1" in page.locator("#hidden-note").inner_text()

    page.fill("#threshold", "0")  # 0 shows every tag, and the choice is remembered
    page.wait_for_function(f"() => document.querySelectorAll('#tags li').length === {len(TAGS)}")
    assert page.locator("#hidden-note").is_hidden()
    page.reload()
    page.wait_for_function("() => document.getElementById('model').textContent.includes('6 tags')")
    assert page.locator("#threshold").input_value() == "0"


def test_drop_a_photo(page):
    show_every_tag(page)
    photo = base64.b64encode(encoded(draw_shape("blue", "square", size=120))).decode()
    page.evaluate("""async (data) => {
        const bytes = Uint8Array.from(atob(data), (c) => c.charCodeAt(0));
        const transfer = new DataTransfer();
        transfer.items.add(new File([bytes], "dropped.png", { type: "image/png" }));
        const zone = document.getElementById("drop");
        zone.dispatchEvent(new DragEvent("dragover", { dataTransfer: transfer, bubbles: true, cancelable: true }));
        zone.dispatchEvent(new DragEvent("drop", { dataTransfer: transfer, bubbles: true, cancelable: true }));
    }""", photo)
    assert set(shown_tags(page)) == TAGS
    wait_for_picture(page)
    assert page.locator("#drop-text").inner_text() == "dropped.png"


def test_a_file_that_is_not_a_photo_shows_the_servers_message(page):
    page.set_input_files("#photo", files=[{"name": "notes.txt", "mimeType": "text/plain", "buffer": b"not a photo"}])
    page.wait_for_selector("#error:not([hidden])")
    assert "not an image" in page.locator("#error").inner_text()
    assert page.locator("#results").is_hidden()


def test_a_server_that_stopped_is_said_to_be_unreachable(browser, tiny_bundle):
    with contextlib.ExitStack() as serving:
        base, _ = serving.enter_context(running_server(tiny_bundle))
        with page_of(browser, base) as page:
            page.wait_for_function("() => document.getElementById('model').textContent.startsWith('Model ')")
            serving.close()  # the user stopped `lablr serve`, the page still open
            page.set_input_files("#photo", files=[{"name": "cat.png", "mimeType": "image/png",
                                                    "buffer": encoded(draw_shape("red", "circle", size=64))}])
            page.wait_for_selector("#error:not([hidden])")
            assert page.locator("#error").inner_text() == "The Lablr server cannot be reached."
            assert page.locator("#results").is_hidden()


@needs_exiftool
def test_download_with_tags_gives_the_photo_back_with_the_ticked_tags_in_it(page, tmp_path):
    photo = make_photo(tmp_path / "holiday.jpg", colour="green", shape="triangle", size=200)
    show_every_tag(page)  # at least three tags to choose from
    page.set_input_files("#photo", files=[str(photo)])
    tags = shown_tags(page)
    page.locator("#tags .pick").nth(1).uncheck()  # the person drops the second suggestion
    chosen = tags[:1] + tags[2:]
    with page.expect_download() as download:
        page.click("#download")
    assert download.value.suggested_filename == "holiday.jpg"
    saved = tmp_path / "downloaded.jpg"
    download.value.save_as(saved)

    seen = read_tags(saved)  # exiftool reads what the page saved
    assert seen["Subject"] == OLD_XMP + chosen and seen["Keywords"] == OLD_IPTC + chosen
    assert jpeg_scan(saved.read_bytes()) == jpeg_scan(photo.read_bytes())
    page.wait_for_function("() => document.getElementById('status').textContent.startsWith('Saved holiday.jpg')")
    assert f"{len(chosen)} new tags in it: {', '.join(chosen)}" in page.locator("#status").inner_text()

    page.locator("#tags .pick").first.uncheck()  # the photo on the page is the original: ask again
    with page.expect_download() as again:
        page.click("#download")
    again.value.save_as(tmp_path / "again.jpg")
    assert read_tags(tmp_path / "again.jpg")["Subject"] == OLD_XMP + chosen[1:]


def test_download_with_no_tag_ticked_says_so(page):
    photo = encoded(draw_shape("red", "circle", size=120))
    page.set_input_files("#photo", files=[{"name": "red.png", "mimeType": "image/png", "buffer": photo}])
    shown_tags(page)
    for box in page.locator("#tags .pick").all():
        box.uncheck()
    page.click("#download")
    page.wait_for_selector("#error:not([hidden])")
    assert "Tick at least one tag" in page.locator("#error").inner_text()


DEFAULT_BUNDLE = Path(__file__).resolve().parent.parent / "core" / "bundles" / defaults.DEFAULT_MODEL


@pytest.mark.skipif(real_photo() is None or not (DEFAULT_BUNDLE / "manifest.json").exists(),
                    reason="needs the default bundle and scikit-image")
def test_default_model_on_a_photograph_takes_the_readme_screenshot(browser, tmp_path):
    """The README's picture of the page: the shipped model, a real photograph."""
    with running_server(DEFAULT_BUNDLE) as (base, _), page_of(browser, base) as page:
        page.set_input_files("#photo", files=[str(real_photo())])
        tags = shown_tags(page)  # those at or above the default threshold, as a new user sees them
        scores = [float(s) for s in page.locator("#tags .score").all_inner_texts()]
        assert 1 <= len(tags) <= 10 and all(s >= 0.2 for s in scores) and "cat" in tags
        wait_for_picture(page)
        shot = Image.open(io.BytesIO(page.screenshot(full_page=True)))
    screenshot = screenshot_file("web-page.png", tmp_path)
    shot.convert("RGB").quantize(colors=128).save(screenshot, optimize=True)  # small enough for the README
    assert screenshot.stat().st_size < 300_000


@pytest.fixture
def learning_page(browser, tiny_bundle, tmp_path):
    """The page of a server with its own, empty personal layer."""
    with (running_server(tiny_bundle, env={"XDG_DATA_HOME": str(tmp_path)}) as (base, _),
          page_of(browser, base) as page):
        yield page, base


def test_these_are_my_tags_teaches_the_model_and_the_page_shows_what_it_learned(learning_page):
    import httpx

    page, base = learning_page
    page.wait_for_function("() => document.getElementById('learned').textContent.includes('0 of your photos')")
    assert "no new tags yet" in page.locator("#learned").inner_text()
    page.fill("#threshold", "0")  # every suggestion shown, whatever its probability
    before = {row["tag"]: row["count"] for row in httpx.get(base + "/api/v1/tags").json()["tags"]}

    for seed in range(5):
        photo = encoded(draw_shape("red", "circle", size=120, seed=900 + seed))
        page.set_input_files("#photo", files=[{"name": f"mine-{seed}.png", "mimeType": "image/png", "buffer": photo}])
        page.wait_for_function("() => document.getElementById('status').textContent.includes('tags in')")  # this photo's
        assert page.locator("#my-tags").input_value() == ""  # a new photo starts with no tags of its own
        page.locator("#tags .name", has_text="red").click()  # a suggestion, added with a click
        assert page.locator("#my-tags").input_value() == "red"
        page.locator("#my-tags").press("End")
        page.locator("#my-tags").type(", circle, my stamp")
        page.click("#mine")
        page.wait_for_function(f"() => document.getElementById('learned').textContent"
                               f".includes('Learned from {seed + 1} of your photo')")
        if seed < 4:
            assert f"my stamp ({seed + 1} of 5)" in page.locator("#learned").inner_text()
            assert "Learned from this photo for red, circle" in page.locator("#status").inner_text()

    assert "tags added: my stamp" in page.locator("#learned").inner_text()
    assert "7 tags" in page.locator("#model").inner_text()
    after = {row["tag"]: row["count"] for row in httpx.get(base + "/api/v1/tags").json()["tags"]}
    assert after == {**before, "red": before["red"] + 5, "circle": before["circle"] + 5, "my stamp": 5}

    page.click("#mine")  # the same photo again counts once
    page.wait_for_function("() => document.getElementById('status').textContent.includes('counts once')")
    assert httpx.get(base + "/api/v1/personal").json()["photos"] == 5
    assert page.locator("#error").is_hidden()


def test_a_new_tag_that_waits_for_room_is_not_said_to_wait_for_photos(browser, tiny_bundle, tmp_path):
    """At the bound on new tags (here 1), a tag of 5 photos and more waits for room, not for 5 photos."""
    import httpx

    env = {"XDG_DATA_HOME": str(tmp_path), "LABLR_PERSONAL_MAX_LEARNED_TAGS": "1"}
    with running_server(tiny_bundle, env=env) as (base, _):
        for seed in range(5):
            photo = encoded(draw_shape("red", "circle", size=120, seed=900 + seed))
            answer = httpx.post(base + "/api/v1/feedback", files={"image": ("p.png", photo, "image/png")},
                                data={"tags": "first new, second new"}, timeout=60)
            assert answer.status_code == 200, answer.text
        with page_of(browser, base) as page:
            page.wait_for_function("() => document.getElementById('learned').textContent.includes('first new')")
            learned = page.locator("#learned").inner_text()
            assert "Not added, as the model holds its limit of new tags" in learned and "second new (5)" in learned
            assert "Waiting for more photos" not in learned and "of 5)" not in learned, learned
            photo = encoded(draw_shape("red", "circle", size=120, seed=905))
            page.set_input_files("#photo", files=[{"name": "sixth.png", "mimeType": "image/png", "buffer": photo}])
            page.wait_for_function("() => document.getElementById('status').textContent.includes('tags in')")
            page.locator("#my-tags").fill("second new")
            page.click("#mine")
            page.wait_for_function("() => document.getElementById('status').textContent.includes('Learned from this')")
            status = page.locator("#status").inner_text()
            assert "limit of new tags" in status and "Suggested once" not in status, status


def test_the_page_sends_only_the_suggestions_it_showed(learning_page, tmp_path):
    import sqlite3

    page, _ = learning_page
    page.fill("#threshold", "0")
    photo = encoded(draw_shape("blue", "square", size=120, seed=77))
    page.set_input_files("#photo", files=[{"name": "mine.png", "mimeType": "image/png", "buffer": photo}])
    page.wait_for_function("() => document.getElementById('status').textContent.includes('tags in')")
    scores = [float(text) for text in page.locator("#tags .score").all_inner_texts()]
    cut = next(i for i in range(1, len(scores)) if scores[i] < scores[i - 1])  # between two distinct scores
    page.fill("#threshold", str((scores[cut - 1] + scores[cut]) / 2))
    page.wait_for_function(f"() => document.querySelectorAll('#tags .pick').length === {cut}")
    shown = page.locator("#tags .name").all_inner_texts()
    assert page.locator("#hidden-note").is_visible()
    page.locator("#my-tags").fill("blue, square")
    page.click("#mine")
    page.wait_for_function("() => document.getElementById('learned').textContent.includes('Learned from 1 of')")
    (layer,) = (tmp_path / "lablr" / "personal").glob("*.sqlite")
    with sqlite3.connect(layer) as db:
        (suggested,) = db.execute("select suggested from events").fetchone()
    assert json.loads(suggested) == shown  # the hidden ones were never passed over
