"""The browser extension in a real Firefox ESR, against the real `lablr serve` on 127.0.0.1.

Debian's firefox-esr runs headless, driven through Marionette (the `marionette-driver` package);
the extension is installed as a temporary add-on, as a developer loads it from about:debugging,
and nothing is granted by hand: the user's only step is saving the server's address on Lablr's
options page. The fixture pages (tests/fixtures) are served from 127.0.0.1, so the installed copy
adds one match pattern for them; the extension is otherwise the one shipped. firefox-esr missing is
a failure, not a skip: scripts/test.sh installs it.
"""

import contextlib
import json
import os
import shutil
import subprocess
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from lablr_server import free_port, running_server
from test_extension import (
    EDITR,
    EXTENSION,
    FIXTURES,
    LIVE,
    STRICT_CSP,
    SUCCESS_PATH,
    LablrServer,
    Recorder,
    journey_photos,
    learned_photos,
    recorder,  # noqa: F401 (a fixture: a recording proxy in front of the server)
    server,  # noqa: F401 (a fixture: a real `lablr serve` for this module)
    write_photo,
)

FIREFOX = os.environ.get("LABLR_FIREFOX") or shutil.which("firefox-esr") or "/usr/bin/firefox-esr"
LOCAL_PAGES = "http://127.0.0.1/photos/upload*"  # no port: Firefox's match patterns have none
WAIT_S = 60  # bounded waits for what the user sees; the CPU may be busy
START_S = 90  # Firefox's start, on a busy machine

pytestmark = pytest.mark.browser


# ------------------------------------------------------------------------------- Firefox, Marionette


class FixturePages:
    """Our copies of Flickr's upload page, served on 127.0.0.1 with the strictest CSP Flickr could send."""

    def __init__(self):
        self.site = LIVE
        self.variant = None  # one of the site's variants (see each fixture's script), else its own
        pages = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                path = urlsplit(self.path).path
                name = Path(path).name
                if path.rstrip("/") == "/photos/upload":
                    html = (FIXTURES / pages.site.html).read_text().replace(
                        f'data-variant="{pages.site.variant}"', f'data-variant="{pages.variant or pages.site.variant}"')
                    self._send(html.encode(), "text/html; charset=utf-8", {"Content-Security-Policy": STRICT_CSP})
                elif path.startswith("/photos/upload/fixture/") and (FIXTURES / name).is_file():
                    kind = {".js": "text/javascript", ".css": "text/css"}[Path(name).suffix]
                    self._send((FIXTURES / name).read_bytes(), kind)
                elif path.rstrip("/") == SUCCESS_PATH:
                    self._send(b"<!doctype html><title>Flickr Pro</title><p>Your upload is done.</p>", "text/html")
                else:
                    self.send_error(404)

            def _send(self, body, kind, headers=None):
                self.send_response(200)
                self.send_header("Content-Type", kind)
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/photos/upload/"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def installed_copy(target):
    """The shipped extension, plus a match pattern for the fixture pages on 127.0.0.1."""
    shutil.copytree(EXTENSION, target)
    manifest = json.loads((target / "manifest.json").read_text())
    manifest["content_scripts"][0]["matches"].append(LOCAL_PAGES)
    (target / "manifest.json").write_text(json.dumps(manifest, indent=2))
    return target


PREFS = {
    "browser.shell.checkDefaultBrowser": False,
    "browser.startup.homepage_override.mstone": "ignore",
    "datareporting.policy.dataSubmissionEnabled": False,
    "toolkit.telemetry.reportingpolicy.firstRun": False,
    "app.update.disabledForTesting": True,
    "browser.aboutwelcome.enabled": False,
    "network.dns.disablePrefetch": True,
}


