"""`flickr`: photos found on Flickr by tag, recorded with all their tags, downloaded politely.

`lablr fetch` runs `fetch()` below in two resumable phases:

1. Search: for each tag, page through flickr.photos.search (sorted by relevance; Flickr's own
   `tags` field gives every tag of a photo, already normalised) and add each photo once to the
   catalog as "pending". The catalog's `searches` table records how far each query has paged,
   so a rerun continues with the next page.
2. Download: the pending photos' images, a bounded pool of threads at a time, each written to
   a temporary name, fsynced and renamed; only then is the photo marked "ok" and the file
   recorded in `downloads`. A rerun downloads only what is still pending.

API calls go through flickrapi (its `walk()` is not used: it is broken on Python 3.9+), pass a
token bucket that keeps under Flickr's 3,600 calls an hour, and are retried with backoff on
timeouts, 5xx and rate-limit answers. The endpoint is $LABLR_FLICKR_API_URL, or Flickr's own.
"""

import json
import logging
import os
import re
import sys
import threading
import time
import unicodedata
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlencode, urlsplit

import click

from lablr.core import defaults, hookimpl
from lablr.core.errors import LablrError
from lablr.core.fetching import (ExclusiveLock, Gone, Retry, TokenBucket, Transient, remove_partials, sha256_file,
                                 write_whole)
from lablr.core.parts import PhotoRecord

SOURCE = "flickr"
URL_ENV = "LABLR_FLICKR_API_URL"
KEY_ENV, SECRET_ENV = "FLICKR_API_KEY", "FLICKR_API_SECRET"
CONFIG_ENV = "LABLR_FLICKR_CONFIG"
# Flickr API error codes worth retrying: 105 "Service currently unavailable",
# 10 "Sorry, the Flickr search API is not currently available", 0 (an empty answer from a busy server)
TRANSIENT_CODES = {0, 10, 105}
KEY_CODES = {96, 97, 100}  # invalid signature, missing signature, invalid API key
_MACHINE_TAG = re.compile(r"^[^:=\s]+:[^=\s]+=")


@hookimpl
def register_sources(register):
    register("flickr", FlickrSource)


@hookimpl
def register_commands(cli):
    cli.add_command(fetch_command)


class Stopped(Exception):
    """The run is ending (Ctrl-C): a download in progress gives up without retrying."""


class FlickrSource:
    description = "Flickr photos searched by tag (`lablr fetch`, then `lablr prepare`)"
    stop_tags = defaults.FLICKR_STOP_TAGS

    def records(self, location=None):
        raise LablrError("Flickr photos come in with `lablr fetch` (it searches Flickr, records the photos and "
                         "downloads them), not `lablr import`. Then run `lablr prepare`.")


def flickr_tag(text: str) -> str:
    """A tag the way Flickr normalises it: lower case, letters and digits only ("New York" -> "newyork").

    Machine tags (namespace:predicate=value, e.g. uploaded:by=flickrmobile) say nothing about the
    picture: they become "" and are dropped.
    """
    text = unicodedata.normalize("NFKC", text.strip())
    if _MACHINE_TAG.match(text):
        return ""
    return "".join(ch for ch in text.lower() if ch.isalnum())


# -- settings and credentials -------------------------------------------------------------------


@dataclass(frozen=True)
class FetchSettings:
    per_tag: int = defaults.FLICKR_PER_TAG
    per_page: int = defaults.FLICKR_PER_PAGE
    licenses: tuple = ()  # Flickr licence ids; empty: any licence
    calls_per_hour: float = defaults.FLICKR_CALLS_PER_HOUR
    burst: int = defaults.FLICKR_BURST
    workers: int = defaults.FLICKR_WORKERS
    timeout: float = defaults.FLICKR_TIMEOUT
    retry: Retry = field(default_factory=lambda: Retry(defaults.FLICKR_ATTEMPTS, defaults.FLICKR_BACKOFF,
                                                       defaults.FLICKR_BACKOFF_CAP))
    image_extras: tuple = defaults.FLICKR_IMAGE_EXTRAS


