"""A fake Flickr for tests: Flickr's REST API and its image servers, on 127.0.0.1.

A Starlette app under uvicorn, in a thread of the test process, on a free port. It answers the
way api.flickr.com does (format=rest: `<rsp stat="ok">` XML; format=json too) for
flickr.photos.search (tags, licence filter, relevance order, paging; pages past the last repeat
the last one, as Flickr's do), flickr.people.getPublicPhotos (a user's photos, newest first),
flickr.urls.lookupUser, flickr.people.findByUsername and flickr.tags.getHotList; checks the API
key and the OAuth HMAC-SHA1 signature flickrapi sends in its Authorization header (error 100, 96);
and serves real JPEGs at the URLs its answers give, laid out like live.staticflickr.com
(/{server}/{id}_{secret}_{suffix}.jpg), at each size's pixels: every size up to the original's,
less those a photo `lacks` (`url_n`, `width_n`, `height_n`... as the `extras` ask). Deleted
photos redirect to Flickr's "photo unavailable" image.

Faults are scripted per call: `fail_next(method, "503", "429", "slow", "105", "cut:40")` for the API
(cut:N sends the first N bytes of the real answer),
`fail_image(photo_id, ...)` for images. It counts what it served, so tests can check that
nothing was asked twice.
"""

import asyncio
import base64
import hashlib
import hmac
import io
import json
import re
import socket
import threading
import time
import zlib
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, quote, unquote
from xml.sax.saxutils import escape, quoteattr

import uvicorn
from PIL import Image
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import (
    JSONResponse,
    RedirectResponse,
    Response,
    StreamingResponse,
)
from starlette.routing import Route

from lablr.plugins.flickr.defaults import (
    SIZES,  # Flickr's size names, URL suffixes and pixels
)

API_KEY, API_SECRET = "0123456789abcdef0123456789abcdef", "fedcba9876543210"
COLOURS = ("red", "blue", "green")
SHAPES = ("circle", "square", "triangle")
RATE_LIMITED = "<html><body><h1>429 Too Many Requests</h1>\nYou have sent too many requests in a given amount of time.\n</body></html>\n"
SERVER_ERROR = "<html><body><h1>{code} Server Error</h1>\nThe server encountered a temporary error.\n</body></html>\n"
ERRORS = {1: "User not found", 2: "Unknown user",
          100: "Invalid API Key (Key has invalid format)", 96: "Invalid signature",
          105: "Service currently unavailable", 112: "Method \"{method}\" not found"}


@dataclass
class FakePhoto:
    id: str
    owner: str
    ownername: str
    secret: str
    server: str
    title: str
    license: int
    tags: list  # Flickr's normalised tags, as its `tags` extra gives them
    colour: str
    shape: str
    seed: int
    width: int = 1024  # the original's pixels: Flickr offers every size up to these
    height: int = 768
    lacks: frozenset = frozenset()  # size extras this photo has not (e.g. an old upload without url_n)
    path_alias: str = ""  # the owner's URL name: flickr.com/photos/{path_alias}/


def make_photos(per_kind=6, owners=9, extra_tags=True) -> list[FakePhoto]:
    """colour x shape x per_kind photos by `owners` photographers, tagged like Flickr users tag."""
    photos = []
    for i, (colour, shape, n) in enumerate((c, s, n) for c in COLOURS for s in SHAPES for n in range(per_kind)):
        owner = f"{10000000 + (i % owners) * 1111}@N0{i % owners % 8}"
        tags = [colour, shape]
        if extra_tags:
            tags += [("nikon", "canon", "iphone")[i % owners % 3], str(2015 + i % owners), f"{colour}{shape}"]
            if i % 4 == 0:
                tags.append("uploaded:by=flickrmobile")
        photo_id = str(53000000000 + i * 7919)
        photos.append(FakePhoto(
            id=photo_id, owner=owner, ownername=f"Photographer {i % owners}",
            secret=hashlib.sha1(photo_id.encode()).hexdigest()[:10], server="65535",
            title=f"A {colour} {shape} & friends #{n}", license=i % 11, tags=tags, colour=colour, shape=shape,
            seed=zlib.crc32(photo_id.encode()), width=(1024, 768)[i % 2], height=(768, 1024)[i % 2],
            path_alias=f"photographer{i % owners}"))
    return photos


def size_pixels(photo: FakePhoto, extra: str):
    """(width, height) of a photo at one of Flickr's sizes, or None when Flickr does not offer it."""
    _, longest, square = SIZES[extra]
    if extra in photo.lacks or longest > max(photo.width, photo.height) and not square:
        return None
    if square:
        return longest, longest
    scale = longest / max(photo.width, photo.height)
    return round(photo.width * scale), round(photo.height * scale)


