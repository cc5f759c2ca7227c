"""Flickr's REST API through flickrapi: credentials, a rate-limited and retried client, records.

flickrapi's `walk()` is not used (it calls Element.getchildren(), gone since Python 3.9): the
fetcher pages through flickr.photos.search itself. Calls pass a token bucket that keeps under
Flickr's 3,600 calls an hour and are retried with backoff on timeouts, 5xx and rate-limit
answers. The endpoint is $LABLR_FLICKR_API_URL, or Flickr's own.
"""

import json
import logging
import os
import re
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

from lablr.core.data.catalog import compact_tag
from lablr.core.errors import LablrError
from lablr.core.parts import PhotoRecord

from . import defaults
from .downloads import Retry, TokenBucket, Transient

# Flickr API error codes worth retrying: 105 "Service currently unavailable",
# 10 "Sorry, the Flickr search API is not currently available", 0 (an empty answer from a busy server)
TRANSIENT_CODES = {0, 10, 105}
KEY_CODES = {96, 97, 100}  # invalid signature, missing signature, invalid API key
_MACHINE_TAG = re.compile(r"^[^:=\s]+:[^=\s]+=")
_NSID = re.compile(r"\d+@N\d\d")


def flickr_tag(text: str) -> str:
    """A tag the way Flickr normalises it: lower case, letters and digits only ("New York" -> "newyork").

    Machine tags (namespace:predicate=value, e.g. uploaded:by=flickrmobile) say nothing about the
    picture: they become "" and are dropped.
    """
    text = unicodedata.normalize("NFKC", text.strip())
    return "" if _MACHINE_TAG.match(text) else compact_tag(text)


# -- settings and credentials -------------------------------------------------------------------


@dataclass(frozen=True)
class FetchSettings:
    per_tag: int = defaults.PER_TAG
    per_page: int = defaults.PER_PAGE
    licenses: tuple = ()  # Flickr licence ids; empty: any licence
    calls_per_hour: float = defaults.CALLS_PER_HOUR
    burst: int = defaults.BURST
    workers: int = defaults.WORKERS
    timeout: float = defaults.TIMEOUT
    retry: Retry = field(default_factory=lambda: Retry(defaults.ATTEMPTS, defaults.BACKOFF,
                                                       defaults.BACKOFF_CAP))
    image_extras: tuple = ()  # the image sizes to ask for, best first (sizes.preference); () for the default model's


def parse_licenses(text: str | None) -> tuple:
    """'4,5,cc0' or 'cc' or 'by,by-sa' -> sorted Flickr licence ids; '' or 'any' -> () (no filter)."""
    if not text or text.strip().lower() in ("any", "all"):
        return ()
    ids = set()
    for item in (part.strip().lower() for part in text.split(",") if part.strip()):
        if item.isdigit() and int(item) in defaults.LICENSES.values():
            ids.add(int(item))
        elif item in defaults.LICENSES:
            ids.add(defaults.LICENSES[item])
        elif item in defaults.LICENSE_GROUPS:
            ids.update(defaults.LICENSE_GROUPS[item])
        else:
            names = ", ".join([*defaults.LICENSE_GROUPS, *defaults.LICENSES])
            raise LablrError(f"Unknown licence {item!r}. Use Flickr's licence numbers (0-10) or: {names}.")
    return tuple(sorted(ids))


def config_path() -> Path:
    if os.environ.get(defaults.CONFIG_ENV):
        return Path(os.environ[defaults.CONFIG_ENV]).expanduser()
    if os.environ.get("XDG_CONFIG_HOME"):
        return Path(os.environ["XDG_CONFIG_HOME"]) / "lablr" / "flickr.json"
    return Path(defaults.CONFIG).expanduser()


