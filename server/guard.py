"""What every request passes before any route sees it: pure ASGI middleware.

Every web page the user opens can reach 127.0.0.1, so:

- HostGuard answers 400 unless the Host header names this server (the loopback names, the
  address it is bound to, or a name the user allowed). A page on an attacker's domain that
  re-resolves to 127.0.0.1 (DNS rebinding) still sends its own domain as Host.
- HostGuard also answers 403 to a request from another site: an Origin that is neither this
  server's own (http:// and an allowed Host, on the port the request came to) nor a browser
  extension's (one whose id the user pinned, if any: `lablr serve --extension-id`), or
  `Sec-Fetch-Site: cross-site`. Requests without an Origin (curl, scripts)
  and extension requests pass. No CORS header is ever sent.
- A request that changes what the server has learned (POST /api/v1/feedback, anything but a
  read under /api/v1/personal) and carries an Origin must also carry the header
  X-Lablr-Client (core/defaults.py), or it gets 403 `no_client_header` and nothing is recorded.
  A page or extension that may not reach the server can only send CORS-simple requests, which
  cannot have that header (the preflight it would need is never granted); the web page, the
  extension (with its host permission) and anything without an Origin can.
- BodyDeadline answers 408 when a request body has not fully arrived within its time.

Both refuse with the API's JSON error and `Connection: close`, before the body is read.
"""

import json
import time
from urllib.parse import urlsplit

import anyio

from lablr.core.defaults import CLIENT_HEADER
from lablr.core.errors import LablrError

LOOPBACK_NAMES = ("127.0.0.1", "localhost", "::1")
EXTENSION_SCHEMES = ("chrome-extension", "moz-extension")
HOST_CHARACTERS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789.-_:")
STATE_CHANGING = ("/api/v1/feedback", "/api/v1/personal")  # and every path below them
READS = ("GET", "HEAD")


def host_name(value: str) -> str | None:
    """The name in a Host header value (lower case, no port, IPv6 without brackets); None if malformed."""
    value = value.strip().lower()
    if value.startswith("["):
        name, bracket, rest = value[1:].partition("]")
        if not bracket or (rest and not _is_port_suffix(rest)):
            return None
        return name or None
    name, colon, port = value.partition(":")
    if colon and not port.isdigit():
        return None
    return name or None


def host_port(value: str) -> int:
    """The port in a Host header value, 80 when none is given."""
    value = value.strip()
    tail = value.rsplit("]", 1)[-1] if value.startswith("[") else value
    _, colon, port = tail.partition(":")
    return int(port) if colon and port.isdigit() else 80


def _is_port_suffix(text: str) -> bool:
    return text.startswith(":") and text[1:].isdigit()


def allowed_names(bound_host: str | None = None, extra=()) -> frozenset[str]:
    """The Host names a server accepts: loopback, the address it is bound to, and the user's own."""
    names = set(LOOPBACK_NAMES)
    for value in [bound_host, *extra]:
        if value:
            names.add(_allowed_name(value))
    return frozenset(names)


def _allowed_name(value: str) -> str:
    if value.count(":") > 1 and not value.startswith("["):
        value = f"[{value}]"  # a bare IPv6 address, as --host takes it
    name = host_name(value)
    if not name or not set(name) <= HOST_CHARACTERS:
        raise LablrError(f"{value!r} is not a host name (such as lablr.local or 192.168.1.5).", code="bad_parameter")
    return name


async def send_error(send, status: int, code: str, message: str):
    body = json.dumps({"error": {"code": code, "message": message}}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body})