def parse_licenses(text: str | None) -> tuple:
    """'4,5,cc0' or 'cc' or 'by,by-sa' -> sorted Flickr licence ids; '' or 'any' -> () (no filter)."""
    if not text or text.strip().lower() in ("any", "all"):
        return ()
    ids = set()
    for item in (part.strip().lower() for part in text.split(",") if part.strip()):
        if item.isdigit() and int(item) in defaults.FLICKR_LICENSES.values():
            ids.add(int(item))
        elif item in defaults.FLICKR_LICENSES:
            ids.add(defaults.FLICKR_LICENSES[item])
        elif item in defaults.FLICKR_LICENSE_GROUPS:
            ids.update(defaults.FLICKR_LICENSE_GROUPS[item])
        else:
            names = ", ".join([*defaults.FLICKR_LICENSE_GROUPS, *defaults.FLICKR_LICENSES])
            raise LablrError(f"Unknown licence {item!r}. Use Flickr's licence numbers (0-10) or: {names}.")
    return tuple(sorted(ids))


def config_path() -> Path:
    if os.environ.get(CONFIG_ENV):
        return Path(os.environ[CONFIG_ENV]).expanduser()
    if os.environ.get("XDG_CONFIG_HOME"):
        return Path(os.environ["XDG_CONFIG_HOME"]) / "lablr" / "flickr.json"
    return Path(defaults.FLICKR_CONFIG).expanduser()


def credentials() -> tuple[str, str]:
    """(api key, secret) from $FLICKR_API_KEY and $FLICKR_API_SECRET, else the config file."""
    key, secret = os.environ.get(KEY_ENV, "").strip(), os.environ.get(SECRET_ENV, "").strip()
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
            f"No Flickr API key. Get a key and its secret at {defaults.FLICKR_KEY_PAGE} (free, non-commercial), "
            f"then set {KEY_ENV} and {SECRET_ENV}, or write {{\"api_key\": \"...\", \"api_secret\": \"...\"}} "
            f"to {path} (keep it out of any repository).", code="no_api_key")
    return key, secret


def api_url() -> str:
    return os.environ.get(URL_ENV, "").strip() or defaults.FLICKR_API_URL


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
                raise LablrError(f"Flickr refused the API key ({error}). Check {KEY_ENV} and {SECRET_ENV}, "
                                 f"or get a key at {defaults.FLICKR_KEY_PAGE}.", code="bad_api_key") from None
            raise LablrError(f"Flickr answered {method} with an error: {error}") from None
        except SyntaxError as error:  # xml.etree's ParseError: a proxy's error page, a cut-off answer
            raise Transient(f"{method}: unreadable answer ({error})") from None

    def search(self, tag: str, page: int, per_page: int, licenses=()):
        """(photo dicts, pages) for one page of photos carrying the tag, most relevant first."""
        params = {"tags": tag, "tag_mode": "all", "sort": "relevance", "media": "photos", "content_type": 1,
                  "safe_search": 1, "per_page": per_page, "page": page,
                  "extras": ",".join(["tags", "license", "owner_name", *self.settings.image_extras])}
        if licenses:
            params["license"] = ",".join(str(i) for i in licenses)
        photos = self.call("flickr.photos.search", **params).find("photos")
        if photos is None:
            raise LablrError("Flickr's answer to flickr.photos.search has no <photos>.")
        return [dict(p.attrib) for p in photos.findall("photo")], int(photos.get("pages") or 0)

    def hot_tags(self, count: int = defaults.FLICKR_HOT_COUNT, period: str = "day") -> list[str]:
        """The tags Flickr lists as hot now (flickr.tags.getHotList), most used first."""
        hot = self.call("flickr.tags.getHotList", period=period, count=count).find("hottags")
        tags = [flickr_tag(t.text or "") for t in (hot.findall("tag") if hot is not None else [])]
        return list(dict.fromkeys(t for t in tags if t))


def photo_record(photo: dict, extras=defaults.FLICKR_IMAGE_EXTRAS) -> PhotoRecord | None:
    """A catalog record from one <photo> of a search answer (None when it offers no image)."""
    url = next((photo[e] for e in extras if photo.get(e)), None)
    if not url or not photo.get("id"):
        return None
    tags = [t for t in (flickr_tag(raw) for raw in photo.get("tags", "").split()) if t]
    return PhotoRecord(key=f"flickr:{photo['id']}", path=None, tags=list(dict.fromkeys(tags)),
                       owner=photo.get("owner"), license=photo.get("license"), title=photo.get("title"), url=url)


# -- fetching -----------------------------------------------------------------------------------


