"""The browser extension in a real Chromium, against the real `lablr serve` on 127.0.0.1.

Debian's chromium runs headless through the Python playwright package (no browser download) with
the unpacked extension loaded. Flickr's upload page is our own copy (tests/fixtures/), served for
https://www.flickr.com/photos/upload/ through context.route; any other request beyond 127.0.0.1
meets a closed port (conftest.dead_proxy) and fails the test (conftest.keep_off_the_network). A small
pass-through proxy in front of the server records what the extension really sent (shrunk JPEGs,
`exclude`) and what the server answered, so the chips can be checked against the server's own
ranking for each photo.
"""

import base64
import contextlib
import dataclasses
import email.parser
import email.policy
import http.client
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from conftest import CHROMIUM, dead_proxy, draw_shape, keep_off_the_network, real_photo, screenshot_file
from lablr_server import free_port, stop_server
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
EXTENSION = ROOT / "extension"
CONTENT_SCRIPTS = ("base", "find", "typing", "photos", "draw", "panel", "pick", "publish")
FIXTURES = Path(__file__).resolve().parent / "fixtures"
UPLOAD_URL = "https://www.flickr.com/photos/upload/"
# The strictest policy Flickr could send: Lablr's chips must neither break nor trip it.
STRICT_CSP = "default-src 'self'; img-src 'self' blob:; style-src 'self'; script-src 'self'; connect-src 'self'"
WAIT_MS = 60_000  # bounded waits for what the user sees; the CPU may be busy training


# ------------------------------------------------------------------------------- static checks


def _manifest():
    return json.loads((EXTENSION / "manifest.json").read_text())


def test_manifest_asks_for_least_privilege():
    manifest = _manifest()
    assert manifest["manifest_version"] == 3
    assert manifest["permissions"] == ["storage"]
    # This computer only, without a port: Firefox never matches a pattern with one (it "grants"
    # http://127.0.0.1:8777/* and blocks every reply). Lablr itself talks to the default server, or
    # to one the user saved on the options page (test_shipped_extension_reaches_no_other_port_unless_saved).
    assert sorted(manifest["host_permissions"]) == ["http://127.0.0.1/*", "http://localhost/*"]
    assert "optional_host_permissions" not in manifest
    (script,) = manifest["content_scripts"]
    assert all(m.startswith("https://www.flickr.com/") and "upload" in m for m in script["matches"])
    # settings and selectors first, then the content scripts in the order they build on each other.
    assert script["js"][:2] == ["settings.js", "selectors.js"]
    assert script["js"][2:] == [f"content/{name}.js" for name in CONTENT_SCRIPTS]
    assert "https://" not in manifest["content_security_policy"]["extension_pages"]
    text = json.dumps(manifest)
    assert "<all_urls>" not in text and "*://*/" not in text


def test_the_extension_says_each_limit_once():
    """The default port in settings.js alone, as the server's own default; the most tags k from health."""
    from lablr.core import defaults

    sources = {p.name: p.read_text() for p in EXTENSION.rglob("*") if p.suffix in (".js", ".html", ".json")}
    assert f'server: "http://127.0.0.1:{defaults.PORT}"' in sources["settings.js"]
    for name, text in sources.items():
        assert text.count(str(defaults.PORT)) == (1 if name == "settings.js" else 0), name
    for name in ("settings.js", "options.html", "options.js", "background.js"):  # health says it: limits.max_k
        assert not re.search(rf"\b{defaults.MAX_K}\b", sources[name]), name


def test_no_remote_code_and_selectors_in_one_file():
    sources = {str(p.relative_to(EXTENSION)): p.read_text() for p in EXTENSION.rglob("*") if p.suffix in (".js", ".html")}
    for name, text in sources.items():
        assert "eval(" not in text and "new Function" not in text, name
        for url in re.findall(r"https?://[^\s\"'`<>)]+", text):
            assert url.startswith(("http://127.0.0.1", "http://localhost", "https://www.flickr.com")), (name, url)
    for page in ("options.html", "popup.html"):
        for line in sources[page].splitlines():
            if "<script" in line:
                src = line.split('src="')[1].split('"')[0]
                assert (EXTENSION / src).is_file(), src
    # Flickr's markup is only ever looked up through LABLR_SELECTORS.
    for name in (f"content/{name}.js" for name in CONTENT_SCRIPTS):
        text = sources[name]
        for call in ("querySelector(\"", "querySelector('", "querySelectorAll(\"", "querySelectorAll('",
                     "closest(\"", "closest('", "getElementsByClassName", "getElementById"):
            assert call not in text, (name, call)


# ------------------------------------------------------------------------------- the real server


class LablrServer:
    """`lablr serve --model MODEL --port PORT` as a subprocess that can be stopped and started again."""

    def __init__(self, model, port=None):
        self.model, self.port = model, port or free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.process = None
        # Its own personal layer: what the publishing tests teach it stays out of other tests' models.
        self.data_home = tempfile.mkdtemp(prefix="lablr-extension-data-")

    def start(self, timeout=180):
        command = [sys.executable, "-m", "lablr.core.cli", "serve", "--host", "127.0.0.1", "--port", str(self.port)]
        if self.model is not None:  # None: the bundled default model, as a plain `lablr serve` uses
            command += ["--model", str(self.model)]
        log = tempfile.TemporaryFile()
        self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT,
                                        env={**os.environ, "PYTHONUNBUFFERED": "1", "XDG_DATA_HOME": self.data_home})
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                log.seek(0)
                raise RuntimeError("lablr serve exited:\n" + log.read().decode(errors="replace"))
            try:
                with urllib.request.urlopen(self.base + "/api/v1/health", timeout=5) as answer:
                    if json.load(answer)["status"] == "ok":
                        return self
            except OSError:
                time.sleep(0.3)
        self.stop()
        raise RuntimeError(f"lablr serve did not answer on {self.base} within {timeout} s")

    def stop(self):
        if self.process and self.process.poll() is None:
            stop_server(self.process)
        self.process = None

    def close(self):
        self.stop()
        shutil.rmtree(self.data_home, ignore_errors=True)


class Recorder:
    """A pass-through HTTP proxy on 127.0.0.1 that records each request and the server's answer.

    When the server cannot be reached, it drops the connection without an answer, as a dead server would.
    """

    def __init__(self, upstream_port):
        self.upstream_port = upstream_port
        self.exchanges = []
        self.fail = {}  # path prefix -> how many of its next requests get 503 instead of reaching the server
        self.delay = {}  # path prefix -> seconds each of its requests waits before it is forwarded
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _forward(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                time.sleep(max([0, *(s for prefix, s in recorder.delay.items() if self.path.startswith(prefix))]))
                for prefix, count in list(recorder.fail.items()):
                    if self.path.startswith(prefix) and count > 0:
                        recorder.fail[prefix] = count - 1
                        recorder.exchanges.append({"method": self.command, "path": self.path, "body": body, "status": 503,
                                                   "client": self.headers.get("X-Lablr-Client"),
                                                   "content_type": self.headers.get("Content-Type", ""), "answer": b"{}"})
                        self.send_response(503)
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection")}
                try:
                    upstream = http.client.HTTPConnection("127.0.0.1", recorder.upstream_port, timeout=60)
                    upstream.request(self.command, self.path, body=body, headers=headers)
                    answer = upstream.getresponse()
                    data = answer.read()
                except OSError:
                    self.close_connection = True
                    return
                recorder.exchanges.append({"method": self.command, "path": self.path,
                                           "client": self.headers.get("X-Lablr-Client"),
                                           "content_type": self.headers.get("Content-Type", ""),
                                           "body": body, "status": answer.status, "answer": data})
                self.send_response(answer.status)
                for key, value in answer.getheaders():
                    if key.lower() not in ("connection", "transfer-encoding", "content-length", "date", "server"):
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_OPTIONS = _forward

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def posts(self, path):
        """Each POST to path: its query, its multipart parts, the status and the server's JSON answer."""
        found = []
        for exchange in list(self.exchanges):
            if exchange["method"] != "POST" or not exchange["path"].startswith(path):
                continue
            message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
                b"Content-Type: " + exchange["content_type"].encode() + b"\r\n\r\n" + exchange["body"])
            parts = [{"name": part.get_param("name", header="content-disposition"), "filename": part.get_filename(),
                      "type": part.get_content_type(), "data": part.get_payload(decode=True)}
                     for part in message.iter_parts()]
            found.append({"query": parse_qs(urlsplit(exchange["path"]).query), "parts": parts,
                          "status": exchange["status"], "answer": json.loads(exchange["answer"] or b"null")})
        return found

    def suggests(self):
        return self.posts("/api/v1/suggest")

    def feedbacks(self):
        """Each POST /api/v1/feedback as {status, image, filename, tags, suggested}."""
        found = []
        for exchange in self.posts("/api/v1/feedback"):
            fields = {part["name"]: part for part in exchange["parts"]}
            text = lambda name: fields[name]["data"].decode() if name in fields else None  # noqa: E731
            found.append({"status": exchange["status"], "image": fields.get("image", {}).get("data"),
                          "filename": fields.get("image", {}).get("filename"), "tags": text("tags"),
                          "suggested": text("suggested"), "answer": exchange["answer"]})
        return found

    def answer_for(self, filename):
        for exchange in self.suggests():
            result = exchange["answer"]["results"][0]
            if result["filename"] == filename:
                return [s["tag"] for s in result["suggestions"]]
        raise AssertionError(f"no suggest request for {filename}")

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(scope="module")
def server(tiny_bundle):
    running = LablrServer(tiny_bundle).start()
    yield running
    running.close()


@pytest.fixture
def recorder(server):
    proxy = Recorder(server.port)
    yield proxy
    proxy.close()


# ------------------------------------------------------------------------------- the browser


@pytest.fixture(scope="module")
def extension_dir(tmp_path_factory):
    """The unpacked extension as shipped, in a copy of its own (nothing granted beyond its manifest)."""
    target = tmp_path_factory.mktemp("extension") / "lablr"
    shutil.copytree(EXTENSION, target)
    return target


@dataclasses.dataclass(frozen=True)
class Site:
    """One copy of Flickr's upload page, and where a test finds things on it."""

    html: str
    variant: str
    file_input: str  # the page's own "choose photos" input
    tag_input: str  # the tag field a person types into
    token: str  # one tag token the page shows
    chips_after: str  # Lablr's inline chips sit right after this (the tag widget)
    card: str  # one photo card in the grid
    card_title: str  # inside a card: what shows the title {title}
    publish: tuple  # what a person clicks, in turn, to publish
    commit_key: str  # how a person ends a typed tag
    reads_tokens: bool  # whether Lablr can read the page's tag tokens (built-in selectors)

    def card_named(self, page, title):
        return page.locator(self.card, has=page.locator(self.card_title.format(title=title)))


# Our copy of the uploader as first built, with class names of our own making (the built-in selectors).
UPLOADR = Site("flickr_upload.html", "current", "#uploadr-choose-input", ".uploadr-edit-tags input[type=text]",
               ".uploadr-edit-tags .uploadr-tag-token", "#uploadr-edit-panel .uploadr-edit-tags",
               ".uploadr-photo-card", ".uploadr-photo-card-title input[value='{title}']", ("#uploadr-upload",), "Enter", True)