def off_the_network(closed_port):
    """Every request but those to 127.0.0.1 and localhost goes to a proxy that is not there, and fails."""
    return {"network.proxy.type": 1,  # manual
            "network.proxy.http": "127.0.0.1", "network.proxy.http_port": closed_port,
            "network.proxy.ssl": "127.0.0.1", "network.proxy.ssl_port": closed_port,
            "network.proxy.no_proxies_on": "localhost, 127.0.0.1",
            "network.proxy.allow_hijacking_localhost": False}


class Firefox:
    """A headless firefox-esr with the extension installed, and a Marionette session to drive it."""

    def __init__(self, profile, extension):
        from marionette_driver.addons import Addons
        from marionette_driver.marionette import Marionette

        port = free_port()
        prefs = {**PREFS, **off_the_network(free_port()), "marionette.port": port}
        (profile / "user.js").write_text("".join(f"user_pref({json.dumps(k)}, {json.dumps(v)});\n" for k, v in prefs.items()))
        self.log = tempfile.TemporaryFile()
        self.process = subprocess.Popen([FIREFOX, "--marionette", "--remote-allow-system-access", "--headless",
                                         "--no-remote", "--profile", str(profile)],
                                        stdout=self.log, stderr=subprocess.STDOUT)
        try:
            self.client = Marionette(host="127.0.0.1", port=port, socket_timeout=WAIT_S, startup_timeout=START_S)
            self.client.start_session()
            self.client.timeout.page_load = WAIT_S
            self.client.timeout.script = WAIT_S
            addon = Addons(self.client).install(str(extension), temp=True)
            with self.client.using_context("chrome"):
                uuids = self.client.execute_script("return Services.prefs.getStringPref('extensions.webextensions.uuids')")
            self.base = f"moz-extension://{json.loads(uuids)[addon]}"
        except Exception as err:
            self.close()
            self.log.seek(0)
            raise RuntimeError(f"firefox-esr did not start under Marionette: {err}\n"
                               f"{self.log.read()[-3000:].decode(errors='replace')}") from err

    def run(self, script, *args):
        """Runs script in the page; `page` is the page's own window (its test hooks)."""
        return self.client.execute_script("const page = window.wrappedJSObject;\n" + script, script_args=args)

    def wait(self, what, condition, timeout=WAIT_S):
        deadline = time.monotonic() + timeout
        while True:
            value = condition()
            if value:
                return value
            assert time.monotonic() < deadline, f"waited {timeout} s for {what}; Lablr on the page says: {self.lablr_says()}"
            time.sleep(0.2)

    def lablr_says(self):
        with contextlib.suppress(Exception):
            return self.run("return [...document.querySelectorAll('[data-lablr]')].map((h) => h.shadowRoot.textContent);")

    def element(self, css):
        from marionette_driver.by import By

        return self.wait(css, lambda: (self.client.find_elements(By.CSS_SELECTOR, css) or [None])[0])

    def save_options(self, **fields):
        """What a user does on Lablr's options page, in this tab: fields filled in, then a click on Save."""
        self.client.navigate(f"{self.base}/options.html")
        self.wait("the options shown", lambda: self.run("return document.getElementById('server').value"))
        for name, value in fields.items():
            self.run("document.getElementById(arguments[0]).value = arguments[1];", name, str(value))
        self.element("button[type=submit]").click()
        self.wait("Saved.", lambda: self.run("return document.getElementById('message').textContent") == "Saved.")

    def save_server(self, address, **fields):
        self.save_options(server=address, **fields)

    @contextlib.contextmanager
    def another_tab(self):
        """A new tab in front, the page of this one still open behind it; closed after, and this one in front again."""
        first = self.client.current_window_handle
        self.client.switch_to_window(self.client.open(type="tab")["handle"])
        try:
            yield
        finally:
            self.client.close()
            self.client.switch_to_window(first)

    def popup_status(self):
        self.client.navigate(f"{self.base}/popup.html")
        return self.wait("the popup's answer", lambda: (lambda s: s if s and "Checking" not in s else None)(
            self.run("return document.getElementById('status').textContent")))

    def close(self):
        with contextlib.suppress(Exception):
            self.client.delete_session()
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@pytest.fixture(scope="module")
def firefox(tmp_path_factory):
    assert Path(FIREFOX).is_file(), f"no firefox-esr at {FIREFOX}: scripts/test.sh installs it (apt-get install firefox-esr)"
    root = tmp_path_factory.mktemp("firefox")
    (root / "profile").mkdir()
    browser = Firefox(root / "profile", installed_copy(root / "lablr"))
    yield browser
    browser.close()