@dataclass
class FetchReport:
    tags: int = 0
    found: int = 0  # photos seen in this run's searches (within --per-tag)
    new: int = 0  # of which not in the catalog before
    downloaded: int = 0
    reused: int = 0  # whole files a killed run left unrecorded, recorded now without downloading
    missing: int = 0  # gone from Flickr (404, 410, "photo unavailable")
    failed: int = 0  # still failing after every retry: left pending for the next run
    calls: int = 0
    retries: list = field(default_factory=list)


def default_images_dir(catalog_path) -> Path:
    return Path(f"{catalog_path}.flickr")


def resolve_tags(spec, client: FlickrClient) -> list[str]:
    """'default' -> the original Lablr's 45 tags; 'hot' or 'hot:N' -> Flickr's hot list; else 'a,b,c'."""
    if not isinstance(spec, str):
        tags = [flickr_tag(t) for t in spec]
    elif spec.strip().lower() == "default":
        tags = list(defaults.FLICKR_TAGS)
    elif re.fullmatch(r"hot(:\d+)?", spec.strip().lower()):
        count = int(spec.split(":")[1]) if ":" in spec else defaults.FLICKR_HOT_COUNT
        tags = client.hot_tags(count)
        if not tags:
            raise LablrError("Flickr's hot list is empty right now; give --tags.")
    else:
        tags = [flickr_tag(t) for t in spec.split(",")]
    tags = list(dict.fromkeys(t for t in tags if t))
    if not tags:
        raise LablrError("No tags to search for: give --tags TAG,TAG... (letters and digits).")
    return tags


def fetch(catalog_path, tags="default", *, images_dir=None, settings: FetchSettings = FetchSettings(), client=None,
          progress=True, log=None) -> FetchReport:
    """Search Flickr for each tag and download every photo found; safe to kill and rerun.

    `tags` is a list of tags or a spec for resolve_tags ('default', 'hot', 'hot:N', 'a,b,c').
    """
    from lablr.core.catalog import Catalog

    report = FetchReport()
    say = log or (lambda message: None)

    def on_retry(error, attempt, delay):
        report.retries.append(str(error))
        say(f"{error}; trying again in {delay:.1f} s (attempt {attempt + 1} of {settings.retry.attempts})")

    client = client or FlickrClient.from_environment(settings, on_retry=on_retry)
    images_dir = Path(images_dir or default_images_dir(catalog_path)).absolute()
    with ExclusiveLock(Path(f"{catalog_path}.fetch.lock"), f"fetching into {catalog_path}"):
        catalog = Catalog(catalog_path)
        remove_partials(images_dir)
        try:
            tags = resolve_tags(tags, client)
            _search(catalog, client, tags, settings, report, progress)
            _download(catalog, images_dir, settings, report, progress, on_retry)
        finally:
            report.calls = client.calls
    return report


def _query(tag, settings, per_page):
    return "flickr.photos.search?" + urlencode({"tags": tag, "sort": "relevance", "per_page": per_page,
                                                 "license": ",".join(map(str, settings.licenses))})


