"""Only this machine's names, and no other website, reach the server: on every route, new ones too.

In process (the app under Starlette's TestClient) for the full table of Hosts and Origins, and
against a real `lablr serve` for what only a real server shows: raw headers, --allowed-host, the
connection closed after a refusal.
"""

import base64
import json
import socket
import subprocess
import sys

import httpx
import pytest
from conftest import CHROMIUM, dead_proxy, photo
from lablr_server import running_server
from starlette.responses import JSONResponse
from starlette.testclient import TestClient
from test_server import assert_error

PORT = 8777
OWN = f"http://127.0.0.1:{PORT}"


@pytest.fixture(scope="module")
def app(tiny_bundle):
    from lablr.server.app import create_app

    app = create_app(tiny_bundle)

    async def added_later(request):  # as another helper's endpoint would be, after the app exists
        return JSONResponse({"changed": True})

    app.add_route("/api/v1/added-later", added_later, methods=["POST"])
    return app


@pytest.fixture(scope="module")
def client(app, tmp_path_factory):
    with pytest.MonkeyPatch.context() as patch:  # what this module's feedback teaches stays in its own layer
        patch.setenv("XDG_DATA_HOME", str(tmp_path_factory.mktemp("guard-data")))
        with TestClient(app, base_url=OWN, raise_server_exceptions=False) as client:
            yield client


def call(client, method, path, headers):
    if method == "POST" and path in ("/api/v1/suggest", "/api/v1/plot"):
        return client.post(path, files={"image": ("a.png", photo(), "image/png")}, headers=headers)
    return client.request(method, path, headers=headers)


ROUTES = [("GET", "/"), ("GET", "/api/v1/health"), ("GET", "/api/v1/tags"), ("GET", "/api/v1/plugins"),
          ("GET", "/openapi.json"), ("GET", "/static/app.js"), ("POST", "/api/v1/suggest"),
          ("POST", "/api/v1/plot"), ("POST", "/api/v1/added-later"), ("GET", "/no/such/path")]
EXPECTED = {"/no/such/path": 404}


# -- Host ---------------------------------------------------------------------------------------------

GOOD_HOSTS = ["127.0.0.1", f"127.0.0.1:{PORT}", "localhost", f"localhost:{PORT}", "LocalHost:8777", "[::1]",
              f"[::1]:{PORT}"]
BAD_HOSTS = ["evil.example", f"evil.example:{PORT}", f"127.0.0.1.nip.io:{PORT}", "localhost.evil.example",
             "localhost.", "127.0.0.2", "0.0.0.0", "127.0.0.1:http", "[::1", "[::1]x", "", "user@127.0.0.1",
             "127.0.0.1/x"]


@pytest.mark.parametrize("host", GOOD_HOSTS)
def test_loopback_hosts_are_answered_with_or_without_the_port(client, host):
    answer = client.get("/api/v1/health", headers={"host": host})
    assert answer.status_code == 200, answer.text


@pytest.mark.parametrize("host", BAD_HOSTS)
def test_other_hosts_are_refused_with_400(client, host):
    answer = client.get("/api/v1/tags", headers={"host": host})
    assert_error(answer, 400, "bad_host")
    assert "--allowed-host" in answer.json()["error"]["message"]
    assert answer.headers["connection"] == "close"


@pytest.mark.parametrize("method, path", ROUTES)
def test_every_route_refuses_another_host_and_answers_its_own(client, method, path):
    assert_error(call(client, method, path, {"host": "rebound.evil.example"}), 400, "bad_host")
    assert call(client, method, path, {}).status_code == EXPECTED.get(path, 200)


# -- Origin and Sec-Fetch-Site ----------------------------------------------------------------------