@pytest.fixture(scope="module")
def pages():
    served = FixturePages()
    yield served
    served.close()


# ------------------------------------------------------------------------------- on the page

CHIPS = "const bar = document.querySelector('[data-lablr=chips]'); const root = bar && bar.shadowRoot;"


def chip_texts(firefox):
    return firefox.run(CHIPS + "return root ? [...root.querySelectorAll('.chip')].map((c) => c.textContent.trim()) : [];")


def page_tags(firefox):
    return {p["name"]: p["tags"] for p in json.loads(firefox.run("return JSON.stringify(page.__uploadr.photos());"))}


def notice_text(firefox):
    return firefox.run("const n = document.querySelector('[data-lablr=notice]');"
                       "return n && n.shadowRoot ? n.shadowRoot.textContent : '';")


def test_popup_and_options_need_no_grant(firefox, recorder):
    # The default address: whatever answers there, it is never a permission problem.
    status = firefox.popup_status()
    assert "permission" not in status and status.startswith(("Server reachable", "Server not reachable")), status
    # Another port, saved on the options page: reached at once, nothing else to grant.
    firefox.save_server(recorder.base, minScore=0)
    assert firefox.popup_status() == f"Server reachable at {recorder.base}"
    assert firefox.run("return document.getElementById('model-name').textContent") == "tiny-model"
    # Its health went through: the reply was read, not blocked.
    assert any(e["path"] == "/api/v1/health" and e["status"] == 200 for e in recorder.exchanges)


@pytest.mark.parametrize("site", [pytest.param(EDITR, id="editr"), pytest.param(LIVE, id="live")])
def test_one_chip_click_tags_the_selected_photo_and_publishing_teaches_once(firefox, pages, recorder, tmp_path, site):
    firefox.save_server(recorder.base, minScore=0)
    pages.site = site
    firefox.client.navigate(pages.url)
    size = (560, 420) if site is EDITR else (580, 435)  # a photo new to the server: it learns from it once
    photos = [write_photo(tmp_path, "red", "circle", size), write_photo(tmp_path, "green", "square", size)]
    firefox.element(site.file_input).send_keys("\n".join(str(p) for p in photos))

    chips = firefox.wait("chips beside the tag field", lambda: chip_texts(firefox))
    assert firefox.run(CHIPS + "return bar.getBoundingClientRect().y > 0 && bar.getBoundingClientRect().width > 0;")
    assert "not running" not in notice_text(firefox) and "permission" not in notice_text(firefox)
    ranked = recorder.answer_for("red-circle.jpg")
    assert chips == ranked

    firefox.run(CHIPS + "root.querySelector('.chip').click();")
    firefox.wait("the tag on the page", lambda: page_tags(firefox)["red-circle.jpg"] == [ranked[0]])
    time.sleep(0.5)
    assert page_tags(firefox) == {"red-circle.jpg": [ranked[0]], "green-square.jpg": []}  # the selected photo only
    if site is LIVE:
        assert firefox.run("return JSON.stringify(page.__uploadr.strayKeys());") == "[]"
        assert firefox.run("return page.__uploadr.helpShown();") is False
        assert firefox.run("return document.querySelector(\"[data-set=batch] input[placeholder*='tags']\").value;") == ""

    firefox.element("#action-publish").click()
    firefox.element("#confirm-publish").click()
    firefox.wait("one feedback", recorder.feedbacks)
    time.sleep(4.5)  # longer than any retry
    (feedback,) = recorder.feedbacks()  # exactly one: only one photo has tags
    assert feedback["filename"] == "red-circle.jpg" and feedback["tags"] == ranked[0]
    assert feedback["status"] == 200 and feedback["answer"]["recorded"] is True
    assert {e["client"] for e in recorder.exchanges} == {"extension"}