class HostGuard:
    """Refuses other Hosts (400) and cross-site requests (403) for every route of the app it wraps."""

    def __init__(self, app, allowed_hosts=LOOPBACK_NAMES, extension_ids=()):
        self.app = app
        self.allowed = frozenset(host_name(h) or h for h in allowed_hosts)
        self.extension_ids = frozenset(i.strip().lower() for i in extension_ids)  # empty: any extension

    async def __call__(self, scope, receive, send):
        if scope["type"] in ("http", "websocket"):
            refusal = self.refusal(scope)
            if refusal:
                if scope["type"] == "websocket":
                    await send({"type": "websocket.close", "code": 1008})
                else:
                    await send_error(send, *refusal)
                return
        await self.app(scope, receive, send)

    def refusal(self, scope) -> tuple[int, str, str] | None:
        headers = _headers(scope)
        hosts = headers.get("host", [])
        if len(hosts) != 1 or host_name(hosts[0]) not in self.allowed:
            shown = hosts[0][:100] if len(hosts) == 1 else f"{len(hosts)} Host headers"
            return (400, "bad_host", f"Lablr answers only to {', '.join(sorted(self.allowed))} (this request was "
                    f"for {shown!r}). To reach it by another name, start it with --allowed-host NAME.")
        origins = headers.get("origin", [])
        if origins and (len(origins) > 1 or not self._origin_allowed(origins[0], hosts[0])):
            return (403, "cross_site", f"Lablr refuses requests from other sites (Origin {origins[0][:100]!r}); "
                    "use its own page, the browser extension, or a client that sends no Origin.")
        if headers.get("sec-fetch-site") == ["cross-site"] and not self._is_our_extension(origins):
            return (403, "cross_site", "Lablr refuses requests from other sites (Sec-Fetch-Site: cross-site).")
        if origins and _changes_state(scope) and not any(v.strip() for v in headers.get(CLIENT_HEADER.lower(), [])):
            return (403, "no_client_header", f"A browser request that changes what Lablr learned must carry the "
                    f"{CLIENT_HEADER} header, as Lablr's page and extension do; nothing was recorded.")
        return None

    def _is_our_extension(self, origins) -> bool:
        """An extension's Origin, and, when the user pinned extension ids, one of those."""
        return _is_extension(origins) and (not self.extension_ids or
                                           origins[0].partition("://")[2].strip("/").lower() in self.extension_ids)

    def _origin_allowed(self, origin: str, host: str) -> bool:
        if self._is_our_extension([origin]):
            return True
        try:
            parts = urlsplit(origin)
            port = parts.port or 80
        except ValueError:
            return False
        return (parts.scheme == "http" and parts.hostname in self.allowed and port == host_port(host)
                and origin.rstrip("/") == f"{parts.scheme}://{parts.netloc}")


def _changes_state(scope) -> bool:
    path = scope.get("path", "").rstrip("/")
    return scope.get("method", "GET") not in READS and any(path == p or path.startswith(p + "/")
                                                              for p in STATE_CHANGING)


def _headers(scope) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for name, value in scope.get("headers", []):
        found.setdefault(name.decode("latin-1").lower(), []).append(value.decode("latin-1"))
    return found


def _is_extension(origins) -> bool:
    if len(origins) != 1:
        return False
    scheme, sep, rest = origins[0].partition("://")
    return scheme in EXTENSION_SCHEMES and bool(sep) and bool(rest.strip("/"))


class WatchedSend:
    """An ASGI send that notes when the response has begun: from then on an error can no longer be answered."""

    def __init__(self, send):
        self.send, self.started = send, False

    async def __call__(self, message):
        self.started = self.started or message["type"] == "http.response.start"
        await self.send(message)


class BodyTimeout(Exception):
    """The request body did not arrive in time (raised from receive(), answered by BodyDeadline)."""


class BodyDeadline:
    """Gives each request `seconds` from its start to deliver its whole body, then answers 408."""

    def __init__(self, app, seconds: float):
        self.app, self.seconds = app, seconds

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        deadline = time.monotonic() + self.seconds
        body_done = False

        async def timed_receive():
            nonlocal body_done
            if body_done:  # later receives wait for a disconnect: no deadline for those
                return await receive()
            with anyio.move_on_after(max(deadline - time.monotonic(), 0)) as waiting:
                message = await receive()
            if waiting.cancelled_caught:
                raise BodyTimeout()
            body_done = message["type"] != "http.request" or not message.get("more_body", False)
            return message

        watched_send = WatchedSend(send)
        try:
            await self.app(scope, timed_receive, watched_send)
        except BodyTimeout:
            if not watched_send.started:
                await send_error(send, 408, "body_timeout",
                                 f"The request body did not arrive within {self.seconds:g} seconds.")