# The copy modelled on the evidence about Flickr's real uploader: attested ids, guessed everything else.
EDITR = Site("flickr_editr.html", "evidence", "#choose-photos-and-videos", "#editr-sidebar .autocomplete-field input",
             "#editr-sidebar .chosen-token", "#editr-sidebar .autocomplete-field", "#editr-grid li", ".item-title:text-is('{title}')",
             ("#action-publish", "#confirm-publish"), ",", False)
# The copy built from the 2026 field report on the live uploader: two sets of fields (the batch one
# off screen), "Separate tags with a space", "Tags 3/75", page shortcuts, the publish dialog and its masks.
LIVE = Site("flickr_live.html", "live", ".choose-from-client", ".editr-edit-panel[data-set=one] input[placeholder*='tags']",
            ".editr-edit-panel[data-set=one] .tag-list li", ".editr-edit-panel[data-set=one] .editr-edit-panel-tags",
            ".editr-grid-item", ".title:text-is('{title}')", ("#action-publish", "#confirm-publish"), "Enter", False)
SITES = [pytest.param(UPLOADR, id="uploadr"), pytest.param(EDITR, id="editr"), pytest.param(LIVE, id="live")]
SUCCESS_PATH = "/account/upgrade/pro/upload"  # where the live uploader goes once it has published


class Browser:
    def __init__(self, context, worker):
        self.context, self.worker = context, worker
        self.id = worker.url.split("/")[2]

    def configure(self, approve=True, **settings):
        """Settings as the options page saves them: a server saved there is one the user chose (approve)."""
        if approve and "server" in settings:
            settings["approvedServers"] = [settings["server"]]
        self.worker.evaluate("settings => chrome.storage.local.set(settings)", settings)

    def stored(self):
        return self.worker.evaluate("() => chrome.storage.local.get(null)")

    def open_upload_page(self, site=UPLOADR, variant=None):
        """One of the fixture pages; a variant changes its markup or behaviour (see each fixture's script)."""
        page_html = (FIXTURES / site.html).read_text().replace(
            f'data-variant="{site.variant}"', f'data-variant="{variant or site.variant}"')

        def serve(route):
            path = urlsplit(route.request.url).path
            if path.rstrip("/") == "/photos/upload":
                route.fulfill(body=page_html, content_type="text/html; charset=utf-8",
                              headers={"Content-Security-Policy": STRICT_CSP})
            elif path.startswith("/photos/upload/fixture/") and (FIXTURES / Path(path).name).is_file():
                name = Path(path).name
                kind = {".js": "text/javascript", ".css": "text/css"}[Path(name).suffix]
                route.fulfill(path=FIXTURES / name, content_type=kind)
            elif path.rstrip("/") == SUCCESS_PATH:
                route.fulfill(body="<!doctype html><title>Flickr Pro</title><p>Your upload is done.</p>",
                              content_type="text/html; charset=utf-8")
            else:
                route.fulfill(status=404, body="not in the fixture")

        self.context.unroute("https://www.flickr.com/**")
        self.context.route("https://www.flickr.com/**", serve)
        page = self.context.new_page()
        page.console_messages_seen = []
        page.on("console", lambda message: page.console_messages_seen.append((message.type, message.text)))
        page.goto(UPLOAD_URL)
        return page

    def open_extension_page(self, name):
        page = self.context.new_page()
        page.goto(f"chrome-extension://{self.id}/{name}")
        return page


@contextlib.contextmanager
def launched(driver, extension, profile):
    context = driver.chromium.launch_persistent_context(
        str(profile), executable_path=CHROMIUM, headless=True, viewport={"width": 960, "height": 560},
        args=["--no-sandbox", f"--disable-extensions-except={extension}", f"--load-extension={extension}",
              "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync",
              "--no-first-run", "--disable-default-apps"], proxy=dead_proxy())
    tried = keep_off_the_network(context, served=("https://www.flickr.com/",))  # open_upload_page's route
    try:
        worker = context.service_workers[0] if context.service_workers else context.wait_for_event("serviceworker", timeout=30_000)
        yield Browser(context, worker)
    finally:
        context.close()
    assert not tried, f"requests beyond 127.0.0.1 and the routed Flickr fixtures: {tried}"


@pytest.fixture
def browser(playwright_driver, extension_dir, tmp_path):
    with launched(playwright_driver, extension_dir, tmp_path / "profile") as running:
        yield running


@pytest.fixture
def shipped_browser(playwright_driver, tmp_path):
    """The extension exactly as shipped: it may reach 127.0.0.1:8777 and localhost:8777 only."""
    with launched(playwright_driver, EXTENSION, tmp_path / "profile") as running:
        yield running


# ------------------------------------------------------------------------------- helpers