def _search(catalog, client, tags, settings, report, progress):
    from tqdm import tqdm

    db = catalog.db
    per_page = max(1, min(settings.per_page, settings.per_tag, 500))
    last_page = max(1, defaults.FLICKR_MAX_RESULTS // per_page)
    bar = tqdm(total=len(tags) * settings.per_tag, desc="Photos found", unit="photo", disable=not progress)
    with bar:
        for tag in tags:
            report.tags += 1
            query = _query(tag, settings, per_page)
            row = db.execute("select page, pages, found, done from searches where query = ?", [query]).fetchone()
            page, pages, found, _ = row if row else (0, None, 0, 0)
            # done for this run's --per-tag: a later run may ask more of a query an earlier one finished
            done = found >= settings.per_tag or (pages is not None and page >= min(pages, last_page))
            bar.update(min(found, settings.per_tag))
            while not done:
                page += 1
                photos, pages = client.search(tag, page, per_page, settings.licenses)
                records = [r for r in (photo_record(p, settings.image_extras) for p in photos) if r]
                records = records[:max(0, settings.per_tag - found)]
                added = catalog.add(records, SOURCE, status="pending")
                found += len(records)
                report.found += len(records)
                report.new += added
                done = int(found >= settings.per_tag or page >= min(pages, last_page) or not photos)
                # After the photos: a crash in between repeats this page, and known keys are skipped.
                with db.atomic():
                    db.execute("insert or replace into searches values (?, ?, ?, ?, ?, ?, ?, ?)",
                               [query, SOURCE, tag, page, pages, found, done, _now()])
                bar.update(len(records))


def _download(catalog, images_dir, settings, report, progress, on_retry):
    from tqdm import tqdm

    db = catalog.db
    pending = db.execute("select id, key, url from photos where source = ? and status = 'pending' order by id",
                         [SOURCE]).fetchall()
    stop = threading.Event()
    fetcher = _ImageFetcher(settings, stop)
    todo = []
    bar = tqdm(total=len(pending), desc="Images downloaded", unit="img", disable=not progress)
    with bar:
        for photo_id, key, url in pending:
            destination = _destination(images_dir, key, url)
            if destination.is_file():  # renamed into place whole, but the run died before recording it
                _record(db, photo_id, destination, *sha256_file(destination))
                report.reused += 1
                bar.update()
            else:
                todo.append((photo_id, url, destination))
        jobs = iter(todo)
        in_flight = {}
        with ThreadPoolExecutor(max(1, settings.workers), thread_name_prefix="lablr-download") as pool:

            def fill():
                for photo_id, url, destination in jobs:
                    future = pool.submit(settings.retry.call, fetcher.get, url, destination, on_retry=on_retry)
                    in_flight[future] = (photo_id, destination)
                    if len(in_flight) >= 2 * settings.workers:
                        return

            try:
                fill()
                while in_flight:
                    finished, _ = wait(in_flight, return_when=FIRST_COMPLETED)
                    for future in finished:
                        photo_id, destination = in_flight.pop(future)
                        try:
                            size, digest = future.result()
                        except Gone:
                            with db.atomic():
                                db.execute("update photos set status = 'missing' where id = ?", [photo_id])
                            report.missing += 1
                        except (Transient, Stopped):
                            report.failed += 1
                        else:
                            _record(db, photo_id, destination, size, digest)
                            report.downloaded += 1
                        bar.update()
                    fill()
            except BaseException:
                stop.set()  # downloads in progress give up at their next chunk
                for future in in_flight:
                    future.cancel()
                raise


def _destination(images_dir: Path, key: str, url: str) -> Path:
    photo_id = key.split(":", 1)[1]
    suffix = Path(urlsplit(url).path).suffix.lower()
    suffix = suffix if suffix in (".jpg", ".jpeg", ".png", ".gif") else ".jpg"
    return images_dir / photo_id[-2:].rjust(2, "0") / f"{photo_id}{suffix}"


def _record(db, photo_id, path, size, digest):
    with db.atomic():
        db.execute("update photos set status = 'ok', path = ? where id = ?", [str(path), photo_id])
        db.execute("insert or replace into downloads values (?, ?, ?, ?, ?)",
                   [photo_id, str(path), size, digest, _now()])


def _now():
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


class _ImageFetcher:
    """Downloads one image into place; one HTTP session per thread."""

    CHUNK = 64 * 1024

    def __init__(self, settings: FetchSettings, stop: threading.Event):
        self.settings, self.stop = settings, stop
        self._local = threading.local()

    def _session(self):
        import requests

        if not hasattr(self._local, "session"):
            self._local.session = requests.Session()
            self._local.session.headers["User-Agent"] = "lablr (https://github.com/lablr)"
        return self._local.session

    def get(self, url, destination):
        import requests

        if self.stop.is_set():
            raise Stopped(url)
        try:
            with self._session().get(url, stream=True, timeout=self.settings.timeout) as response:
                code = response.status_code
                if code == 429 or code >= 500:
                    raise Transient(f"{url}: HTTP {code}", retry_after=_seconds(response.headers.get("Retry-After")))
                if code != 200:
                    raise Gone(f"{url}: HTTP {code}")
                if "photo_unavailable" in response.url:  # Flickr redirects deleted photos to a placeholder
                    raise Gone(f"{url}: the photo is no longer on Flickr")
                if not response.headers.get("Content-Type", "image/").startswith("image/"):
                    raise Transient(f"{url}: not an image ({response.headers.get('Content-Type')})")
                expected = response.headers.get("Content-Length")
                chunks = self._chunks(response, url, int(expected) if expected and expected.isdigit() else None)
                return write_whole(destination, chunks)
        except (requests.Timeout, requests.ConnectionError, requests.exceptions.ChunkedEncodingError) as error:
            raise Transient(f"{url}: {type(error).__name__}") from None

    def _chunks(self, response, url, expected):
        received = 0
        for chunk in response.iter_content(self.CHUNK):
            if self.stop.is_set():
                raise Stopped(url)
            received += len(chunk)
            yield chunk
        if expected is not None and received != expected:
            raise Transient(f"{url}: {received} of {expected} bytes")
        if received == 0:
            raise Transient(f"{url}: empty answer")


def _seconds(value):
    try:
        return max(0.0, float(value))
    except (TypeError, ValueError):
        return None


# -- the command ------------------------------------------------------------------------------------


@click.command("fetch")
@click.option("--tags", default="default", show_default=True, metavar="TAG,...|default|hot[:N]",
              help="Tags to search: a comma-separated list, 'default' (the original Lablr's 45 popular tags), "
                   "or 'hot' (Flickr's hot list now; hot:N for N of them).")
@click.option("--per-tag", default=defaults.FLICKR_PER_TAG, show_default=True, type=click.IntRange(1),
              help="Photos to record per tag (Flickr returns at most 4,000 per search).")
@click.option("--licenses", default="any", show_default=True, metavar="any|cc|free|ID,NAME,...",
              help="Only photos under these licences: Flickr's numbers or names (by, by-sa, cc0, ...); "
                   "'cc' any Creative Commons, 'free' those that allow reuse with credit or none needed.")
@click.option("--catalog", default=defaults.CATALOG, show_default=True, help="The SQLite catalog of photos and tags.")
@click.option("--images", type=click.Path(file_okay=False), default=None,
              help="Where to store the images (default: CATALOG.flickr/ beside the catalog).")
@click.option("--workers", default=defaults.FLICKR_WORKERS, show_default=True, type=click.IntRange(1, 64),
              help="Images downloaded at once.")
@click.option("--calls-per-hour", default=defaults.FLICKR_CALLS_PER_HOUR, show_default=True,
              type=click.FloatRange(min=1), help="API calls allowed per hour (Flickr's limit is 3,600 per key).")
@click.option("--timeout", default=defaults.FLICKR_TIMEOUT, show_default=True, type=click.FloatRange(min=0.1),
              help="Seconds to wait for an answer.")
@click.option("--attempts", default=defaults.FLICKR_ATTEMPTS, show_default=True, type=click.IntRange(1),
              help="Tries per request on timeouts, server errors and rate limits.")
@click.option("--backoff", default=defaults.FLICKR_BACKOFF, show_default=True, type=click.FloatRange(min=0),
              help="Seconds before the first retry; doubles after each failure.")
@click.option("--per-page", default=defaults.FLICKR_PER_PAGE, hidden=True, type=click.IntRange(1, 500))
@click.option("--quiet", "-q", is_flag=True, help="No progress bars.")
def fetch_command(tags, per_tag, licenses, catalog, images, workers, calls_per_hour, timeout, attempts, backoff,
                  per_page, quiet):
    """Search Flickr by tag, record each photo with all its tags, download the images.

    Needs a Flickr API key: $FLICKR_API_KEY and $FLICKR_API_SECRET, or ~/.config/lablr/flickr.json.
    Safe to interrupt (even kill): run it again and it continues where it stopped.
    """
    settings = FetchSettings(per_tag=per_tag, per_page=per_page, licenses=parse_licenses(licenses),
                             calls_per_hour=calls_per_hour,
                             workers=workers, timeout=timeout,
                             retry=Retry(attempts, backoff, defaults.FLICKR_BACKOFF_CAP))
    report = fetch(catalog, tags, images_dir=images, settings=settings, progress=not quiet,
                   log=lambda message: click.echo(message, err=True))
    total = _count_by_status(catalog, "flickr")
    click.echo(f"{report.tags} tags searched: {report.found} photos found, {report.new} new. "
               f"{report.downloaded} images downloaded ({report.reused} found whole on disk), "
               f"{report.missing} gone from Flickr; {report.calls} API calls.")
    click.echo(f"{catalog}: {total.get('ok', 0)} Flickr photos ready, {total.get('pending', 0)} to download; "
               f"images in {images or default_images_dir(catalog)}.")
    if report.failed:
        click.echo(f"{report.failed} downloads still failed after {attempts} attempts each; "
                   "run `lablr fetch` again to retry them.", err=True)
        sys.exit(1)


def _count_by_status(catalog, source):
    from lablr.core.catalog import Catalog

    rows = Catalog(catalog).db.execute("select status, count(*) from photos where source = ? group by status",
                                       [source]).fetchall()
    return dict(rows)