def chips_for(firefox, name):
    """The chips once they are drawn for the photo `name`."""
    firefox.wait(f"chips for {name}", lambda: f"for {name}:" in (firefox.lablr_says() or [""])[0] and chip_texts(firefox))
    return chip_texts(firefox)


def select_card(firefox, site, title):
    firefox.run("[...document.querySelectorAll(arguments[0])].find((c) => c.textContent.includes(arguments[1])).click();",
                site.card, title)


@pytest.fixture
def fresh_pages(pages):
    yield pages
    pages.variant = None


def test_a_selection_moved_while_a_tag_is_typed_never_tags_the_other_photo(firefox, fresh_pages, recorder, tmp_path):
    firefox.save_server(recorder.base, minScore=0)
    fresh_pages.site, fresh_pages.variant = EDITR, "one-field"  # the panel keeps its tag field across selections
    firefox.client.navigate(fresh_pages.url)
    firefox.element(EDITR.file_input).send_keys("\n".join(str(p) for p in journey_photos(tmp_path, 2)))
    select_card(firefox, EDITR, "photo-00")
    chips_for(firefox, "photo-00.jpg")
    firefox.run(CHIPS + """root.querySelector('.chip').click();
        const other = [...document.querySelectorAll('#editr-grid li')].find((li) => li.textContent.includes('photo-01'));
        setTimeout(() => other.click(), 20);""")
    chips_for(firefox, "photo-01.jpg")
    time.sleep(1)
    assert page_tags(firefox)["photo-01.jpg"] == []


def test_server_stopped_mid_batch_says_so_and_recovers_without_a_reload(firefox, pages, tiny_bundle, tmp_path):
    later = LablrServer(tiny_bundle).start()
    proxy = Recorder(later.port)
    try:
        firefox.save_server(proxy.base, minScore=0)
        pages.site = LIVE
        firefox.client.navigate(pages.url)
        firefox.element(LIVE.file_input).send_keys("\n".join(str(p) for p in journey_photos(tmp_path, 2)))
        firefox.wait("two answers", lambda: len(proxy.suggests()) == 2)
        later.stop()
        firefox.element(LIVE.file_input).send_keys("\n".join(str(p) for p in journey_photos(tmp_path, 4, first=2)))
        firefox.wait("the notice", lambda: "lablr serve" in notice_text(firefox))
        select_card(firefox, LIVE, "photo-04")
        firefox.wait("waiting said", lambda: "Waiting for the Lablr server" in (firefox.lablr_says() or [""])[0])
        later.start()
        firefox.wait("the notice gone", lambda: not notice_text(firefox))
        for i in range(6):
            select_card(firefox, LIVE, f"photo-{i:02d}")
            assert chips_for(firefox, f"photo-{i:02d}.jpg") == proxy.answer_for(f"photo-{i:02d}.jpg")
        assert sorted(e["parts"][0]["filename"] for e in proxy.suggests()) == [f"photo-{i:02d}.jpg" for i in range(6)]
    finally:
        proxy.close()
        later.close()