def credentials() -> tuple[str, str]:
    """(api key, secret) from $FLICKR_API_KEY and $FLICKR_API_SECRET, else the config file."""
    key, secret = os.environ.get(defaults.KEY_ENV, "").strip(), os.environ.get(defaults.SECRET_ENV, "").strip()
    path = config_path()
    if not (key and secret) and path.is_file():
        try:
            stored = json.loads(path.read_text())
        except (OSError, ValueError) as error:
            raise LablrError(f"Cannot read the Flickr key file {path}: {error}") from None
        key = key or str(stored.get("api_key", "")).strip()
        secret = secret or str(stored.get("api_secret", "")).strip()
    if not (key and secret):
        raise LablrError(
            f"No Flickr API key. Get a key and its secret at {defaults.KEY_PAGE} (free, non-commercial), "
            f"then set {defaults.KEY_ENV} and {defaults.SECRET_ENV}, or write {{\"api_key\": \"...\", \"api_secret\": \"...\"}} "
            f"to {path} (keep it out of any repository).", code="no_api_key")
    return key, secret


def api_url() -> str:
    return os.environ.get(defaults.URL_ENV, "").strip() or defaults.API_URL


# -- the API ------------------------------------------------------------------------------------


class FlickrClient:
    """Flickr's REST API through flickrapi, rate-limited and retried."""

    def __init__(self, key: str, secret: str, url: str | None = None, settings: FetchSettings = FetchSettings(),
                 on_retry=None):
        import flickrapi

        logging.getLogger("flickrapi").setLevel(logging.CRITICAL)  # failures are reported (and retried) here
        self.api = flickrapi.FlickrAPI(key, secret, format="etree", store_token=False, cache=False,
                                       timeout=settings.timeout)
        self.api.REST_URL = url or api_url()  # a class attribute in flickrapi: set on this instance only
        self.settings = settings
        self.bucket = TokenBucket(settings.calls_per_hour, settings.burst)
        self.on_retry = on_retry
        self.calls = 0

    @classmethod
    def from_environment(cls, settings: FetchSettings = FetchSettings(), on_retry=None) -> "FlickrClient":
        key, secret = credentials()
        return cls(key, secret, api_url(), settings, on_retry=on_retry)

    def call(self, method: str, **params):
        """One API method's parsed answer (an ElementTree <rsp>), retried on transient failures."""
        try:
            return self.settings.retry.call(self._call_once, method, params, on_retry=self.on_retry)
        except Transient as error:
            raise LablrError(f"Flickr did not answer {method} after {self.settings.retry.attempts} attempts "
                             f"(last: {error}). Run `lablr fetch` again later: it continues where it stopped.",
                             code="flickr_unavailable", status=503) from None

    def _call_once(self, method, params):
        import requests
        from flickrapi.exceptions import FlickrError

        self.bucket.acquire()
        self.calls += 1
        try:
            return self.api.do_flickr_call(method, **params)
        except (requests.Timeout, requests.ConnectionError) as error:
            raise Transient(f"{method}: {type(error).__name__}") from None
        except FlickrError as error:
            status = re.search(r"Status code (\d+)", str(error))
            if status:
                code = int(status.group(1))
                if code == 429 or code >= 500:
                    raise Transient(f"{method}: HTTP {code}" + (" (rate limited)" if code == 429 else "")) from None
                raise LablrError(f"Flickr answered {method} with HTTP {code} at {self.api.REST_URL}.") from None
            if error.code in TRANSIENT_CODES:
                raise Transient(f"{method}: {error}") from None
            if error.code in KEY_CODES:
                raise LablrError(f"Flickr refused the API key ({error}). Check {defaults.KEY_ENV} and {defaults.SECRET_ENV}, "
                                 f"or get a key at {defaults.KEY_PAGE}.", code="bad_api_key") from None
            raise LablrError(f"Flickr answered {method} with an error: {error}") from None
        except SyntaxError as error:  # xml.etree's ParseError: a proxy's error page, a cut-off answer
            raise Transient(f"{method}: unreadable answer ({error})") from None

    def search(self, tag: str, page: int, per_page: int, licenses=(), extras=()):
        """(photo dicts, pages) for one page of photos carrying the tag, most relevant first."""
        params = {"tags": tag, "tag_mode": "all", "sort": "relevance", "media": "photos", "content_type": 1,
                  "safe_search": 1, "per_page": per_page, "page": page, "extras": _extras(extras)}
        if licenses:
            params["license"] = ",".join(str(i) for i in licenses)
        return self._page("flickr.photos.search", params)

    def public_photos(self, user_id: str, page: int, per_page: int, extras=()):
        """(photo dicts, pages) for one page of a user's public photos, newest first."""
        params = {"user_id": user_id, "safe_search": 1, "content_type": 1, "per_page": per_page, "page": page,
                  "extras": _extras(extras)}
        return self._page("flickr.people.getPublicPhotos", params)

    def _page(self, method, params):
        photos = self.call(method, **params).find("photos")
        if photos is None:
            raise LablrError(f"Flickr's answer to {method} has no <photos>.")
        return [dict(p.attrib) for p in photos.findall("photo")], int(photos.get("pages") or 0)

    def lookup_user(self, text: str) -> str:
        """The NSID of a user given as an NSID, a Flickr URL of theirs, or their URL name or username."""
        text = text.strip()
        if _NSID.fullmatch(text):
            return text
        url = text if re.match(r"^(https?://)?(www\.)?flickr\.com/", text) else None
        found = self._user("flickr.urls.lookupUser", url=url or f"{defaults.PHOTOS_URL}{text}/")
        if found is None and not url:
            found = self._user("flickr.people.findByUsername", username=text)
        if found is None or not found.get("id"):
            raise LablrError(f"Flickr knows no user {text!r}. Give their NSID (12345678@N01), a link to their "
                             "photos, or their URL name.")
        return found.get("id")

    def hot_tags(self, count: int = defaults.HOT_COUNT, period: str = "day") -> list[str]:
        """The tags Flickr lists as hot now (flickr.tags.getHotList), most used first."""
        hot = self.call("flickr.tags.getHotList", period=period, count=count).find("hottags")
        tags = [flickr_tag(t.text or "") for t in (hot.findall("tag") if hot is not None else [])]
        return list(dict.fromkeys(t for t in tags if t))

    def _user(self, method, **params):
        """The <user> element of the answer, or None when Flickr says there is no such user (error 1)."""
        try:
            return self.call(method, **params).find("user")
        except LablrError as error:
            if "user not found" in str(error).lower():
                return None
            raise