def draw(photo: FakePhoto, width: int, height: int) -> Image.Image:
    """The photo's shape on white, drawn at the size's short side and centred."""
    from conftest import (
        draw_shape,  # tests/conftest.py: the drawn shapes the tiny models learn
    )

    side = min(width, height)
    image = Image.new("RGB", (width, height), "white")
    image.paste(draw_shape(photo.colour, photo.shape, size=side, seed=photo.seed),
                ((width - side) // 2, (height - side) // 2))
    return image


def jpeg_bytes(photo: FakePhoto, side: int = 96, height: int | None = None) -> bytes:
    buffer = io.BytesIO()
    draw(photo, side, height or side).save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def unavailable_png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (500, 374), (240, 240, 240)).save(buffer, "PNG")
    return buffer.getvalue()


@dataclass
class FakeFlickr:
    photos: list = field(default_factory=make_photos)
    api_key: str = API_KEY
    secret: str = API_SECRET
    hot: tuple = ("green", "circle", "red", "square")
    image_delay: float = 0.0  # seconds between the chunks of an image: slow downloads
    api_delay: float = 0.0  # seconds before every API answer
    slow_seconds: float = 3.0  # how long a "slow" fault waits before answering
    broken: set = field(default_factory=set)  # photo ids whose JPEG is cut short (but sent whole)
    missing: set = field(default_factory=set)  # photo ids deleted from Flickr

    def __post_init__(self):
        self.api_faults = defaultdict(list)
        self.image_faults = defaultdict(list)
        self.calls = Counter()  # API method -> calls answered (faults included)
        self.searches = []  # (tags, page) of every search answered with photos
        self.image_requests = Counter()  # photo id -> requests
        self.size_requests = Counter()  # size extra (url_n, url_q...) -> image requests
        self.images_served = Counter()  # photo id -> whole bodies sent
        self._lock = threading.Lock()
        self._by_id = {p.id: p for p in self.photos}
        self._suffixes = {suffix: extra for extra, (suffix, _, _) in SIZES.items()}
        self._jpegs = {}
        self.app = Starlette(routes=[
            Route("/services/rest/", self.rest, methods=["GET", "POST"]),
            Route("/images/en-us/photo_unavailable.png", self.unavailable),
            Route("/{server}/{name}", self.image),
        ])

    # -- scripting ----------------------------------------------------------------------------

    def fail_next(self, method, *faults):
        self.api_faults[method].extend(faults)

    def fail_image(self, photo_id, *faults):
        self.image_faults[photo_id].extend(faults)

    def photos_tagged(self, tag, licenses=None):
        found = [p for p in self.photos if tag in p.tags and (licenses is None or p.license in licenses)]
        return sorted(found, key=lambda p: hashlib.sha1(f"{tag}:{p.id}".encode()).digest())  # "relevance"

    # -- serving ------------------------------------------------------------------------------

    def start(self):
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.api_url = f"{self.base_url}/services/rest/"
        config = uvicorn.Config(self.app, log_level="critical", lifespan="off", timeout_graceful_shutdown=1)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [sock]}, daemon=True)
        self._thread.start()
        for _ in range(500):
            if self._server.started:
                return self
            time.sleep(0.01)
        raise RuntimeError("the fake Flickr did not start")

    def stop(self):
        self._server.should_exit = True
        self._thread.join(10)

    def env(self) -> dict:
        """The environment a `lablr fetch` needs to use this fake."""
        return {"LABLR_FLICKR_API_URL": self.api_url, "FLICKR_API_KEY": self.api_key,
                "FLICKR_API_SECRET": self.secret}

    def url_of(self, photo: FakePhoto, extra: str = "url_n") -> str:
        suffix = SIZES[extra][0]
        return f"{self.base_url}/{photo.server}/{photo.id}_{photo.secret}{'_' + suffix if suffix else ''}.jpg"

    def users(self) -> dict:
        """NSID -> (username, URL name) of everyone who has photos here."""
        return {p.owner: (p.ownername, p.path_alias or p.owner) for p in self.photos}

    # -- the API ------------------------------------------------------------------------------

    async def rest(self, request: Request):
        body = (await request.body()).decode()
        params = dict(parse_qsl(request.url.query)) | dict(parse_qsl(body))
        method = params.get("method", "")
        fmt = params.get("format", "rest")
        with self._lock:
            self.calls[method] += 1
            fault = self.api_faults[method].pop(0) if self.api_faults[method] else None
        if self.api_delay:
            await asyncio.sleep(self.api_delay)
        if fault == "slow":
            await asyncio.sleep(self.slow_seconds)
        elif fault == "429":
            return Response(RATE_LIMITED, status_code=429, media_type="text/html")
        elif fault and fault.isdigit() and int(fault) >= 500:
            return Response(SERVER_ERROR.format(code=fault), status_code=int(fault), media_type="text/html")
        elif fault and not fault.startswith("cut:"):
            return self._error(int(fault), fmt, method)
        oauth = _oauth_params(request.headers.get("authorization", ""))
        if (oauth.get("oauth_consumer_key") or params.get("api_key")) != self.api_key:
            return self._error(100, fmt, method)
        if oauth and not self._signed(request, params, oauth):
            return self._error(96, fmt, method)
        answer = self._answer(method, params, fmt)
        if fault:  # "cut:N": the answer's first N bytes, as a dropped connection or a broken proxy leaves it
            return Response(answer.body[:int(fault.split(":")[1])], media_type=answer.media_type)
        return answer

    def _answer(self, method, params, fmt):
        if method == "flickr.photos.search":
            return self._search(params, fmt)
        if method == "flickr.tags.getHotList":
            return self._hot(params, fmt)
        if method == "flickr.people.getPublicPhotos":
            return self._public_photos(params, fmt)
        if method == "flickr.urls.lookupUser":
            return self._lookup_user(params, fmt)
        if method == "flickr.people.findByUsername":
            return self._find_by_username(params, fmt)
        return self._error(112, fmt, method)

    def _signed(self, request, params, oauth):
        """Checks the OAuth 1.0 HMAC-SHA1 signature the way Flickr does."""
        from oauthlib.oauth1.rfc5849 import signature

        pairs = [(k, v) for k, v in params.items()] + [(k, v) for k, v in oauth.items() if k != "oauth_signature"]
        base = signature.signature_base_string(request.method, signature.base_string_uri(str(request.url).split("?")[0]),
                                               signature.normalize_parameters(pairs))
        key = f"{quote(self.secret, safe='~')}&".encode()  # the consumer secret, no token secret
        expected = base64.b64encode(hmac.new(key, base.encode(), hashlib.sha1).digest()).decode()
        return hmac.compare_digest(expected, oauth.get("oauth_signature", ""))

    def _search(self, params, fmt):
        tag = params.get("tags", "").split(",")[0].strip().lower()
        licenses = {int(x) for x in params["license"].split(",")} if params.get("license") else None
        with self._lock:
            self.searches.append((tag, max(1, int(params.get("page", 1)))))
        return self._photos_page(self.photos_tagged(tag, licenses), params, fmt)

    def _public_photos(self, params, fmt):
        user = params.get("user_id", "")
        if user not in self.users():
            return self._error(2, fmt, "")
        with self._lock:
            self.searches.append((f"user:{user}", max(1, int(params.get("page", 1)))))
        newest_first = sorted((p for p in self.photos if p.owner == user), key=lambda p: -int(p.id))
        return self._photos_page(newest_first, params, fmt)

    def _lookup_user(self, params, fmt):
        match = re.match(r"^(?:https?://)?(?:www\.)?flickr\.com/(?:photos|people)/([^/?#]+)", params.get("url", ""))
        name = match and unquote(match.group(1))
        found = [(nsid, user) for nsid, user in self.users().items() if name in (nsid, user[1])]
        return self._user(found, fmt)

    def _find_by_username(self, params, fmt):
        wanted = params.get("username", "").strip().lower()
        return self._user([(nsid, u) for nsid, u in self.users().items() if u[0].lower() == wanted], fmt)

    def _user(self, found, fmt):
        if not found:
            return self._error(1, fmt, "")
        nsid, (username, _) = found[0]
        if fmt == "json":
            return JSONResponse({"user": {"id": nsid, "nsid": nsid, "username": {"_content": username}}, "stat": "ok"})
        return self._xml(f'<user id="{nsid}" nsid="{nsid}">\n\t<username>{escape(username)}</username>\n</user>')

    def _photos_page(self, found, params, fmt):
        per_page = max(1, min(500, int(params.get("per_page", 100))))
        pages = max(1, -(-len(found) // per_page))
        page = max(1, int(params.get("page", 1)))
        shown = min(page, pages)  # past the last page Flickr answers with the last page again
        chunk = found[(shown - 1) * per_page:shown * per_page]
        extras = set(params.get("extras", "").split(","))
        rows = [self._photo_attrs(p, extras) for p in chunk]
        head = {"page": page, "pages": pages, "perpage": per_page, "total": len(found)}
        if fmt == "json":
            return self._json({"photos": {**head, "total": str(len(found)), "photo": rows}, "stat": "ok"}, params)
        photos = "".join(f"\t<photo {_attrs(row)} />\n" for row in rows)
        return self._xml(f'<photos {_attrs(head)}>\n{photos}</photos>')

    def _photo_attrs(self, photo, extras):
        row = {"id": photo.id, "owner": photo.owner, "secret": photo.secret, "server": photo.server, "farm": 66,
               "title": photo.title, "ispublic": 1, "isfriend": 0, "isfamily": 0}
        if "license" in extras:
            row["license"] = str(photo.license)
        if "owner_name" in extras:
            row["ownername"] = photo.ownername
        if "tags" in extras:
            row["tags"] = " ".join(photo.tags)
        for extra in sorted(extras & set(SIZES)):
            pixels = size_pixels(photo, extra)
            if pixels:
                suffix = extra[len("url_"):]
                row |= {extra: self.url_of(photo, extra), f"height_{suffix}": pixels[1], f"width_{suffix}": pixels[0]}
        return row

    def _hot(self, params, fmt):
        count = max(1, min(200, int(params.get("count", 20))))
        tags = self.hot[:count]
        period = params.get("period", "day")
        if fmt == "json":
            return self._json({"hottags": {"period": period, "count": len(tags), "tag": [
                {"score": str(20 - i), "_content": t} for i, t in enumerate(tags)]}, "stat": "ok"}, params)
        rows = "".join(f'\t<tag score="{20 - i}">{escape(t)}</tag>\n' for i, t in enumerate(tags))
        return self._xml(f'<hottags period="{period}" count="{len(tags)}">\n{rows}</hottags>')

    def _error(self, code, fmt, method):
        message = ERRORS.get(code, "Error").format(method=method)
        if fmt == "json":
            return JSONResponse({"stat": "fail", "code": code, "message": message})
        return Response(f'<?xml version="1.0" encoding="utf-8" ?>\n<rsp stat="fail">\n\t<err code="{code}" '
                        f'msg={quoteattr(message)} />\n</rsp>\n', media_type="text/xml; charset=utf-8")

    @staticmethod
    def _xml(inner):
        return Response(f'<?xml version="1.0" encoding="utf-8" ?>\n<rsp stat="ok">\n{inner}\n</rsp>\n',
                        media_type="text/xml; charset=utf-8")

    @staticmethod
    def _json(data, params):
        text = json.dumps(data)
        if params.get("nojsoncallback") != "1":
            text = f"jsonFlickrApi({text})"
        return Response(text, media_type="application/json")

    # -- the image servers --------------------------------------------------------------------

    async def image(self, request: Request):
        match = re.fullmatch(r"(\d+)_([0-9a-f]+)(?:_([a-z]))?\.jpg", request.path_params["name"])
        photo_id, secret, suffix = match.groups() if match else ("", "", None)
        photo, extra = self._by_id.get(photo_id), self._suffixes.get(suffix or "")
        with self._lock:
            self.image_requests[photo_id] += 1
            self.size_requests[extra] += 1
            fault = self.image_faults[photo_id].pop(0) if self.image_faults[photo_id] else None
        if photo is None or secret != photo.secret or extra is None or size_pixels(photo, extra) is None:
            return Response("Not Found", status_code=404)
        if photo_id in self.missing:
            return RedirectResponse("/images/en-us/photo_unavailable.png", status_code=302)
        if fault == "slow":
            await asyncio.sleep(self.slow_seconds)
        elif fault == "429":
            return Response(RATE_LIMITED, status_code=429, media_type="text/html", headers={"Retry-After": "0"})
        elif fault:
            return Response(SERVER_ERROR.format(code=fault), status_code=int(fault), media_type="text/html")
        data = self._jpeg(photo, extra)
        if self.image_delay <= 0:
            with self._lock:
                self.images_served[photo_id] += 1
            return Response(data, media_type="image/jpeg")

        async def slowly():
            step = max(1, len(data) // 8)
            for start in range(0, len(data), step):
                await asyncio.sleep(self.image_delay / 8)
                yield data[start:start + step]
            with self._lock:
                self.images_served[photo_id] += 1

        return StreamingResponse(slowly(), media_type="image/jpeg", headers={"Content-Length": str(len(data))})

    def render(self, photo: FakePhoto, width: int, height: int) -> Image.Image:
        return draw(photo, width, height)

    def _jpeg(self, photo, extra):
        if (photo.id, extra) not in self._jpegs:
            buffer = io.BytesIO()
            self.render(photo, *size_pixels(photo, extra)).save(buffer, "JPEG", quality=90)
            data = buffer.getvalue()
            self._jpegs[photo.id, extra] = data[:len(data) * 2 // 5] if photo.id in self.broken else data
        return self._jpegs[photo.id, extra]

    async def unavailable(self, request: Request):
        return Response(unavailable_png(), media_type="image/png")


def _oauth_params(header: str) -> dict:
    if not header.startswith("OAuth "):
        return {}
    pairs = (item.strip().split("=", 1) for item in header[len("OAuth "):].split(","))
    return {unquote(k): unquote(v.strip('"')) for k, v in pairs}


def _attrs(row: dict) -> str:
    return " ".join(f"{k}={quoteattr(str(v))}" for k, v in row.items())