def test_publishing_ten_photos_sends_one_feedback_per_tagged_photo(firefox, pages, recorder, tmp_path):
    firefox.save_server(recorder.base, minScore=0)
    pages.site = LIVE
    firefox.client.navigate(pages.url)
    photos = [write_photo(tmp_path, "blue", "circle", size=(700 + i, 525), name=f"photo-{i:02d}.jpg") for i in range(10)]
    firefox.element(LIVE.file_input).send_keys("\n".join(str(p) for p in photos))
    firefox.wait("ten answers", lambda: len(recorder.suggests()) == 10)
    clicked = {}
    for name in ("photo-03", "photo-07", "photo-03"):
        select_card(firefox, LIVE, name)
        tag = chips_for(firefox, f"{name}.jpg")[0]
        firefox.run(CHIPS + "root.querySelector('.chip').click();")
        clicked.setdefault(name, []).append(tag)
        firefox.wait(f"{tag} on {name}", lambda: page_tags(firefox)[f"{name}.jpg"] == clicked[name])
    firefox.element("#action-publish").click()
    firefox.element("#confirm-publish").click()
    firefox.wait("two feedbacks", lambda: len(recorder.feedbacks()) >= 2)
    time.sleep(4.5)  # longer than any retry
    sent = {f["filename"]: f for f in recorder.feedbacks()}
    assert len(recorder.feedbacks()) == 2 and set(sent) == {"photo-03.jpg", "photo-07.jpg"}
    for name, tags in clicked.items():
        assert sent[f"{name}.jpg"]["tags"] == ",".join(tags)
        assert sent[f"{name}.jpg"]["suggested"] == ",".join(recorder.answer_for(f"{name}.jpg"))


def bar_text(firefox):
    """What the bar beside the tag field says ('' when there is none)."""
    return firefox.run(CHIPS + "return root ? root.textContent : '';")


def save_in_another_tab(firefox, **fields):
    """What a user does with the upload page open: Lablr's options in a tab of their own, then Save."""
    with firefox.another_tab():
        firefox.save_options(**fields)


def test_options_changed_while_the_upload_page_is_open(firefox, pages, recorder, tmp_path):
    firefox.save_server(recorder.base, minScore=0, count=3)
    pages.site = LIVE
    firefox.client.navigate(pages.url)
    recorder.delay["/api/v1/suggest"] = 1.5
    firefox.element(LIVE.file_input).send_keys("\n".join(str(p) for p in journey_photos(tmp_path, 3)))
    save_in_another_tab(firefox, count=6)  # while the first photos are being asked about
    recorder.delay.clear()
    for i in range(3):
        select_card(firefox, LIVE, f"photo-{i:02d}")
        firefox.wait(f"six chips for photo-{i:02d}", lambda: f"for photo-{i:02d}.jpg:" in bar_text(firefox)  # noqa: B023
                     and len(chip_texts(firefox)) == 6)
    # Another number on the options page: the page asks again, and the chips follow without a reload.
    asked = len(recorder.suggests())
    save_in_another_tab(firefox, count=2)
    firefox.wait("two chips", lambda: len(chip_texts(firefox)) == 2)
    again = recorder.suggests()[asked:]
    assert again and {e["query"]["k"][0] for e in again} == {"2"}
    assert chip_texts(firefox) == recorder.answer_for("photo-02.jpg")[:2]
    # A threshold above every score: no chip, and the bar says why; 0 shows them again.
    top = max(s["score"] for e in again for s in e["answer"]["results"][0]["suggestions"])
    assert top < 1
    save_in_another_tab(firefox, minScore=1)
    firefox.wait("the threshold said", lambda: "No suggested tag scores 1.00" in bar_text(firefox))
    assert chip_texts(firefox) == []
    save_in_another_tab(firefox, minScore=0)
    firefox.wait("two chips again", lambda: len(chip_texts(firefox)) == 2)
    # A server address where nothing listens: the notice names it; saved back, the chips return.
    dead = f"http://127.0.0.1:{free_port()}"
    save_in_another_tab(firefox, server=dead)
    firefox.wait("the notice naming it", lambda: dead in notice_text(firefox))
    save_in_another_tab(firefox, server=recorder.base)
    firefox.wait("the notice gone", lambda: not notice_text(firefox))
    firefox.wait("two chips once more", lambda: len(chip_texts(firefox)) == 2)


