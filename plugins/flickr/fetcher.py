"""`lablr fetch`: photos found on Flickr by tag, recorded with all their tags, downloaded politely.

`fetch()` runs in two resumable phases:

1. Search: for each tag, page through flickr.photos.search (sorted by relevance; Flickr's own
   `tags` field gives every tag of a photo, already normalised) and add each photo once to the
   catalog as "pending". The `searches` table records how far each query has paged, so a rerun
   continues with the next page.
2. Download: the pending photos' images, a bounded pool of threads at a time, each written to
   a temporary name, fsynced and renamed; only then is the photo marked "ok" and the file
   recorded in `downloads`. A rerun downloads only what is still pending.

The two tables are this plugin's own, created beside the catalog's (see tables.py).
"""

import re
import threading
import time
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlencode, urlsplit

from lablr.core.catalog import Catalog
from lablr.core.checksums import sha256_file
from lablr.core.errors import LablrError

from . import defaults
from .api import FetchSettings, FlickrClient, flickr_tag, photo_record
from .downloads import ExclusiveLock, Gone, Transient, remove_partials, write_whole
from .tables import create_tables

SOURCE = defaults.SOURCE


class Stopped(Exception):
    """The run is ending (Ctrl-C): a download in progress gives up without retrying."""


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
        tags = list(defaults.TAGS)
    elif re.fullmatch(r"hot(:\d+)?", spec.strip().lower()):
        count = int(spec.split(":")[1]) if ":" in spec else defaults.HOT_COUNT
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
    report = FetchReport()
    say = log or (lambda message: None)

    def on_retry(error, attempt, delay):
        report.retries.append(str(error))
        say(f"{error}; trying again in {delay:.1f} s (attempt {attempt + 1} of {settings.retry.attempts})")

    client = client or FlickrClient.from_environment(settings, on_retry=on_retry)
    images_dir = Path(images_dir or default_images_dir(catalog_path)).absolute()
    with ExclusiveLock(Path(f"{catalog_path}.fetch.lock"), f"fetching into {catalog_path}"):
        catalog = Catalog(catalog_path)
        create_tables(catalog.db)
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
    last_page = max(1, defaults.MAX_RESULTS // per_page)
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
                _record(db, photo_id, destination, destination.stat().st_size, sha256_file(destination))
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