@dataclass(frozen=True)
class ImageChoice:
    size: str  # the size extra it came from, e.g. "url_n"
    url: str
    width: int | None
    height: int | None


def image_choice(photo: dict, extras) -> ImageChoice | None:
    """The first of the size extras, in order, that the photo has (None when it has none)."""
    for extra in extras:
        if photo.get(extra):
            suffix = extra[len("url_"):]
            width, height = _int(photo.get(f"width_{suffix}")), _int(photo.get(f"height_{suffix}"))
            return ImageChoice(extra, photo[extra], width, height)
    return None


def photo_record(photo: dict, extras) -> PhotoRecord | None:
    """A catalog record from one <photo> of a search answer (None when it offers no image, or has no id of
    Flickr's digits: the id names the image's file, which must stay inside the images folder)."""
    choice = image_choice(photo, extras)
    if not choice or not str(photo.get("id", "")).isdigit():
        return None
    url = choice.url
    tags = [t for t in (flickr_tag(raw) for raw in photo.get("tags", "").split()) if t]
    return PhotoRecord(key=f"flickr:{photo['id']}", path=None, tags=list(dict.fromkeys(tags)),
                       owner=photo.get("owner"), license=photo.get("license"), title=photo.get("title"), url=url)


def _extras(sizes) -> str:
    return ",".join(["tags", "license", "owner_name", *sizes])


def _int(value):
    try:
        return int(value)
    except (TypeError, ValueError):
        return None