def test_another_server_saved_while_the_page_is_open_brings_its_own_model(firefox, pages, recorder, tmp_path):
    """The threshold follows the model of the server now saved: one whose scores are not probabilities has none."""
    running = LablrServer(FIXTURES / "bundle-format-1").start()
    proxy = Recorder(running.port)
    try:
        firefox.save_server(recorder.base, count=4, minScore=0.99)
        pages.site = LIVE
        firefox.client.navigate(pages.url)
        firefox.element(LIVE.file_input).send_keys(str(write_photo(tmp_path, "red", "square", (745, 559))))
        firefox.wait("the threshold said", lambda: "No suggested tag scores 0.99" in bar_text(firefox))
        save_in_another_tab(firefox, server=proxy.base)
        firefox.wait("its answer", proxy.suggests)
        ranked = [s["tag"] for s in proxy.suggests()[0]["answer"]["results"][0]["suggestions"]][:4]
        firefox.wait("its own model's chips", lambda: chip_texts(firefox) == ranked)
    finally:
        proxy.close()
        running.close()


def remove_card(firefox, title):
    """A click on the grid item's remove button (the live copy's)."""
    firefox.run("[...document.querySelectorAll('.editr-grid-item')].find((c) => c.textContent.includes(arguments[0]))"
                ".querySelector('button.remove').click();", title)


def panel_photos(firefox):
    return firefox.run("const p = document.querySelector('[data-lablr=panel]');"
                       "return p ? [...p.shadowRoot.querySelectorAll('section')].map((s) => s.dataset.photo) : [];")


def test_photos_removed_from_the_page_are_not_counted(firefox, pages, recorder, tmp_path):
    """The floating panel lists, and the chips' label counts, only the photos still on the page."""
    firefox.save_server(recorder.base, minScore=0, count=3)
    pages.site = LIVE  # its grid items have a remove button
    firefox.client.navigate(pages.url)
    firefox.element(LIVE.file_input).send_keys("\n".join(str(p) for p in journey_photos(tmp_path, 3)))
    firefox.wait("three answers", lambda: len(recorder.suggests()) == 3)
    remove_card(firefox, "photo-01")
    firefox.run("page.__uploadr.selectNone();")  # no photo selected: the panel lists every photo on the page
    firefox.wait("the two photos left in the panel", lambda: panel_photos(firefox) == ["photo-00.jpg", "photo-02.jpg"])
    remove_card(firefox, "photo-02")  # the page selects the one left
    firefox.wait("its chips", lambda: len(chip_texts(firefox)) == 3)
    assert firefox.run(CHIPS + "return root.querySelector('.for');") is None  # one photo on the page: no name needed
    assert panel_photos(firefox) == []


def kept_said(firefox):
    """What Lablr's popup says of published photos waiting for the server ('' when none wait)."""
    firefox.popup_status()
    return firefox.run("const kept = document.getElementById('kept'); return kept.hidden ? '' : kept.textContent;")


def switch_teaching(firefox, on):
    """What a user does: the box on Lablr's options page, then a click on Save."""
    firefox.client.navigate(f"{firefox.base}/options.html")
    firefox.wait("the options shown", lambda: firefox.run("return document.getElementById('server').value"))
    firefox.run("document.getElementById('teach').checked = arguments[0];", on)
    firefox.element("button[type=submit]").click()
    firefox.wait("Saved.", lambda: firefox.run("return document.getElementById('message').textContent") == "Saved.")