ACCEPTED = {
    "no Origin (curl, scripts)": {},
    "the page itself": {"origin": OWN, "sec-fetch-site": "same-origin"},
    "the page at localhost": {"origin": f"http://localhost:{PORT}", "host": f"localhost:{PORT}"},
    "the page at [::1]": {"origin": f"http://[::1]:{PORT}", "host": f"[::1]:{PORT}"},
    "the Chrome extension": {"origin": "chrome-extension://abcdefghijklmnopabcdefghijklmnop",
                             "sec-fetch-site": "none"},
    "the extension, whatever Sec-Fetch-Site says": {"origin": "chrome-extension://abcdefghijklmnop",
                                                    "sec-fetch-site": "cross-site"},
    "the Firefox extension": {"origin": "moz-extension://0d9b2b1c-3a4e-4f7a-9d55-2c7a8c1f0e11"},
    "a tool on this machine": {"sec-fetch-site": "none"},
}
REFUSED = {
    "another website": {"origin": "https://evil.example"},
    "another website over http": {"origin": "http://evil.example"},
    "a sandboxed frame or file": {"origin": "null"},
    "another port on localhost": {"origin": "http://localhost:3000", "host": f"localhost:{PORT}"},
    "another port on 127.0.0.1": {"origin": "http://127.0.0.1:9999"},
    "https on the same host": {"origin": f"https://127.0.0.1:{PORT}"},
    "a look-alike name": {"origin": f"http://127.0.0.1.evil.example:{PORT}"},
    "an extension scheme with no id": {"origin": "chrome-extension://"},
    "an Origin with a path": {"origin": f"{OWN}/evil"},
    "Sec-Fetch-Site cross-site without Origin": {"sec-fetch-site": "cross-site"},
    "a cross-site frame": {"sec-fetch-site": "cross-site", "sec-fetch-mode": "navigate", "sec-fetch-dest": "iframe"},
}


@pytest.mark.parametrize("kind", ACCEPTED)
@pytest.mark.parametrize("method, path", [("POST", "/api/v1/suggest"), ("GET", "/api/v1/tags"),
                                          ("POST", "/api/v1/added-later")])
def test_own_page_extensions_and_tools_are_answered(client, kind, method, path):
    answer = call(client, method, path, ACCEPTED[kind])
    assert answer.status_code == 200, answer.text
    assert "access-control-allow-origin" not in answer.headers


@pytest.mark.parametrize("kind", REFUSED)
@pytest.mark.parametrize("method, path", ROUTES)
def test_other_sites_are_refused_with_403_on_every_route(client, kind, method, path):
    answer = call(client, method, path, REFUSED[kind])
    assert_error(answer, 403, "cross_site")
    assert "access-control-allow-origin" not in answer.headers


def test_even_a_link_from_another_site_is_refused(client):
    navigation = {"sec-fetch-site": "cross-site", "sec-fetch-mode": "navigate", "sec-fetch-dest": "document"}
    assert_error(client.get("/", headers=navigation), 403, "cross_site")
    assert_error(client.get("/api/v1/tags", headers=navigation), 403, "cross_site")


def test_a_cors_preflight_from_another_site_gets_no_cors_headers(client):
    answer = client.options("/api/v1/suggest", headers={"origin": "https://evil.example",
                                                        "access-control-request-method": "POST"})
    assert_error(answer, 403, "cross_site")
    assert not [name for name in answer.headers if name.startswith("access-control-")]


# -- against the real server ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def real(tiny_bundle):
    with running_server(tiny_bundle, "--allowed-host", "Lablr.Test", "--allowed-host", "photos.local:80") as (base,
                                                                                                             log):
        yield base, log