def write_photo(directory, colour, shape, size=(640, 480), kind="JPEG", name=None):
    """A real photo file: a drawn shape scaled onto a canvas of the given size."""
    side = min(size)
    image = Image.new("RGB", size, "white")
    image.paste(draw_shape(colour, shape, size=side, seed=7), ((size[0] - side) // 2, (size[1] - side) // 2))
    path = Path(directory) / (name or f"{colour}-{shape}.{'jpg' if kind == 'JPEG' else kind.lower()}")
    image.save(path, kind)
    return path


def drop_files(page, paths, target="body"):
    """Drops files from the desktop onto the page: trusted drag events through CDP's Input.dispatchDragEvent."""
    box = page.locator(target).bounding_box()
    x, y = box["x"] + box["width"] / 2, box["y"] + min(box["height"] / 2, 200)
    data = {"items": [], "files": [str(p) for p in paths], "dragOperationsMask": 1}
    cdp = page.context.new_cdp_session(page)
    try:
        for kind in ("dragEnter", "dragOver", "drop"):
            cdp.send("Input.dispatchDragEvent", {"type": kind, "x": x, "y": y, "data": data})
    finally:
        cdp.detach()


def chip_texts(page):
    return [text.strip() for text in page.locator("[data-lablr=chips] .chip").all_inner_texts()]


def page_tags(page, name):
    """The tags the page's own widget holds for a photo."""
    for photo in page.evaluate("window.__uploadr.photos()"):
        if photo["name"] == name:
            return photo["tags"]
    raise AssertionError(name)


def take_screenshot(page, tmp_path):
    """docs/extension-chips.png, shown in the README: the upload page with Lablr's chips."""
    page.screenshot(path=str(screenshot_file("extension-chips.png", tmp_path)),
                    clip={"x": 0, "y": 0, "width": 960, "height": 500})


def wait_for_requests(recorder, count, timeout=WAIT_MS / 1000):
    deadline = time.monotonic() + timeout
    while len(recorder.suggests()) < count:
        assert time.monotonic() < deadline, f"the server saw {len(recorder.suggests())} of {count} suggest requests"
        time.sleep(0.1)


# ------------------------------------------------------------------------------- what a user sees



@pytest.mark.browser
@pytest.mark.parametrize("site", SITES)
def test_chips_appear_and_a_click_adds_the_tag(browser, recorder, tmp_path, site):
    from playwright.sync_api import expect

    browser.configure(server=recorder.base, addTop=3, minScore=0)  # 0: every tag the server ranked
    page = browser.open_upload_page(site)
    photo = write_photo(tmp_path, "blue", "square")
    page.locator(site.file_input).set_input_files(photo)

    chips = page.locator("[data-lablr=chips] .chip")
    expect(chips.first).to_be_visible(timeout=WAIT_MS)
    # The chips sit in the editing panel, right after the tag widget, best first as the server ranked them.
    expect(page.locator(f"{site.chips_after} + [data-lablr=chips]")).to_have_count(1)
    expect(page.locator("[data-lablr=panel]")).to_have_count(0)
    ranked = recorder.answer_for("blue-square.jpg")
    assert chip_texts(page) == ranked
    (exchange,) = recorder.suggests()
    scores = {s["tag"]: s["score"] for s in exchange["answer"]["results"][0]["suggestions"]}
    assert chips.first.get_attribute("title").startswith(f"score {scores[ranked[0]]:.3f}")
    assert chips.first.evaluate("chip => getComputedStyle(chip).borderRadius") == "14px"  # styled, despite the CSP

    # A click types the tag into Flickr's widget, which turns it into a token of its own.
    chips.first.click()
    expect(page.locator(site.token, has_text=ranked[0])).to_be_visible()
    assert page_tags(page, "blue-square.jpg") == [ranked[0]]
    expect(chips).to_have_count(len(ranked) - 1)  # an added tag is no longer suggested
    assert page.locator(site.tag_input).input_value() == ""

    if site is UPLOADR and default_bundle() is None:  # else the default model's test takes it, with real tags
        take_screenshot(page, tmp_path)

    # "Add top 3" adds the three best remaining suggestions, in order.
    remaining = chip_texts(page)
    page.get_by_role("button", name="Add top 3").click()
    expect(page.locator(site.token)).to_have_count(4)
    assert remaining == ranked[1:]
    assert page_tags(page, "blue-square.jpg") == [ranked[0], *remaining[:3]]
    expect(page.locator("[data-lablr=chips] .warn")).to_have_count(0)
    assert not [m for m in page.console_messages_seen if m[0] in ("error", "warning")]


@pytest.mark.browser
@pytest.mark.parametrize("site", SITES)
def test_each_photo_gets_its_own_suggestions_from_a_shrunk_copy(browser, recorder, tmp_path, site):
    from playwright.sync_api import expect

    browser.configure(server=recorder.base, minScore=0)
    page = browser.open_upload_page(site)
    big = write_photo(tmp_path, "green", "triangle", size=(2000, 1500))
    square = write_photo(tmp_path, "blue", "square", size=(700, 900), kind="PNG")
    page.locator(site.file_input).set_input_files([big, square])  # two at once
    wait_for_requests(recorder, 2)
    # Three more, later, dragged from the desktop and dropped: one smaller than 512 px, which is not enlarged.
    drop_files(page, [write_photo(tmp_path, "red", "circle", size=(1024, 768)),
                      write_photo(tmp_path, "green", "square", size=(1200, 1200)),
                      write_photo(tmp_path, "blue", "triangle", size=(300, 200), kind="PNG")])
    wait_for_requests(recorder, 5)
    expect(page.locator(site.card)).to_have_count(5)  # the page took the drop too

    # What crossed to the server: one JPEG per photo, at most 512 px on its longest side.
    sizes = {}
    for exchange in recorder.suggests():
        (part,) = exchange["parts"]
        assert part["name"] == "image" and part["type"] == "image/jpeg"
        image = Image.open(io.BytesIO(part["data"]))
        assert image.format == "JPEG"
        sizes[part["filename"]] = image.size
    assert sizes == {"green-triangle.jpg": (512, 384), "blue-square.jpg": (398, 512), "red-circle.jpg": (512, 384),
                     "green-square.jpg": (512, 512), "blue-triangle.jpg": (300, 200)}
    assert len(recorder.suggests()[0]["parts"][0]["data"]) < big.stat().st_size

    # Selecting each photo shows that photo's own suggestions beside the tag field.
    shown = {}
    for name in ("green-triangle", "blue-square", "red-circle", "blue-triangle"):
        site.card_named(page, name).click()
        expect(page.locator("[data-lablr=chips]")).to_contain_text(f"for {name}.", timeout=WAIT_MS)
        expected = recorder.answer_for(f"{name}.jpg")
        expect(page.locator("[data-lablr=chips] .chip").first).to_have_text(expected[0])
        shown[name] = chip_texts(page)
        assert shown[name] == expected
    assert len({tuple(tags) for tags in shown.values()}) > 1, "the photos should not all rank the tags alike"
    expect(page.locator("[data-lablr=panel]")).to_have_count(0)

    # A tag clicked for one photo lands on that photo only.
    site.card_named(page, "blue-square").click()
    expect(page.locator("[data-lablr=chips]")).to_contain_text("for blue-square.")
    page.locator("[data-lablr=chips] .chip").first.click()
    expect(page.locator(site.token)).to_have_count(1)
    assert page_tags(page, "blue-square.png") == [shown["blue-square"][0]]
    assert page_tags(page, "green-triangle.jpg") == [] and page_tags(page, "red-circle.jpg") == []


@pytest.mark.browser
@pytest.mark.parametrize("site", SITES)
def test_tags_the_photo_has_are_excluded_and_suggest_on_click(browser, recorder, tmp_path, site):
    from playwright.sync_api import expect

    browser.configure(server=recorder.base, autoSuggest=False, count=4, minScore=0)
    page = browser.open_upload_page(site)
    page.locator(site.file_input).set_input_files(write_photo(tmp_path, "red", "triangle"))
    button = page.locator("[data-lablr=chips]").get_by_role("button", name="Suggest tags")
    expect(button).to_be_visible(timeout=WAIT_MS)
    assert recorder.suggests() == []  # nothing sent until asked

    tag_input = page.locator(site.tag_input)
    tag_input.click()
    tag_input.press_sequentially("triangle")
    tag_input.press(site.commit_key)
    expect(page.locator(site.token, has_text="triangle")).to_be_visible()
    button.click()

    expect(page.locator("[data-lablr=chips] .chip").first).to_be_visible(timeout=WAIT_MS)
    (exchange,) = recorder.suggests()
    # The page's tokens are read where Lablr knows their markup; elsewhere only what Lablr added is known.
    assert exchange["query"].get("exclude") == (["triangle"] if site.reads_tokens else None)
    assert exchange["query"]["k"] == ["4"]
    ranked = recorder.answer_for("red-triangle.jpg")
    assert chip_texts(page) == ranked and len(ranked) == 4
    if site.reads_tokens:  # elsewhere Lablr cannot read a tag typed by hand, and may suggest it again
        assert "triangle" not in ranked


def tags_arrive_once_started(server, page, notice):
    """Start the server, see the waiting photo's chips appear and the notice go; stop it again."""
    from playwright.sync_api import expect

    try:
        server.start()
        expect(page.locator("[data-lablr=chips] .chip").first).to_be_visible(timeout=WAIT_MS)
        expect(notice).to_have_count(0)
    finally:
        server.stop()

@pytest.mark.browser
def test_notice_while_the_server_is_down_and_recovery(browser, tiny_bundle, tmp_path):
    from playwright.sync_api import expect

    later = LablrServer(tiny_bundle)  # its port is chosen, nothing listens there yet
    try:
        browser.configure(server=later.base, minScore=0)
        page = browser.open_upload_page()
        notice = page.locator("[data-lablr=notice]")
        expect(notice).to_contain_text("lablr serve", timeout=WAIT_MS)  # said at once, before any photo
        page.locator("#uploadr-choose-input").set_input_files(write_photo(tmp_path, "green", "circle"))
        expect(page.locator("[data-lablr=chips]")).to_contain_text("Waiting for the Lablr server", timeout=WAIT_MS)
        expect(page.locator("[data-lablr=chips] .chip")).to_have_count(0)
        # The extension keeps checking quietly; the photo's tags come as soon as the server answers.
        tags_arrive_once_started(later, page, notice)
        # Stopped again: the next photo waits, with the notice, and gets its tags once it is restarted.
        page.locator("#uploadr-choose-input").set_input_files(write_photo(tmp_path, "red", "square"))
        expect(notice).to_contain_text("lablr serve", timeout=WAIT_MS)
        page.locator(".uploadr-photo-card", has=page.locator("input[value='red-square']")).click()
        expect(page.locator("[data-lablr=chips]")).to_contain_text("Waiting for the Lablr server", timeout=WAIT_MS)
        tags_arrive_once_started(later, page, notice)
        assert [m for m in page.console_messages_seen if m[0] in ("error", "warning")] == []
    finally:
        later.close()


@pytest.mark.browser
def test_floating_panel_when_the_tag_field_is_missing(browser, recorder, tmp_path):
    from playwright.sync_api import expect

    browser.context.grant_permissions(["clipboard-read", "clipboard-write"], origin="https://www.flickr.com")
    browser.configure(server=recorder.base, count=3, minScore=0)
    page = browser.open_upload_page(UPLOADR, "redesign")
    photos = [write_photo(tmp_path, "red", "circle"), write_photo(tmp_path, "green", "square")]
    page.locator("#uploadr-choose-input").set_input_files(photos)

    panel = page.locator("[data-lablr=panel]")
    for path in photos:
        section = panel.locator(f"section[data-photo='{path.name}']")
        expect(section.locator(".chip").first).to_be_visible(timeout=WAIT_MS)
        expect(section.get_by_role("button", name="Copy tags")).to_be_visible()
        tags = [t.strip() for t in section.locator(".chip").all_inner_texts()]
        assert tags == recorder.answer_for(path.name)[:3]
    expect(page.locator("[data-lablr=chips]")).to_have_count(0)

    section = panel.locator(f"section[data-photo='{photos[1].name}']")
    section.get_by_role("button", name="Copy tags").click()
    expect(section.get_by_role("button", name="Copied")).to_be_visible()
    assert page.evaluate("navigator.clipboard.readText()") == " ".join(recorder.answer_for(photos[1].name)[:3])
    assert [m for m in page.console_messages_seen if m[0] in ("error", "warning")] == []


def panel_section(page, name):
    return page.locator(f"[data-lablr=panel] section[data-photo='{name}']")


def thumbnail_is_drawn(section):
    """Whether the section's thumbnail canvas holds a picture (some pixel not transparent)."""
    return section.locator("canvas.thumb").evaluate(
        "c => c.getContext('2d').getImageData(0, 0, c.width, c.height).data.some((v, i) => i % 4 === 3 && v > 0)")


@pytest.mark.browser
def test_never_the_wrong_photo_when_the_panel_cannot_be_told(browser, recorder, tmp_path):
    """Several photos, cards that name none of them: no chip types into the page; the panel lists every photo."""
    from playwright.sync_api import expect

    browser.context.grant_permissions(["clipboard-read", "clipboard-write"], origin="https://www.flickr.com")
    browser.configure(server=recorder.base, minScore=0, count=3)
    page = browser.open_upload_page(EDITR, "untitled")
    photos = [write_photo(tmp_path, "red", "circle"), write_photo(tmp_path, "green", "square"),
              write_photo(tmp_path, "blue", "triangle")]
    page.locator(EDITR.file_input).set_input_files(photos)
    wait_for_requests(recorder, 3)

    # The tag field is there, but Lablr cannot tell whose it is: it says so instead of offering chips there.
    inline = page.locator("[data-lablr=chips]")
    expect(inline).to_contain_text("cannot tell which photo", timeout=WAIT_MS)
    expect(inline.locator(".chip")).to_have_count(0)
    panel = page.locator("[data-lablr=panel]")
    expect(panel).to_contain_text("cannot tell which photo Flickr's edit panel shows")
    for path in photos:
        section = panel_section(page, path.name)
        expect(section.locator(".chip").first).to_be_visible(timeout=WAIT_MS)
        assert [t.strip() for t in section.locator(".chip").all_inner_texts()] == recorder.answer_for(path.name)[:3]
        expect(section.get_by_role("button", name="Copy tags")).to_be_visible()
        assert thumbnail_is_drawn(section)

    # Clicking a chip copies it; nothing lands on any photo, whichever one the page has selected.
    page.locator(EDITR.card).nth(1).click()
    section = panel_section(page, photos[2].name)
    section.locator(".chip").first.click()
    expect(section.get_by_role("button", name="Copied")).to_be_visible()
    assert page.evaluate("navigator.clipboard.readText()") == recorder.answer_for(photos[2].name)[0]
    section.get_by_role("button", name="Copy tags").click()
    assert page.evaluate("navigator.clipboard.readText()") == " ".join(recorder.answer_for(photos[2].name)[:3])
    assert all(p["tags"] == [] for p in page.evaluate("window.__uploadr.photos()"))
    assert page.locator(EDITR.tag_input).input_value() == ""

    # Two cards selected at once, and the panel on screen edits both: the chips are for the two, and say so.
    page = browser.open_upload_page(UPLOADR)
    page.locator(UPLOADR.file_input).set_input_files(photos[:2])
    expect(page.locator("[data-lablr=chips] .chip").first).to_be_visible(timeout=WAIT_MS)
    UPLOADR.card_named(page, "green-square").click(modifiers=["Control"])
    expect(page.locator(".uploadr-edit-heading")).to_have_text("Editing 2 photos")
    expect(page.locator("[data-lablr=chips]")).to_contain_text("for the 2 selected photos:")
    tag = chip_texts(page)[0]
    page.locator("[data-lablr=chips] .chip").first.click()
    expect(page.locator(UPLOADR.token, has_text=tag)).to_be_visible()
    assert page_tags(page, "red-circle.jpg") == page_tags(page, "green-square.jpg") == [tag]


@pytest.mark.browser
def test_a_tag_the_page_does_not_take_is_said_so(browser, recorder, tmp_path):
    """Enter, then a comma, then leaving the field: when none of them makes a token, the chip says so."""
    from playwright.sync_api import expect

    browser.configure(server=recorder.base, minScore=0)
    page = browser.open_upload_page(EDITR, "stubborn")
    page.locator(EDITR.file_input).set_input_files(write_photo(tmp_path, "red", "circle"))
    chips = page.locator("[data-lablr=chips] .chip")
    expect(chips.first).to_be_visible(timeout=WAIT_MS)
    tag = chip_texts(page)[0]
    chips.first.click()
    expect(page.locator("[data-lablr=chips] .warn")).to_contain_text(f"did not take “{tag}”", timeout=WAIT_MS)
    failed = page.locator("[data-lablr=chips] .chip.failed")
    expect(failed).to_have_text(f"{tag} — not taken")
    assert "type it into the tag field yourself" in failed.get_attribute("title")
    assert page_tags(page, "red-circle.jpg") == []
    assert page.locator(EDITR.tag_input).input_value() == ""  # no half-typed tag left behind
    # A person's own typing still works there, and the widget is none the worse.
    tag_input = page.locator(EDITR.tag_input)
    tag_input.click()
    tag_input.press_sequentially(f"{tag},")
    expect(page.locator(EDITR.token, has_text=tag)).to_be_visible()


@pytest.mark.browser
def test_a_tag_the_page_takes_only_on_leaving_the_field_sticks(browser, recorder, tmp_path):
    from playwright.sync_api import expect

    browser.configure(server=recorder.base, minScore=0)
    page = browser.open_upload_page(EDITR, "on-leave")
    page.locator(EDITR.file_input).set_input_files(write_photo(tmp_path, "green", "circle"))
    expect(page.locator("[data-lablr=chips] .chip").first).to_be_visible(timeout=WAIT_MS)
    tag = chip_texts(page)[0]
    page.locator("[data-lablr=chips] .chip").first.click()
    expect(page.locator(EDITR.token, has_text=tag)).to_be_visible()
    expect(page.locator(f"[data-lablr=chips] .chip[data-tag='{tag}']")).to_have_count(0)
    # Enter did nothing and the comma would have become part of the tag: the page holds the tag alone.
    assert page_tags(page, "green-circle.jpg") == [tag]
    expect(page.locator("[data-lablr=chips] .warn")).to_have_count(0)


@pytest.mark.browser
def test_chips_below_the_threshold_are_hidden(browser, recorder, tmp_path):
    from playwright.sync_api import expect

    browser.configure(server=recorder.base)  # no threshold of the user's: the server's suggestion
    options = browser.open_extension_page("options.html")
    expect(options.locator("#minScore")).to_have_value("")
    suggested = httpx.get(recorder.base + "/api/v1/health").json()["model"]["min_probability"]
    assert 0 < suggested < 1
    page = browser.open_upload_page()
    page.locator(UPLOADR.file_input).set_input_files(write_photo(tmp_path, "blue", "circle"))
    wait_for_requests(recorder, 1)
    (exchange,) = recorder.suggests()
    scores = [(s["tag"], s["score"]) for s in exchange["answer"]["results"][0]["suggestions"]]
    bar = page.locator("[data-lablr=chips]")
    expect(bar).not_to_contain_text("finding tags", timeout=WAIT_MS)
    assert chip_texts(page) == [t for t, score in scores if score >= suggested]

    # A threshold between two of the scores shows exactly the tags at or above it.
    distinct = sorted({score for _, score in scores}, reverse=True)
    assert len(distinct) >= 2, scores
    middle = round((distinct[0] + distinct[1]) / 2, 4)
    options.locator("#minScore").fill(str(middle))
    options.get_by_role("button", name="Save").click()
    expect(options.locator("#message")).to_have_text("Saved.")
    expect(bar.locator(".chip")).to_have_count(sum(score >= middle for _, score in scores))
    assert chip_texts(page) == [t for t, score in scores if score >= middle]

    # Above every score: no chip, and the bar says why.
    assert distinct[0] < 1
    browser.configure(minScore=distinct[0] + 1e-4)
    expect(bar.locator(".chip")).to_have_count(0)
    expect(bar).to_contain_text("No suggested tag scores")
    browser.configure(minScore=0)  # 0 shows all
    expect(bar.locator(".chip")).to_have_count(len(scores))


@pytest.mark.browser
def test_a_model_whose_scores_are_not_probabilities_hides_no_chip(browser, tmp_path):
    """Format-1 bundles carry no calibration: the server says so, and no probability threshold applies."""
    from playwright.sync_api import expect

    running = LablrServer(FIXTURES / "bundle-format-1").start()
    proxy = Recorder(running.port)
    try:
        assert httpx.get(proxy.base + "/api/v1/health").json()["model"]["calibrated"] is False
        browser.configure(server=proxy.base, count=4, minScore=0.99)  # a probability: means nothing here
        page = browser.open_upload_page()
        page.locator(UPLOADR.file_input).set_input_files(write_photo(tmp_path, "red", "square"))
        wait_for_requests(proxy, 1)
        (exchange,) = proxy.suggests()
        ranked = [s["tag"] for s in exchange["answer"]["results"][0]["suggestions"]][:4]
        expect(page.locator("[data-lablr=chips] .chip")).to_have_count(len(ranked), timeout=WAIT_MS)
        assert chip_texts(page) == ranked
    finally:
        proxy.close()
        running.close()


@pytest.mark.browser
def test_made_up_events_from_the_page_are_ignored(browser, recorder, tmp_path):
    """A page script's change, drop or paste event with files adds no photo; the user's own drop does."""
    from playwright.sync_api import expect

    browser.configure(server=recorder.base, minScore=0)
    page = browser.open_upload_page()
    photo = write_photo(tmp_path, "green", "circle")
    page.evaluate("""data => {
        const bytes = Uint8Array.from(atob(data), c => c.charCodeAt(0));
        const transfer = () => { const t = new DataTransfer(); t.items.add(new File([bytes], 'made-up.jpg', {type: 'image/jpeg'})); return t; };
        const input = document.getElementById('uploadr-choose-input');
        input.files = transfer().files;
        input.dispatchEvent(new Event('change', {bubbles: true}));
        const zone = document.getElementById('uploadr-drop-zone');
        zone.dispatchEvent(new DragEvent('drop', {bubbles: true, cancelable: true, dataTransfer: transfer()}));
        document.body.dispatchEvent(new ClipboardEvent('paste', {bubbles: true, cancelable: true, clipboardData: transfer()}));
    }""", base64.b64encode(photo.read_bytes()).decode())
    # The page itself took all three (its own handlers do not check); Lablr took none.
    expect(page.locator(UPLOADR.card)).to_have_count(3)
    page.wait_for_timeout(1500)
    assert recorder.suggests() == []
    expect(page.locator("[data-lablr=chips], [data-lablr=panel]")).to_have_count(0)

    drop_files(page, [photo])  # the user's own drop
    wait_for_requests(recorder, 1)
    assert recorder.suggests()[0]["parts"][0]["filename"] == "green-circle.jpg"


@pytest.mark.browser
def test_a_pasted_photo_gets_tags(browser, recorder, tmp_path):
    from playwright.sync_api import expect

    browser.context.grant_permissions(["clipboard-read", "clipboard-write"], origin="https://www.flickr.com")
    browser.configure(server=recorder.base, minScore=0)
    page = browser.open_upload_page()
    photo = write_photo(tmp_path, "blue", "square", kind="PNG")
    page.evaluate("""async data => {
        const bytes = Uint8Array.from(atob(data), c => c.charCodeAt(0));
        await navigator.clipboard.write([new ClipboardItem({'image/png': new Blob([bytes], {type: 'image/png'})})]);
    }""", base64.b64encode(photo.read_bytes()).decode())
    page.locator("body").click()
    page.keyboard.press("Control+V")
    wait_for_requests(recorder, 1)
    expect(page.locator("[data-lablr=chips] .chip").first).to_be_visible(timeout=WAIT_MS)


@pytest.mark.browser
def test_pick_the_tag_field_survives_a_reload_and_can_be_forgotten(browser, recorder, tmp_path):
    """On a page where no built-in selector finds the tag field, the user points at it once."""
    from playwright.sync_api import expect

    browser.configure(server=recorder.base, minScore=0)
    page = browser.open_upload_page(UPLOADR, "redesign")
    page.locator(UPLOADR.file_input).set_input_files(write_photo(tmp_path, "red", "circle"))
    expect(page.locator("[data-lablr=panel]")).to_contain_text("tag field was not found", timeout=WAIT_MS)

    popup = browser.open_extension_page("popup.html")
    page.bring_to_front()
    popup.get_by_role("button", name="Pick the tag field").click()
    expect(page.locator("[data-lablr=picking]")).to_contain_text("click Flickr's tag field once")
    page.locator(".uploadr-edit-heading").click()  # not a text field: it says so and keeps waiting
    expect(page.locator("[data-lablr=picking]")).to_contain_text("That is not a text field")
    field = page.locator(".kw-editor input")
    field.click()
    expect(page.locator("[data-lablr=picking]")).to_have_count(0)
    selector = browser.stored()["tagFieldSelector"]
    assert "yui_" not in selector and field.get_attribute("id").startswith("yui_3_")

    # From now on the chips are inline, and a click adds the tag there.
    expect(page.locator(".kw-editor + [data-lablr=chips] .chip").first).to_be_visible(timeout=WAIT_MS)
    expect(page.locator("[data-lablr=panel]")).to_have_count(0)
    tag = chip_texts(page)[0]
    page.locator("[data-lablr=chips] .chip").first.click()
    expect(page.locator(".kw-chip", has_text=tag)).to_be_visible()
    assert page_tags(page, "red-circle.jpg") == [tag]

    # A reload gives every element a new YUI id; the picked field is still found.
    page.reload()
    page.locator(UPLOADR.file_input).set_input_files(write_photo(tmp_path, "green", "square"))
    expect(page.locator(".kw-editor + [data-lablr=chips] .chip").first).to_be_visible(timeout=WAIT_MS)

    options = browser.open_extension_page("options.html")
    expect(options.locator("#picked-status")).to_contain_text(selector)
    options.get_by_role("button", name="Forget the picked field").click()
    expect(options.locator("#message")).to_contain_text("forgot")
    assert "tagFieldSelector" not in browser.stored()
    expect(page.locator("[data-lablr=chips]")).to_have_count(0)
    expect(page.locator("[data-lablr=panel]")).to_contain_text("tag field was not found")


@pytest.mark.browser
def test_report_a_problem_copies_a_diagnostic(browser, recorder, tmp_path):
    from playwright.sync_api import expect

    import lablr.core

    browser.configure(server=recorder.base, minScore=0)
    page = browser.open_upload_page(EDITR)
    page.locator(EDITR.file_input).set_input_files(write_photo(tmp_path, "red", "circle", name="private-holiday.jpg"))
    expect(page.locator("[data-lablr=chips] .chip").first).to_be_visible(timeout=WAIT_MS)
    page.locator(EDITR.tag_input).click()
    page.locator(EDITR.tag_input).press_sequentially("secretword")

    browser.context.grant_permissions(["clipboard-read", "clipboard-write"], origin="https://www.flickr.com")
    popup = browser.open_extension_page("popup.html")
    page.bring_to_front()
    popup.get_by_role("button", name="Report a problem").click()
    expect(popup.locator("#page-message")).to_contain_text("Copied", timeout=WAIT_MS)
    text = page.evaluate("navigator.clipboard.readText()")  # the one clipboard, read where reading is allowed
    assert text == popup.locator("#report-text").input_value()
    report = json.loads(text.split("\n", 1)[1])
    assert report["lablr_extension"] == _manifest()["version"]
    assert report["lablr_server"] == lablr.core.__version__
    found = report["page"]
    assert found["page"] == "/photos/upload/" and found["realUploader"] is True
    assert found["matched"]["realUploader"]["#choose-photos-and-videos"] == 1
    assert found["matched"]["publishConfirm"] == {"#confirm-publish": 1}
    assert found["matched"]["searchBox"]["form[action*='search']"] == 1
    assert found["matched"]["tagInput"] == {} and found["matched"]["photoCard"] == {}  # no built-in selector fits
    assert found["tagField"]["how"] == "loose" and found["grid"]["paired"] == 1
    focused = [line for line in found["outline"] if line.endswith("<== this field")]
    assert len(focused) == 1 and 'input#yui_3_' in focused[0]
    assert '.ac-input [placeholder="Add tags, separated by commas"]' in focused[0]
    # No photo, title or typed text in it.
    for private in ("private-holiday", "secretword", "red-circle", f'"{chip_texts(page)[0]}"'):
        assert private not in text


def wait_for_feedback(recorder, count, timeout=WAIT_MS / 1000):
    deadline = time.monotonic() + timeout
    while len(recorder.feedbacks()) < count:
        assert time.monotonic() < deadline, f"the server saw {len(recorder.feedbacks())} of {count} feedback requests"
        time.sleep(0.1)
    return recorder.feedbacks()


def publish(page, site):
    for selector in site.publish:
        page.locator(selector).click()
    # Publishing went ahead at once: Lablr neither waited for the server nor held the click.
    if site is LIVE:  # the live uploader goes on to its success page
        page.wait_for_url(f"**{SUCCESS_PATH}", timeout=WAIT_MS)
    else:
        assert page.evaluate("window.__uploadr.published()") is True


def learned_photos(server):
    with urllib.request.urlopen(server.base + "/api/v1/personal", timeout=10) as answer:
        return json.load(answer)["photos"]


@pytest.mark.browser
@pytest.mark.parametrize("site", SITES)
def test_publishing_teaches_lablr_the_final_tags(browser, server, recorder, tmp_path, site):
    from playwright.sync_api import expect

    browser.configure(server=recorder.base, minScore=0)
    page = browser.open_upload_page(site)
    size = {UPLOADR: (600, 450), EDITR: (620, 465), LIVE: (680, 510)}[site]  # photos new to the server: it learns from each once
    photos = [write_photo(tmp_path, "red", "circle", size), write_photo(tmp_path, "green", "square", size),
              write_photo(tmp_path, "blue", "triangle", size)]
    page.locator(site.file_input).set_input_files(photos)
    wait_for_requests(recorder, 3)
    before = learned_photos(server)

    # red-circle: one chip, and a tag typed by hand; green-square: two chips; blue-triangle: no tags at all.
    site.card_named(page, "red-circle").click()
    chips = page.locator("[data-lablr=chips] .chip")
    expect(page.locator("[data-lablr=chips]")).to_contain_text("for red-circle.jpg", timeout=WAIT_MS)
    expect(chips.first).to_be_visible(timeout=WAIT_MS)  # the answer drawn, not only asked for
    first_red = chip_texts(page)[0]
    chips.first.click()
    expect(page.locator(site.token)).to_have_count(1)
    tag_input = page.locator(site.tag_input)
    tag_input.click()
    tag_input.press_sequentially("holiday")
    tag_input.press(site.commit_key)
    expect(page.locator(site.token)).to_have_count(2)
    site.card_named(page, "green-square").click()
    expect(page.locator("[data-lablr=chips]")).to_contain_text("for green-square.jpg", timeout=WAIT_MS)
    expect(chips.first).to_be_visible(timeout=WAIT_MS)
    green = chip_texts(page)[:2]
    for count, tag in enumerate(green, 1):
        page.locator(f"[data-lablr=chips] .chip[data-tag='{tag}']").click()
        expect(page.locator(site.token)).to_have_count(count)
    assert page_tags(page, "green-square.jpg") == green

    publish(page, site)
    sent = {f["filename"]: f for f in wait_for_feedback(recorder, 2)}
    page.wait_for_timeout(1000)
    assert len(recorder.feedbacks()) == 2 and "blue-triangle.jpg" not in sent  # a photo without tags teaches nothing
    # The final tags: the page's own tokens where Lablr can read them, else the chips the user clicked.
    red_tags = [first_red, "holiday"] if site.reads_tokens else [first_red]
    assert sent["red-circle.jpg"]["tags"] == ",".join(red_tags)
    assert sent["green-square.jpg"]["tags"] == ",".join(green)
    for name, feedback in sent.items():
        assert feedback["status"] == 200 and feedback["answer"]["recorded"] is True
        assert feedback["suggested"] == ",".join(recorder.answer_for(name))
        image = Image.open(io.BytesIO(feedback["image"]))
        assert image.format == "JPEG" and max(image.size) == 512
    assert learned_photos(server) == before + 2


@pytest.mark.browser
def test_a_tag_typed_just_before_another_photo_is_selected_is_kept(browser, server, recorder, tmp_path):
    """The page's tokens for the photo being edited are remembered as the click that selects another
    photo begins, not only when Lablr next draws (30 ms after the page changes)."""
    site = UPLOADR  # the copy whose tokens Lablr reads
    browser.configure(server=recorder.base, minScore=0)
    page = browser.open_upload_page(site)
    size = (604, 453)  # photos new to the server
    page.locator(site.file_input).set_input_files([write_photo(tmp_path, "red", "circle", size),
                                                   write_photo(tmp_path, "green", "square", size)])
    wait_for_requests(recorder, 2)
    site.card_named(page, "red-circle").click()
    green = site.card_named(page, "green-square").bounding_box()
    tag_input = page.locator(site.tag_input)
    tag_input.click()
    tag_input.press_sequentially("holiday")
    tag_input.press(site.commit_key)
    page.mouse.click(green["x"] + green["width"] / 2, green["y"] + green["height"] / 2)  # at once: no waiting
    publish(page, site)
    sent = {f["filename"]: f for f in wait_for_feedback(recorder, 1)}
    assert sent["red-circle.jpg"]["tags"] == "holiday"


@pytest.mark.browser
def test_teaching_is_sent_once_even_when_the_server_fails_and_can_be_switched_off(browser, server, recorder, tmp_path):
    from playwright.sync_api import expect

    options = browser.open_extension_page("options.html")
    expect(options.locator("#teach")).to_be_checked()  # on by default, and said plainly
    expect(options.locator("form")).to_contain_text("Teach Lablr from the tags I publish")
    browser.configure(server=recorder.base, minScore=0)
    recorder.fail["/api/v1/feedback"] = 1  # the request reaches the server, which answers with an error
    page = browser.open_upload_page(EDITR)
    page.locator(EDITR.file_input).set_input_files(write_photo(tmp_path, "red", "circle", (660, 495)))
    expect(page.locator("[data-lablr=chips] .chip").first).to_be_visible(timeout=WAIT_MS)
    tag = chip_texts(page)[0]
    page.locator("[data-lablr=chips] .chip").first.click()
    expect(page.locator(EDITR.token)).to_have_count(1)
    publish(page, EDITR)
    (sent,) = wait_for_feedback(recorder, 1)
    assert sent["status"] == 503 and sent["tags"] == tag
    page.wait_for_timeout(4500)  # longer than the worker's one retry for a server that was down
    assert len(recorder.feedbacks()) == 1  # it reached the server: never sent twice
    # Every request the extension made said who it is, as the server asks of state-changing ones.
    assert recorder.exchanges and {e["client"] for e in recorder.exchanges} == {"extension"}

    # Switched off: publishing sends nothing.
    options.reload()  # shows the server address configured since
    expect(options.locator("#teach")).to_be_checked()
    options.locator("#teach").uncheck()
    options.get_by_role("button", name="Save").click()
    expect(options.locator("#message")).to_have_text("Saved.")
    page = browser.open_upload_page(UPLOADR)
    page.locator(UPLOADR.file_input).set_input_files(write_photo(tmp_path, "green", "square"))
    expect(page.locator("[data-lablr=chips] .chip").first).to_be_visible(timeout=WAIT_MS)
    page.locator("[data-lablr=chips] .chip").first.click()
    expect(page.locator(UPLOADR.token)).to_have_count(1)
    publish(page, UPLOADR)
    page.wait_for_timeout(2500)
    assert len(recorder.feedbacks()) == 1


@pytest.mark.browser
def test_options_page_and_popup(browser, recorder, tmp_path):
    from playwright.sync_api import expect

    options = browser.open_extension_page("options.html")
    expect(options.locator("#server")).to_have_value("http://127.0.0.1:8777")
    expect(options.locator("#count")).to_have_value("10")
    expect(options.locator("#autoSuggest")).to_be_checked()

    options.locator("#server").fill("http://example.com:8777")
    options.get_by_role("button", name="Save").click()
    expect(options.locator("#message")).to_contain_text("only talks to a server on this computer")

    options.locator("#server").fill(recorder.base)
    options.locator("#count").fill("2")
    options.locator("#minScore").fill("0")
    options.get_by_role("button", name="Save").click()
    expect(options.locator("#message")).to_have_text("Saved.")
    options.get_by_role("button", name="Check connection").click()
    expect(options.locator("#message")).to_contain_text("model tiny-model with 6 tags", timeout=WAIT_MS)

    popup = browser.open_extension_page("popup.html")
    expect(popup.locator("#status")).to_have_text(f"Server reachable at {recorder.base}", timeout=WAIT_MS)
    expect(popup.locator("#model-name")).to_have_text("tiny-model")
    expect(popup.locator("#model-tags")).to_have_text("6")

    page = browser.open_upload_page()
    page.locator("#uploadr-choose-input").set_input_files(write_photo(tmp_path, "blue", "circle"))
    expect(page.locator("[data-lablr=chips] .chip")).to_have_count(2, timeout=WAIT_MS)

    options.locator("#server").fill(f"http://localhost:{free_port()}")
    options.get_by_role("button", name="Save").click()
    expect(options.locator("#message")).to_have_text("Saved.")
    popup.get_by_role("button", name="Check again").click()
    expect(popup.locator("#status")).to_contain_text("Server not reachable", timeout=WAIT_MS)
    expect(popup.locator("#hint")).to_contain_text("lablr serve")


@pytest.mark.browser
def test_shipped_extension_reaches_no_other_port_unless_saved(shipped_browser, recorder, tmp_path):
    from playwright.sync_api import expect

    # A server on another port answers, but the user never chose it: Lablr asks first, it does not try.
    shipped_browser.configure(server=recorder.base, approve=False)
    page = shipped_browser.open_upload_page()
    notice = page.locator("[data-lablr=notice]")
    expect(notice).to_contain_text("needs your permission", timeout=WAIT_MS)
    expect(notice.get_by_role("button", name="Open options")).to_be_visible()
    popup = shipped_browser.open_extension_page("popup.html")
    expect(popup.locator("#status")).to_contain_text("needs your permission", timeout=WAIT_MS)
    expect(popup.locator("#model")).to_be_hidden()  # no empty Model/Tags labels
    assert recorder.exchanges == []
    # The popup's button is the fix: one click, and the server is reached.
    popup.get_by_role("button", name="Allow Lablr to reach it").click()
    expect(popup.locator("#status")).to_have_text(f"Server reachable at {recorder.base}", timeout=WAIT_MS)
    expect(popup.locator("#allow-row")).to_be_hidden()


# ------------------------------------------------------------------------------- the live uploader

MULTI_WORD = "night sky"  # a tag of two words, which Flickr takes only in double quotes


def teach_multi_word_tag(server, folder):
    """The server's personal layer learns MULTI_WORD from red circles, as a user publishing them would."""
    from lablr.core import defaults

    for i in range(defaults.PERSONAL_MIN_PHOTOS):
        photo = write_photo(folder, "red", "circle", size=(400 + 8 * i, 300 + 6 * i), name=f"taught-{i}.jpg")
        answer = httpx.post(f"{server.base}/api/v1/feedback", timeout=60, data={"tags": f"{MULTI_WORD},red,circle"},
                            files={"image": (photo.name, photo.read_bytes(), "image/jpeg")})
        assert answer.status_code == 200, answer.text


@pytest.fixture(scope="module")
def taught_server(tiny_bundle, tmp_path_factory):
    """A server of its own (its personal layer changes) that suggests a tag of two words."""
    running = LablrServer(tiny_bundle).start()
    teach_multi_word_tag(running, tmp_path_factory.mktemp("taught"))
    yield running
    running.close()


@pytest.fixture
def taught_recorder(taught_server):
    proxy = Recorder(taught_server.port)
    yield proxy
    proxy.close()


def save_server_on_options_page(browser, address, **fields):
    """What a user does: the address (and other fields) on Lablr's options page, then Save."""
    from playwright.sync_api import expect

    options = browser.open_extension_page("options.html")
    expect(options.locator("#server")).not_to_have_value("")  # the stored settings are shown
    options.locator("#server").fill(address)
    for name, value in fields.items():
        options.locator(f"#{name}").fill(str(value))
    options.get_by_role("button", name="Save").click()
    expect(options.locator("#message")).to_have_text("Saved.")
    options.close()


def assert_no_stray_keys(page):
    assert page.evaluate("window.__uploadr.strayKeys()") == []
    assert page.evaluate("window.__uploadr.helpShown()") is False
    assert page.locator(".editr-edit-panel[data-set=batch] input[placeholder*='tags']").input_value() == ""


@pytest.mark.browser
def test_live_uploader_the_field_on_screen_flickr_syntax_and_75_tags(shipped_browser, taught_recorder, tmp_path):
    """Installed as shipped, the server saved on the options page: nothing granted by hand."""
    from playwright.sync_api import expect

    save_server_on_options_page(shipped_browser, taught_recorder.base, minScore=0)
    page = shipped_browser.open_upload_page(LIVE)
    page.locator(LIVE.file_input).set_input_files([write_photo(tmp_path, "red", "circle"), write_photo(tmp_path, "green", "square")])
    bar = page.locator("[data-lablr=chips]")
    expect(bar.locator(".chip").first).to_be_visible(timeout=WAIT_MS)
    expect(bar).to_contain_text("for red-circle.jpg")
    # Beside the field the user sees, not beside its twin parked at y = -9760.
    expect(page.locator(f"{LIVE.chips_after} + [data-lablr=chips]")).to_have_count(1)
    box = bar.bounding_box()
    assert box["y"] > 0 and box["width"] > 0
    ranked = taught_recorder.answer_for("red-circle.jpg")
    assert MULTI_WORD in ranked

    # A tag of two words lands as one tag, on the selected photo only.
    bar.locator(f".chip[data-tag='{MULTI_WORD}']").click()
    expect(page.locator(LIVE.token, has_text=MULTI_WORD)).to_be_visible()
    assert page_tags(page, "red-circle.jpg") == [MULTI_WORD] and page_tags(page, "green-square.jpg") == []
    # Two quick clicks on one chip add its tag once.
    other = next(tag for tag in ranked if tag != MULTI_WORD)
    bar.locator(f".chip[data-tag='{other}']").dblclick()
    expect(page.locator(LIVE.token, has_text=other)).to_be_visible()
    page.wait_for_timeout(500)
    assert page_tags(page, "red-circle.jpg") == [MULTI_WORD, other]
    assert_no_stray_keys(page)

    # The page's counter says 74 of 75: "Add top N" adds one tag, and the bar says why no more.
    page.evaluate("window.__uploadr.setTags('red-circle.jpg', Array.from({length: 74}, (_, i) => `old${i}`))")
    expect(page.locator(".editr-edit-panel[data-set=one] .tags-count")).to_have_text("Tags 74/75")
    bar.get_by_role("button", name=re.compile(r"^Add top \d+$")).click()
    expect(bar.locator(".warn")).to_contain_text("at most 75 tags")
    expect(page.locator(".editr-edit-panel[data-set=one] .tags-count")).to_have_text("Tags 75/75")
    assert len(page_tags(page, "red-circle.jpg")) == 75
    assert_no_stray_keys(page)

    # Nothing selected: the only tag field left is the batch one, off screen. No chip goes near it.
    page.evaluate("window.__uploadr.selectNone()")
    expect(page.locator("[data-lablr=panel]")).to_contain_text("tag field was not found")
    expect(page.locator("[data-lablr=chips]")).to_have_count(0)
    assert page_tags(page, "green-square.jpg") == []
    assert_no_stray_keys(page)


@pytest.mark.browser
def test_live_uploader_batch_selection_and_one_feedback_per_photo(shipped_browser, taught_recorder, tmp_path):
    from playwright.sync_api import expect

    save_server_on_options_page(shipped_browser, taught_recorder.base, minScore=0)
    page = shipped_browser.open_upload_page(LIVE)
    page.locator(LIVE.file_input).set_input_files([write_photo(tmp_path, "red", "circle", (500, 375)),
                                                   write_photo(tmp_path, "green", "square", (500, 375))])
    wait_for_requests(taught_recorder, 2)
    bar = page.locator("[data-lablr=chips]")
    expect(bar.locator(".chip").first).to_be_visible(timeout=WAIT_MS)

    # Both selected: the batch set comes on screen; the chips are for the two, and say so.
    LIVE.card_named(page, "green-square").click(modifiers=["Control"])
    expect(page.locator(".editr-edit-panel[data-set=batch] h3")).to_have_text("Editing 2 photos")
    expect(bar).to_contain_text("for the 2 selected photos:", timeout=WAIT_MS)
    shared = chip_texts(page)[0]
    bar.locator(".chip").first.click()
    expect(page.locator(".editr-edit-panel[data-set=batch] .tag-list li", has_text=shared)).to_be_visible()
    expect(bar.locator(f".chip[data-tag='{shared}']")).to_have_count(0)  # Lablr saw it taken
    assert page_tags(page, "red-circle.jpg") == page_tags(page, "green-square.jpg") == [shared]
    assert page.evaluate("window.__uploadr.strayKeys()") == []

    # One photo again: its own chips, its own tag.
    LIVE.card_named(page, "red-circle").click()
    expect(bar).to_contain_text("for red-circle.jpg", timeout=WAIT_MS)
    expect(bar.locator(".chip").first).to_be_visible()
    own = chip_texts(page)[0]
    bar.locator(".chip").first.click()
    expect(page.locator(LIVE.token, has_text=own)).to_be_visible()
    assert page_tags(page, "red-circle.jpg") == [shared, own] and page_tags(page, "green-square.jpg") == [shared]
    assert_no_stray_keys(page)

    publish(page, LIVE)
    sent = {f["filename"]: f for f in wait_for_feedback(taught_recorder, 2)}
    page.wait_for_timeout(4500)  # longer than any retry
    assert len(taught_recorder.feedbacks()) == 2  # exactly one per published photo
    assert sent["red-circle.jpg"]["tags"] == f"{shared},{own}" and sent["green-square.jpg"]["tags"] == shared
    assert all(f["status"] == 200 for f in sent.values())


@pytest.mark.browser
def test_feedback_lists_only_the_suggestions_shown(browser, recorder, tmp_path):
    """Suggestions hidden below the score threshold were never seen: feedback does not call them suggested."""
    from playwright.sync_api import expect

    browser.configure(server=recorder.base, minScore=1)  # at first nothing clears it
    page = browser.open_upload_page(LIVE)
    page.locator(LIVE.file_input).set_input_files(write_photo(tmp_path, "blue", "circle", (540, 405)))
    bar = page.locator("[data-lablr=chips]")
    expect(bar).to_contain_text("No suggested tag scores 1.00 or more", timeout=WAIT_MS)
    (exchange,) = recorder.suggests()
    scores = {s["tag"]: s["score"] for s in exchange["answer"]["results"][0]["suggestions"]}
    ranked = sorted(scores.values(), reverse=True)
    threshold = (ranked[2] + ranked[3]) / 2  # three tags clear it, the others stay hidden
    browser.configure(server=recorder.base, minScore=threshold)
    expect(bar.locator(".chip")).to_have_count(3, timeout=WAIT_MS)
    bar.locator(".chip").first.click()
    expect(page.locator(LIVE.token)).to_have_count(1)
    publish(page, LIVE)
    (sent,) = wait_for_feedback(recorder, 1)
    assert set(sent["suggested"].split(",")) == {tag for tag, score in scores.items() if score > threshold}


def default_bundle():
    import importlib.resources

    from lablr.core import defaults

    path = Path(str(importlib.resources.files("lablr.core"))) / "bundles" / defaults.DEFAULT_MODEL
    return path if (path / "manifest.json").is_file() else None


@pytest.mark.browser
@pytest.mark.slow
@pytest.mark.skipif(default_bundle() is None, reason="the default model bundle is not built yet")
def test_default_model_on_the_upload_page_takes_the_readme_screenshot(browser, tmp_path):
    from playwright.sync_api import expect

    running = LablrServer(None).start()  # a plain `lablr serve`: the bundled model
    proxy = Recorder(running.port)
    try:
        browser.configure(server=proxy.base, minScore=0)
        page = browser.open_upload_page()
        cat = real_photo()  # as on the web page: scikit-image's photograph, at a camera's size
        if cat is not None:
            image = Image.open(cat).convert("RGB")
            photo = tmp_path / "cat.jpg"
            image.resize((1600, round(1600 * image.height / image.width))).save(photo, quality=92)
        else:
            photo = write_photo(tmp_path, "red", "circle", size=(1600, 1200), name="cat.jpg")
        page.locator("#uploadr-choose-input").set_input_files(photo)
        chips = page.locator("[data-lablr=chips] .chip")
        expect(chips).to_have_count(10, timeout=WAIT_MS)
        ranked = proxy.answer_for("cat.jpg")
        assert cat is None or "cat" in ranked[:3]
        assert chip_texts(page) == ranked
        chips.first.click()
        expect(page.locator(f".uploadr-tag-token[data-tag='{ranked[0]}']")).to_be_visible()
        take_screenshot(page, tmp_path)
    finally:
        proxy.close()
        running.close()


# ------------------------------------------------------------------------------- a photographer's session

JOURNEY = [(colour, shape) for colour in ("red", "green", "blue") for shape in ("circle", "square", "triangle")]


def journey_photos(folder, count, first=0):
    """`count` photos with names of their own (photo-00.jpg...), new to the server, drawn from the tiny model's shapes."""
    return [write_photo(folder, *JOURNEY[i % len(JOURNEY)], size=(640 + i, 480), name=f"photo-{i:02d}.jpg")
            for i in range(first, first + count)]


def selected_chips(page, name):
    """The chips once they are drawn for `name`: (label, chip texts)."""
    from playwright.sync_api import expect

    bar = page.locator("[data-lablr=chips]")
    expect(bar).to_contain_text(f"for {name}:", timeout=WAIT_MS)
    expect(bar.locator(".chip").first).to_be_visible(timeout=WAIT_MS)
    return chip_texts(page)


@pytest.mark.browser
@pytest.mark.parametrize("site", SITES)
def test_ten_photos_then_more_and_quick_switching_tags_only_the_selected_one(browser, recorder, tmp_path, site):
    from playwright.sync_api import expect

    browser.configure(server=recorder.base, minScore=0)
    page = browser.open_upload_page(site)
    page.locator(site.file_input).set_input_files(journey_photos(tmp_path, 10))
    wait_for_requests(recorder, 10)
    drop_files(page, journey_photos(tmp_path, 3, first=10))
    wait_for_requests(recorder, 13)
    expect(page.locator(site.card)).to_have_count(13)
    page.wait_for_timeout(500)
    assert sorted(e["parts"][0]["filename"] for e in recorder.suggests()) == [f"photo-{i:02d}.jpg" for i in range(13)]

    # Back and forth without waiting, then a chip: it lands on the photo selected last, and on no other.
    for name in ("photo-03", "photo-11", "photo-03", "photo-11", "photo-03"):
        site.card_named(page, name).click()
    assert selected_chips(page, "photo-03.jpg") == recorder.answer_for("photo-03.jpg")
    tag = chip_texts(page)[0]
    page.locator("[data-lablr=chips] .chip").first.click()
    site.card_named(page, "photo-11").click()  # at once, while the tag may still be being typed
    assert selected_chips(page, "photo-11.jpg") == recorder.answer_for("photo-11.jpg")
    page.wait_for_timeout(800)
    tagged = {p["name"]: p["tags"] for p in page.evaluate("window.__uploadr.photos()") if p["tags"]}
    assert tagged in ({"photo-03.jpg": [tag]}, {}), tagged
    for name in ("photo-12", "photo-00"):
        site.card_named(page, name).click()
        assert selected_chips(page, f"{name}.jpg") == recorder.answer_for(f"{name}.jpg")
    expect(page.locator("[data-lablr=panel]")).to_have_count(0)


@pytest.mark.browser
def test_server_stopped_mid_batch_says_so_and_recovers_without_a_reload(browser, tiny_bundle, tmp_path):
    from playwright.sync_api import expect

    site = LIVE
    later = LablrServer(tiny_bundle).start()
    proxy = Recorder(later.port)
    try:
        browser.configure(server=proxy.base, minScore=0)
        page = browser.open_upload_page(site)
        notice = page.locator("[data-lablr=notice]")
        page.locator(site.file_input).set_input_files(journey_photos(tmp_path, 2))
        wait_for_requests(proxy, 2)
        selected_chips(page, "photo-00.jpg")
        later.stop()
        page.locator(site.file_input).set_input_files(journey_photos(tmp_path, 8, first=2))
        expect(notice).to_contain_text("lablr serve", timeout=WAIT_MS)
        site.card_named(page, "photo-05").click()
        expect(page.locator("[data-lablr=chips]")).to_contain_text("Waiting for the Lablr server", timeout=WAIT_MS)
        # The photo whose tags came before the server stopped keeps its chips meanwhile.
        site.card_named(page, "photo-01").click()
        assert selected_chips(page, "photo-01.jpg") == proxy.answer_for("photo-01.jpg")
        later.start()
        expect(notice).to_have_count(0, timeout=WAIT_MS)
        for i in range(2, 10):
            site.card_named(page, f"photo-{i:02d}").click()
            assert selected_chips(page, f"photo-{i:02d}.jpg") == proxy.answer_for(f"photo-{i:02d}.jpg")
        names = [e["parts"][0]["filename"] for e in proxy.suggests()]
        assert sorted(names) == [f"photo-{i:02d}.jpg" for i in range(10)]  # each asked once, once it was answered
        assert [m for m in page.console_messages_seen if m[0] in ("error", "warning")] == []
    finally:
        proxy.close()
        later.close()


@pytest.mark.browser
def test_options_changed_while_the_upload_page_is_open(browser, recorder, tmp_path):
    from playwright.sync_api import expect

    site = LIVE
    browser.configure(server=recorder.base, minScore=0, count=3)
    page = browser.open_upload_page(site)
    recorder.delay["/api/v1/suggest"] = 1.5
    page.locator(site.file_input).set_input_files(journey_photos(tmp_path, 6))
    page.wait_for_timeout(700)
    browser.configure(count=6)  # while the first photos are being asked about
    page.wait_for_timeout(100)
    recorder.delay.clear()
    for i in range(6):
        site.card_named(page, f"photo-{i:02d}").click()
        expect(page.locator("[data-lablr=chips] .chip")).to_have_count(6, timeout=WAIT_MS)
    # Another number on the options page: the chips follow, without a reload.
    save_server_on_options_page(browser, recorder.base, count=2)
    expect(page.locator("[data-lablr=chips] .chip")).to_have_count(2, timeout=WAIT_MS)
    # A server address where nothing listens: the notice names it; saved back, the chips return.
    dead = f"http://127.0.0.1:{free_port()}"
    save_server_on_options_page(browser, dead)
    notice = page.locator("[data-lablr=notice]")
    expect(notice).to_contain_text(dead, timeout=WAIT_MS)
    save_server_on_options_page(browser, recorder.base)
    expect(notice).to_have_count(0, timeout=WAIT_MS)
    expect(page.locator("[data-lablr=chips] .chip")).to_have_count(2, timeout=WAIT_MS)


@pytest.mark.browser
def test_a_selection_moved_while_a_tag_is_typed_never_tags_the_other_photo(browser, recorder, tmp_path):
    """On a panel that keeps its tag field, and what is typed in it, when another photo is selected
    ("one-field"), a tag still being typed for one photo must not be committed to the next."""
    from playwright.sync_api import expect

    site = EDITR  # its widget ignores Enter: Lablr goes on to a comma, 80 ms later
    browser.configure(server=recorder.base, minScore=0)
    page = browser.open_upload_page(site, variant="one-field")
    page.locator(site.file_input).set_input_files(journey_photos(tmp_path, 2))
    wait_for_requests(recorder, 2)
    site.card_named(page, "photo-00").click()
    selected_chips(page, "photo-00.jpg")
    # A chip, then the other photo 20 ms later: sooner than a person could, but what a busy page may do.
    page.evaluate("""() => {
        document.querySelector('[data-lablr=chips]').shadowRoot.querySelector('.chip').click();
        const other = [...document.querySelectorAll('#editr-grid li')].find((li) => li.textContent.includes('photo-01'));
        setTimeout(() => other.click(), 20);
    }""")
    expect(page.locator("[data-lablr=chips]")).to_contain_text("for photo-01.jpg", timeout=WAIT_MS)
    page.wait_for_timeout(1000)
    assert page_tags(page, "photo-01.jpg") == []


@pytest.mark.browser
@pytest.mark.parametrize("site", [pytest.param(EDITR, id="editr"), pytest.param(LIVE, id="live")])
def test_publishing_ten_photos_sends_one_feedback_per_tagged_photo(browser, recorder, tmp_path, site):
    from playwright.sync_api import expect

    browser.configure(server=recorder.base, minScore=0, addTop=3)
    page = browser.open_upload_page(site)
    size_offset = {EDITR: 40, LIVE: 60}[site]  # photos new to the server
    photos = [write_photo(tmp_path, *JOURNEY[i % 9], size=(600 + size_offset + i, 450), name=f"photo-{i:02d}.jpg")
              for i in range(10)]
    page.locator(site.file_input).set_input_files(photos)
    wait_for_requests(recorder, 10)
    clicked = {}
    for name, how in (("photo-02", "chip"), ("photo-05", "top"), ("photo-08", "chip"), ("photo-02", "chip")):
        site.card_named(page, name).click()
        selected_chips(page, f"{name}.jpg")
        tags = chip_texts(page)[:3 if how == "top" else 1]
        before = len(clicked.get(name, []))
        if how == "top":
            page.get_by_role("button", name="Add top 3").click()
        else:
            page.locator("[data-lablr=chips] .chip").first.click()
        clicked.setdefault(name, []).extend(tags)
        # The next card is clicked as soon as the token shows, perhaps before Lablr saw it taken.
        expect(page.locator(site.token)).to_have_count(before + len(tags))
    publish(page, site)
    sent = {f["filename"]: f for f in wait_for_feedback(recorder, 3)}
    page.wait_for_timeout(4500)  # longer than the worker's one retry
    assert len(recorder.feedbacks()) == 3 and set(sent) == {f"{n}.jpg" for n in clicked}
    for name, tags in clicked.items():
        assert sent[f"{name}.jpg"]["tags"] == ",".join(tags)
        assert sent[f"{name}.jpg"]["suggested"] == ",".join(recorder.answer_for(f"{name}.jpg"))


@pytest.mark.browser
@pytest.mark.parametrize("site", [pytest.param(UPLOADR, id="uploadr"), pytest.param(LIVE, id="live")])
def test_tags_typed_by_hand_first_are_not_repeated_and_75_is_the_most(browser, recorder, tmp_path, site):
    from playwright.sync_api import expect

    browser.configure(server=recorder.base, minScore=0, addTop=5)
    page = browser.open_upload_page(site)
    page.locator(site.file_input).set_input_files(journey_photos(tmp_path, 2))
    wait_for_requests(recorder, 2)
    site.card_named(page, "photo-01").click()
    ranked = selected_chips(page, "photo-01.jpg")
    # The best tag typed by hand in capitals, then 72 tags of the user's own: 73 of Flickr's 75.
    own = [ranked[0].upper()] + [f"mine{i}" for i in range(72)]
    separator = "," if site is UPLOADR else " "
    tag_input = page.locator(site.tag_input)
    tag_input.fill(separator.join(own))
    tag_input.press("Enter")
    expect(page.locator(site.token)).to_have_count(73)
    if site.reads_tokens:
        expect(page.locator(f"[data-lablr=chips] .chip[data-tag='{ranked[0]}']")).to_have_count(0, timeout=WAIT_MS)
    page.get_by_role("button", name="Add top 5").click()
    expect(page.locator("[data-lablr=chips] .warn")).to_contain_text("at most 75 tags", timeout=WAIT_MS)
    tags = page_tags(page, "photo-01.jpg")
    assert len(tags) == 75 and len({t.lower() for t in tags}) == 75
    assert page_tags(page, "photo-00.jpg") == []


@pytest.mark.browser
def test_a_photo_removed_then_added_again_gets_its_chips_and_teaches_once(browser, recorder, tmp_path):
    from playwright.sync_api import expect

    site = LIVE  # its grid items have a remove button
    browser.configure(server=recorder.base, minScore=0)
    page = browser.open_upload_page(site)
    photos = [write_photo(tmp_path, *JOURNEY[i], size=(720 + i, 540), name=f"photo-{i:02d}.jpg") for i in range(3)]
    page.locator(site.file_input).set_input_files(photos)
    wait_for_requests(recorder, 3)
    site.card_named(page, "photo-01").click()
    selected_chips(page, "photo-01.jpg")
    page.locator("[data-lablr=chips] .chip").first.click()
    expect(page.locator(site.token)).to_have_count(1)
    # Removed before publishing, then chosen again: the same file name, a new photo for the page.
    site.card_named(page, "photo-01").locator("button.remove").click()
    expect(page.locator(site.card)).to_have_count(2)
    page.locator(site.file_input).set_input_files(photos[1])
    wait_for_requests(recorder, 4)
    site.card_named(page, "photo-01").click()
    assert selected_chips(page, "photo-01.jpg") == recorder.answer_for("photo-01.jpg")
    expect(page.locator("[data-lablr=panel]")).to_have_count(0)
    tag = chip_texts(page)[0]
    page.locator("[data-lablr=chips] .chip").first.click()
    expect(page.locator(site.token)).to_have_count(1)
    assert page_tags(page, "photo-01.jpg") == [tag]
    publish(page, site)
    (sent,) = wait_for_feedback(recorder, 1)
    page.wait_for_timeout(4500)
    assert len(recorder.feedbacks()) == 1 and sent["filename"] == "photo-01.jpg" and sent["tags"] == tag


@pytest.mark.browser
def test_photos_removed_from_the_page_are_not_counted(browser, recorder, tmp_path):
    """The floating panel lists, and the chips' label counts, only the photos still on the page."""
    from playwright.sync_api import expect

    site = LIVE  # its grid items have a remove button
    browser.configure(server=recorder.base, minScore=0, count=3)
    page = browser.open_upload_page(site)
    page.locator(site.file_input).set_input_files(journey_photos(tmp_path, 3))
    wait_for_requests(recorder, 3)
    site.card_named(page, "photo-01").locator("button.remove").click()
    page.evaluate("window.__uploadr.selectNone()")  # no photo selected: the panel lists every photo on the page
    sections = page.locator("[data-lablr=panel] section")
    expect(sections).to_have_count(2, timeout=WAIT_MS)
    assert [s.get_attribute("data-photo") for s in sections.all()] == ["photo-00.jpg", "photo-02.jpg"]
    site.card_named(page, "photo-02").locator("button.remove").click()  # the page selects the one left
    bar = page.locator("[data-lablr=chips]")
    expect(bar.locator(".chip")).to_have_count(3, timeout=WAIT_MS)
    expect(bar.locator(".for")).to_have_count(0)  # one photo on the page: no name needed
    expect(page.locator("[data-lablr=panel]")).to_have_count(0)


@pytest.mark.browser
def test_photos_of_one_name_stay_counted_when_the_page_draws_its_grid_anew(browser, recorder, tmp_path):
    """Two files of one name cannot be told apart on a grid drawn anew: neither is taken for removed."""
    from playwright.sync_api import expect

    site = LIVE
    browser.configure(server=recorder.base, minScore=0, count=3)
    page = browser.open_upload_page(site)
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    photos = [write_photo(tmp_path / folder, *JOURNEY[i], size=(700 + i, 500), name="photo.jpg")
              for i, folder in enumerate("ab")] + journey_photos(tmp_path, 1, first=2)
    page.locator(site.file_input).set_input_files(photos[0])  # alone: its card is paired by its name
    wait_for_requests(recorder, 1)
    expect(page.locator("[data-lablr=chips] .chip")).to_have_count(3, timeout=WAIT_MS)
    page.locator(site.file_input).set_input_files(photos[1:])
    wait_for_requests(recorder, 3)
    page.evaluate("window.__uploadr.selectNone()")
    sections = page.locator("[data-lablr=panel] section")
    expect(sections).to_have_count(3, timeout=WAIT_MS)
    page.evaluate("window.__uploadr.redrawGrid()")
    page.evaluate("window.__uploadr.selectNone()")
    page.wait_for_timeout(500)  # the extension redraws on the page's change
    expect(sections).to_have_count(3, timeout=WAIT_MS)
    assert sorted(s.get_attribute("data-photo") for s in sections.all()) == ["photo-02.jpg", "photo.jpg", "photo.jpg"]


@pytest.mark.browser
def test_another_server_saved_while_the_page_is_open_brings_its_own_model(browser, recorder, tmp_path):
    """The threshold follows the model of the server now saved: one whose scores are not probabilities has none."""
    from playwright.sync_api import expect

    running = LablrServer(FIXTURES / "bundle-format-1").start()
    proxy = Recorder(running.port)
    try:
        browser.configure(server=recorder.base, count=4, minScore=0.99)
        page = browser.open_upload_page(LIVE)
        page.locator(LIVE.file_input).set_input_files(write_photo(tmp_path, "red", "square", (740, 555)))
        expect(page.locator("[data-lablr=chips]")).to_contain_text("No suggested tag scores 0.99", timeout=WAIT_MS)
        save_server_on_options_page(browser, proxy.base)
        wait_for_requests(proxy, 1)
        ranked = [s["tag"] for s in proxy.suggests()[0]["answer"]["results"][0]["suggestions"]][:4]
        expect(page.locator("[data-lablr=chips] .chip")).to_have_count(len(ranked), timeout=WAIT_MS)
        assert chip_texts(page) == ranked
    finally:
        proxy.close()
        running.close()



# ------------------------------------------------------------------------------- publishing while the server is down

# Where the extension keeps the feedback that found no server, and how much of it: settings.js says it once.
KEPT = re.search(r'LABLR_KEPT = Object\.freeze\(\{ key: "(\w+)", maxPhotos: (\d+), maxChars: (\d+) \}\);',
                 (EXTENSION / "settings.js").read_text())


def test_the_docs_say_how_much_is_kept_for_a_server_that_was_down():
    """docs/extension.md says the bound that settings.js sets, in "Publishing teaches Lablr" and in "Privacy"."""
    said = f"most {KEPT[2]} photos and about {int(KEPT[3]) / 1e6:g} MB"
    assert (ROOT / "docs" / "extension.md").read_text().replace("\n", " ").count(said) == 2, said


def kept_photos(browser):
    """The published photos the extension keeps for a server it could not reach: their file names, oldest first."""
    return [entry["filename"] for entry in browser.stored().get(KEPT[1], [])]


def wait_for_kept(browser, names, timeout=WAIT_MS / 1000):
    deadline = time.monotonic() + timeout
    while kept_photos(browser) != names:
        assert time.monotonic() < deadline, f"kept {kept_photos(browser)}, not {names}"
        time.sleep(0.1)


@pytest.mark.browser
def test_photos_published_while_the_server_is_down_teach_it_once_it_answers(browser, tiny_bundle, tmp_path):
    from playwright.sync_api import expect

    site = LIVE  # it goes on to its success page at once: nobody is on the upload page to be told
    later = LablrServer(tiny_bundle).start()
    proxy = Recorder(later.port)
    try:
        browser.configure(server=proxy.base, minScore=0)
        page = browser.open_upload_page(site)
        page.locator(site.file_input).set_input_files(journey_photos(tmp_path, 2))
        wait_for_requests(proxy, 2)
        clicked = {}
        for name in ("photo-00", "photo-01"):
            site.card_named(page, name).click()
            clicked[f"{name}.jpg"] = selected_chips(page, f"{name}.jpg")[0]
            page.locator("[data-lablr=chips] .chip").first.click()
            expect(page.locator(site.token)).to_have_count(1)
        later.stop()
        publish(page, site)
        wait_for_kept(browser, ["photo-00.jpg", "photo-01.jpg"])
        popup = browser.open_extension_page("popup.html")
        expect(popup.locator("#kept")).to_have_text("2 published photos wait for the Lablr server.", timeout=WAIT_MS)
        page.wait_for_timeout(3500)  # past the worker's retry a few seconds later: still no server
        assert proxy.feedbacks() == [] and len(kept_photos(browser)) == 2

        later.start()  # the same port
        browser.open_upload_page(site)  # the next upload page finds the server answering
        sent = wait_for_feedback(proxy, 2)
        expect(popup.locator("#kept")).to_be_hidden(timeout=WAIT_MS)
        page.wait_for_timeout(1500)
        assert [f["filename"] for f in proxy.feedbacks()] == ["photo-00.jpg", "photo-01.jpg"]  # once each, in order
        assert kept_photos(browser) == [] and learned_photos(later) == 2
        for feedback in sent:
            assert feedback["status"] == 200 and feedback["answer"]["recorded"] is True
            assert feedback["tags"] == clicked[feedback["filename"]]
            assert max(Image.open(io.BytesIO(feedback["image"])).size) == 512  # the shrunk copy, as ever
        # Sent again (as a kept one is when its answer was lost), the same photo counts once.
        again = httpx.post(f"{later.base}/api/v1/feedback", timeout=60, data={"tags": sent[0]["tags"]},
                           files={"image": (sent[0]["filename"], sent[0]["image"], "image/jpeg")})
        assert again.status_code == 200 and again.json()["recorded"] is False
        assert learned_photos(later) == 2
    finally:
        proxy.close()
        later.close()


@pytest.fixture
def two_keeping_browser(playwright_driver, tmp_path):
    """The extension with room for two kept photos, so that a third shows the bound."""
    target = tmp_path / "lablr"
    shutil.copytree(EXTENSION, target)
    settings = target / "settings.js"
    settings.write_text(settings.read_text().replace(f"maxPhotos: {KEPT[2]},", "maxPhotos: 2,"))
    with launched(playwright_driver, target, tmp_path / "profile") as running:
        yield running


@pytest.mark.browser
def test_kept_photos_are_bounded_and_forgotten_when_teaching_is_switched_off(two_keeping_browser, tmp_path):
    from playwright.sync_api import expect

    browser, site = two_keeping_browser, UPLOADR  # the copy whose tokens Lablr reads: tags typed by hand count
    browser.configure(server=f"http://127.0.0.1:{free_port()}")  # no server there
    page = browser.open_upload_page(site)
    page.locator(site.file_input).set_input_files(journey_photos(tmp_path, 3))
    for name in ("photo-00", "photo-01", "photo-02"):
        site.card_named(page, name).click()
        tag_input = page.locator(site.tag_input)
        tag_input.fill(name.replace("-", ""))
        tag_input.press(site.commit_key)
        expect(page.locator(site.token)).to_have_count(1)
    publish(page, site)
    wait_for_kept(browser, ["photo-01.jpg", "photo-02.jpg"])  # the oldest dropped
    popup = browser.open_extension_page("popup.html")
    expect(popup.locator("#kept")).to_have_text("2 published photos wait for the Lablr server.", timeout=WAIT_MS)

    options = browser.open_extension_page("options.html")
    expect(options.locator("#teach")).to_be_checked()
    options.locator("#teach").uncheck()
    options.get_by_role("button", name="Save").click()
    expect(options.locator("#message")).to_have_text("Saved.")
    assert kept_photos(browser) == []
    expect(popup.locator("#kept")).to_be_hidden()