def test_photos_published_while_the_server_is_down_teach_it_once_it_answers(firefox, pages, tiny_bundle, tmp_path):
    later = LablrServer(tiny_bundle).start()
    proxy = Recorder(later.port)

    def publish_while_down(photos):
        """Each photo gets a chip's tag, then the server stops and the user publishes."""
        firefox.client.navigate(pages.url)
        firefox.element(LIVE.file_input).send_keys("\n".join(str(p) for p in photos))
        for photo in photos:
            select_card(firefox, LIVE, photo.stem)
            if len(photos) > 1:  # the chips say whose they are
                chips_for(firefox, photo.name)
            firefox.wait("chips", lambda: chip_texts(firefox))
            firefox.run(CHIPS + "root.querySelector('.chip').click();")
            firefox.wait(f"a tag on {photo.name}", lambda: page_tags(firefox)[photo.name])  # noqa: B023
        later.stop()
        firefox.element("#action-publish").click()
        firefox.element("#confirm-publish").click()

    try:
        firefox.save_server(proxy.base, minScore=0)
        pages.site = LIVE
        publish_while_down(journey_photos(tmp_path, 1))
        firefox.wait("one kept", lambda: kept_said(firefox) == "1 published photo waits for the Lablr server.")
        switch_teaching(firefox, False)  # forgets what was kept
        assert kept_said(firefox) == ""
        switch_teaching(firefox, True)

        later.start()
        publish_while_down(journey_photos(tmp_path, 2, first=1))
        firefox.wait("two kept", lambda: kept_said(firefox) == "2 published photos wait for the Lablr server.")
        assert proxy.feedbacks() == []
        later.start()  # the same port
        firefox.client.navigate(pages.url)  # the next upload page finds the server answering
        firefox.wait("two feedbacks", lambda: len(proxy.feedbacks()) >= 2)
        time.sleep(1.5)
        assert [f["filename"] for f in proxy.feedbacks()] == ["photo-01.jpg", "photo-02.jpg"]  # once each, in order
        assert all(f["status"] == 200 and f["answer"]["recorded"] is True for f in proxy.feedbacks())
        assert learned_photos(later) == 2 and kept_said(firefox) == ""
    finally:
        proxy.close()
        later.close()


def test_a_photo_removed_then_added_again_gets_its_chips(firefox, pages, recorder, tmp_path):
    firefox.save_server(recorder.base, minScore=0)
    pages.site = LIVE  # its grid items have a remove button
    firefox.client.navigate(pages.url)
    photos = [write_photo(tmp_path, "green", "circle", size=(760 + i, 570), name=f"photo-{i:02d}.jpg") for i in range(3)]
    firefox.element(LIVE.file_input).send_keys("\n".join(str(p) for p in photos))
    firefox.wait("three answers", lambda: len(recorder.suggests()) == 3)
    firefox.run("[...document.querySelectorAll('.editr-grid-item')].find((c) => c.textContent.includes('photo-01'))"
                ".querySelector('button.remove').click();")
    firefox.element(LIVE.file_input).send_keys(str(photos[1]))
    firefox.wait("a fourth answer", lambda: len(recorder.suggests()) == 4)
    select_card(firefox, LIVE, "photo-01")
    assert chips_for(firefox, "photo-01.jpg") == recorder.answer_for("photo-01.jpg")
    firefox.run(CHIPS + "root.querySelector('.chip').click();")
    firefox.wait("the tag on the page", lambda: page_tags(firefox)["photo-01.jpg"])


# ------------------------------------------------------------------------------- the server's own page


def test_the_web_page_says_plainly_that_a_server_that_stopped_cannot_be_reached(firefox, tiny_bundle, tmp_path):
    """Firefox words a fetch that got no answer its own way ("NetworkError when attempting to fetch
    resource."), not as Chromium does; the page says the same thing in both."""
    photo = write_photo(tmp_path, "red", "circle")
    with contextlib.ExitStack() as serving:
        base, _ = serving.enter_context(running_server(tiny_bundle))
        firefox.client.navigate(base + "/")
        firefox.wait("the model named", lambda: firefox.run("return document.getElementById('model').textContent")
                     .startswith("Model "))
        serving.close()  # the user stopped `lablr serve`, the page still open
        firefox.element("#photo").send_keys(str(photo))
        message = firefox.wait("an error", lambda: firefox.run(
            "const e = document.getElementById('error'); return e.hidden ? '' : e.textContent;"))
    assert message == "The Lablr server cannot be reached."
    assert firefox.run("return document.getElementById('results').hidden;") is True