def raw_exchange(base, request: bytes) -> bytes:
    """Send raw bytes, read until the server closes the connection (it must, after a refusal)."""
    port = int(base.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        conn.sendall(request)
        answer = b""
        for _ in range(1000):
            chunk = conn.recv(65536)
            if not chunk:
                return answer
            answer += chunk
    raise AssertionError("the server kept the connection open")


def test_real_server_refuses_a_rebound_host_and_closes(real):
    base, _ = real
    answer = raw_exchange(base, b"GET /api/v1/tags HTTP/1.1\r\nHost: attacker.example\r\n\r\n")
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400") and b"connection: close" in head.lower()
    assert b'"bad_host"' in body and b"tags" not in body


def test_real_server_refuses_two_host_headers(real):
    base, _ = real
    port = base.rsplit(":", 1)[1].encode()
    answer = raw_exchange(base, b"GET /api/v1/tags HTTP/1.1\r\nHost: 127.0.0.1:" + port +
                          b"\r\nHost: attacker.example\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 400")


def test_real_server_refuses_a_cross_site_form_post_before_reading_it(real):
    base, _ = real
    port = base.rsplit(":", 1)[1].encode()
    head = (b"POST /api/v1/suggest HTTP/1.1\r\nHost: 127.0.0.1:" + port + b"\r\nOrigin: https://evil.example\r\n"
            b"Sec-Fetch-Site: cross-site\r\nContent-Type: multipart/form-data; boundary=x\r\n"
            b"Content-Length: 20000000\r\n\r\n")
    answer = raw_exchange(base, head + b"--x\r\n")  # the 20 MB body never comes: the answer must not wait for it
    assert answer.startswith(b"HTTP/1.1 403") and b'"cross_site"' in answer


def test_real_server_answers_names_given_with_allowed_host(real):
    base, _ = real
    port = base.rsplit(":", 1)[1]
    for host in ("lablr.test", f"lablr.test:{port}", "photos.local"):
        answer = httpx.get(base + "/api/v1/health", headers={"host": host})
        assert answer.status_code == 200, (host, answer.text)
    own = httpx.post(base + "/api/v1/suggest", files={"image": ("a.png", photo(), "image/png")},
                     headers={"host": f"lablr.test:{port}", "origin": f"http://lablr.test:{port}"})
    assert own.status_code == 200, own.text
    assert_error(httpx.get(base + "/api/v1/health", headers={"host": "other.test"}), 400, "bad_host")


def test_real_server_extension_and_page_requests_work(real):
    base, _ = real
    files = {"image": ("a.png", photo(), "image/png")}
    for headers in ({"origin": base, "sec-fetch-site": "same-origin"},
                    {"origin": "chrome-extension://abcdefghijklmnopabcdefghijklmnop", "sec-fetch-site": "none"}):
        answer = httpx.post(base + "/api/v1/suggest", files=files, headers=headers)
        assert answer.status_code == 200 and answer.json()["results"][0]["suggestions"]
        assert "access-control-allow-origin" not in answer.headers


def test_a_malformed_allowed_host_is_refused_in_one_line(tiny_bundle):
    done = subprocess.run([sys.executable, "-m", "lablr.core.cli", "serve", "--model", str(tiny_bundle),
                           "--allowed-host", "evil.example/path"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 1
    assert "is not a host name" in done.stderr and "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


# -- what changes the server: feedback and the personal layer ----------------------------------------

BROWSER_ORIGINS = {kind: headers for kind, headers in ACCEPTED.items() if "origin" in headers}


SEEDS = iter(range(1, 10_000))


def feedback(client, headers, tags="red,spam"):
    """Feedback on a photo not sent before (the layer counts each photo once)."""
    return client.post("/api/v1/feedback", files={"image": ("a.png", photo(seed=next(SEEDS)), "image/png")},
                       data={"tags": tags}, headers=headers)


def learned_photos(client) -> int:
    return client.get("/api/v1/personal").json()["photos"]


@pytest.mark.parametrize("kind", BROWSER_ORIGINS)
def test_a_browser_request_that_teaches_needs_the_client_header(client, kind):
    before = learned_photos(client)
    for path in ("/api/v1/feedback", "/api/v1/feedback/", "/api/v1/personal", "/api/v1/personal/anything"):
        for method in ("POST", "PUT", "DELETE", "PATCH"):
            answer = client.request(method, path, headers=BROWSER_ORIGINS[kind])
            assert_error(answer, 403, "no_client_header")
    assert_error(feedback(client, BROWSER_ORIGINS[kind]), 403, "no_client_header")
    assert_error(feedback(client, {**BROWSER_ORIGINS[kind], "x-lablr-client": " "}), 403, "no_client_header")
    assert learned_photos(client) == before
    assert feedback(client, {**BROWSER_ORIGINS[kind], "x-lablr-client": "web"}).status_code == 200
    assert learned_photos(client) == before + 1


def test_tools_without_an_origin_still_teach_without_the_header(client):
    before = learned_photos(client)
    assert feedback(client, {}).status_code == 200
    assert learned_photos(client) == before + 1


@pytest.mark.parametrize("kind", BROWSER_ORIGINS)
def test_reading_the_personal_layer_needs_no_header(client, kind):
    answer = client.get("/api/v1/personal", headers=BROWSER_ORIGINS[kind])
    assert answer.status_code == 200 and "photos" in answer.json()


# -- in the real browser: an extension with no permission for the server -----------------------------

ATTACK = """
async function post(base, options) {
  const form = new FormData();
  const bytes = Uint8Array.from(atob(PHOTO), (c) => c.charCodeAt(0));
  form.append("image", new Blob([bytes], { type: "image/png" }), "a.png");
  form.append("tags", "zero permission spam");
  try {
    const answer = await fetch(base + "/api/v1/feedback", { method: "POST", body: form, ...options });
    return answer.type === "opaque" ? "opaque" : answer.status;
  } catch (error) {
    return "blocked";
  }
}
"""


def extension(directory, permissions):
    """An unpacked MV3 extension whose service worker can POST a photo to the server as a CORS-simple
    multipart form (no-cors, and cors), or with the client header; host permissions as given."""
    directory.mkdir()
    manifest = {"manifest_version": 3, "name": "test", "version": "1", "background": {"service_worker": "bg.js"},
                "host_permissions": permissions}
    (directory / "manifest.json").write_text(json.dumps(manifest))
    (directory / "bg.js").write_text(poster(seed=0))
    return directory


def poster(seed) -> str:
    """The script: post(base, fetch options) sends one photo with a tag as a multipart form."""
    return f"const PHOTO = {json.dumps(base64.b64encode(photo(seed=seed)).decode())};\n{ATTACK}"


def service_worker(driver, extension_dir, profile):
    context = driver.chromium.launch_persistent_context(
        str(profile), executable_path=CHROMIUM, headless=True,
        args=["--no-sandbox", f"--disable-extensions-except={extension_dir}", f"--load-extension={extension_dir}",
              "--disable-gpu", "--disable-background-networking", "--no-first-run"], proxy=dead_proxy())
    worker = context.service_workers[0] if context.service_workers else context.wait_for_event("serviceworker")
    return context, worker


def test_an_extension_without_permission_cannot_teach_while_the_page_and_a_permitted_one_can(
        playwright_driver, tiny_bundle, tmp_path):
    home = tmp_path / "data"
    with running_server(tiny_bundle, env={"XDG_DATA_HOME": str(home)}) as (base, _):
        def photos():
            return httpx.get(base + "/api/v1/personal").json()["photos"]

        context, worker = service_worker(playwright_driver, extension(tmp_path / "zero", []), tmp_path / "p1")
        try:
            simple = [worker.evaluate("([base, options]) => post(base, options)", [base, options])
                      for options in ({"mode": "no-cors"}, {}, {"headers": {"X-Lablr-Client": "extension"}})]
        finally:
            context.close()
        assert simple == ["opaque", "blocked", "blocked"]  # sent, sent but unreadable, stopped by its preflight
        assert photos() == 0

        context, worker = service_worker(playwright_driver, extension(tmp_path / "permitted", ["http://127.0.0.1/*"]),
                                         tmp_path / "p2")
        try:
            without = worker.evaluate("(base) => post(base, {})", base)
            sent = worker.evaluate("(base) => post(base, {headers: {'X-Lablr-Client': 'extension'}})", base)
            page = context.new_page()
            page.goto(base + "/")
            page.add_script_tag(content=poster(seed=1))
            from_page = page.evaluate("() => post('', {headers: {'X-Lablr-Client': 'web'}})")
        finally:
            context.close()
        assert (without, sent, from_page) == (403, 200, 200)
        assert photos() == 2


# -- pinning the extension --------------------------------------------------------------------------

PINNED = "abcdefghijklmnopabcdefghijklmnop"


def test_a_pinned_extension_id_is_the_only_extension_answered(tiny_bundle):
    with running_server(tiny_bundle, "--extension-id", PINNED.upper(), "--no-personal") as (base, _):
        def tags(origin):
            return httpx.get(base + "/api/v1/tags", headers={"origin": origin, "sec-fetch-site": "cross-site"})

        assert tags(f"chrome-extension://{PINNED}").status_code == 200
        assert_error(tags("chrome-extension://ponmlkjihgfedcbaponmlkjihgfedcba"), 403, "cross_site")
        assert_error(tags("moz-extension://0d9b2b1c-3a4e-4f7a-9d55-2c7a8c1f0e11"), 403, "cross_site")
        assert httpx.get(base + "/api/v1/tags").status_code == 200  # tools without an Origin, as before
