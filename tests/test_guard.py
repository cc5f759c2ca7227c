"""Only this machine's names, and no other website, reach the server: on every route, new ones too.

In process (the app under Starlette's TestClient) for the full table of Hosts and Origins, and
against a real `lablr serve` for what only a real server shows: raw headers, --allowed-host, the
connection closed after a refusal.
"""

import socket
import subprocess
import sys

import httpx
import pytest
from lablr_server import running_server
from starlette.responses import JSONResponse
from starlette.testclient import TestClient
from test_server import assert_error, photo

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
def client(app):
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
