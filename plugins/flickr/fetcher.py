"""`lablr fetch`: photos found on Flickr by tag, recorded with all their tags, downloaded politely.

`fetch()` runs in two resumable phases:

1. Search: for each tag, page through flickr.photos.search (sorted by relevance; Flickr's own
   `tags` field gives every tag of a photo, already normalised), and for a user through
   flickr.people.getPublicPhotos, and add each photo once to the catalog as "pending", with the
   URL of the first image size it has of those asked for (sizes.py), recorded in `image_sizes`.
   The `searches` table records how far each query has paged, so a rerun continues with the
   next page.
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

from lablr.core.data.catalog import Catalog, check_is_catalog
from lablr.core.errors import LablrError
from lablr.core.files import sha256_file

from . import defaults
from .api import FetchSettings, FlickrClient, flickr_tag, image_choice, photo_record
from .downloads import PARTIAL, ExclusiveLock, Gone, Transient, remove_partials, write_whole
from .progress import as_progress
from .sizes import model_input_size, preference
from .tables import create_tables


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
    users: list = field(default_factory=list)  # the NSIDs whose photos were fetched


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


def fetch(catalog_path, tags="default", *, user=None, images_dir=None, settings: FetchSettings = FetchSettings(),
          client=None, progress=True, log=None) -> FetchReport:
    """Search Flickr for each tag (and a user's public photos) and download every photo found;
    safe to kill and rerun.

    `tags` is a list of tags or a spec for resolve_tags ('default', 'hot', 'hot:N', 'a,b,c'), or
    None for none; `user` an NSID, a link to the user's photos, or their URL name. The image size
    is the first of settings.image_extras a photo has; by default the smallest that covers the
    default model's input (sizes.preference). `progress` is True (a bar per phase), False, or a
    Progress (see progress.py) that shows the phases in an overall display.
    """
    report = FetchReport()
    say = log or (lambda message: None)
    bars = as_progress(progress)

    def on_retry(error, attempt, delay):
        report.retries.append(str(error))
        say(f"{error}; trying again in {delay:.1f} s (attempt {attempt + 1} of {settings.retry.attempts})")

    client = client or FlickrClient.from_environment(settings, on_retry=on_retry)
    extras = settings.image_extras or preference(model_input_size())
    images_dir = Path(images_dir or default_images_dir(catalog_path)).absolute()
    check_is_catalog(Path(catalog_path))  # before the lock file is made beside a file that is not one
    with ExclusiveLock(Path(f"{catalog_path}.fetch.lock"), f"fetching into {catalog_path}"):
        catalog = Catalog(catalog_path)
        create_tables(catalog.db)
        remove_partials(_half_written(images_dir))
        try:
            queries = []
            if tags:
                queries += [_tag_query(tag, client, settings, extras) for tag in resolve_tags(tags, client)]
            if user:
                report.users.append(client.lookup_user(user))
                queries.append(_user_query(report.users[-1], client, settings, extras))
            if not queries:
                raise LablrError("Nothing to fetch: give --tags, --user, or both.")
            _search(catalog, queries, settings, extras, report, bars)
            _download(catalog, images_dir, settings, report, bars, on_retry)
        finally:
            report.calls = client.calls
    return report


@dataclass(frozen=True)
class _Query:
    key: str  # how the searches table knows it
    label: str  # the tag, or user:NSID
    page: object  # page number -> (photo dicts, pages)
    per_page: int


def _tag_query(tag, client, settings, extras):
    per_page = _per_page(settings)
    key = "flickr.photos.search?" + urlencode({"tags": tag, "sort": "relevance", "per_page": per_page,
                                                "license": ",".join(map(str, settings.licenses))})
    return _Query(_with_sizes(key, extras), tag,
                  lambda page: client.search(tag, page, per_page, settings.licenses, extras), per_page)


def _user_query(nsid, client, settings, extras):
    per_page = _per_page(settings)
    key = "flickr.people.getPublicPhotos?" + urlencode({"user_id": nsid, "per_page": per_page})
    return _Query(_with_sizes(key, extras), f"user:{nsid}",
                  lambda page: client.public_photos(nsid, page, per_page, extras), per_page)


def _per_page(settings):
    return max(1, min(settings.per_page, settings.per_tag, 500))


def _with_sizes(key, extras):
    # The same search for another model's input is another query: its new photos take that size.
    return f"{key}&size={extras[0]}"


def _search(catalog, queries, settings, extras, report, bars):
    db = catalog.db
    with bars.phase("Photos found", len(queries) * settings.per_tag, "photo") as bar:
        for query in queries:
            report.tags += 1
            last_page = max(1, defaults.MAX_RESULTS // query.per_page)
            row = db.execute("select page, pages, found, done from searches where query = ?", [query.key]).fetchone()
            page, pages, found, _ = row if row else (0, None, 0, 0)
            # done for this run's --per-tag: a later run may ask more of a query an earlier one finished
            done = found >= settings.per_tag or (pages is not None and page >= min(pages, last_page))
            bar.update(min(found, settings.per_tag))
            while not done:
                page += 1
                photos, pages = query.page(page)
                chosen = _with_images(photos, extras)[:max(0, settings.per_tag - found)]
                added = catalog.add([r for r, _ in chosen], defaults.SOURCE, status="pending")
                found += len(chosen)
                report.found += len(chosen)
                report.new += added
                done = int(found >= settings.per_tag or page >= min(pages, last_page) or not photos)
                # After the photos: a crash in between repeats this page, and known keys are skipped.
                with db.atomic():
                    _record_sizes(db, chosen)
                    db.execute("insert or replace into searches values (?, ?, ?, ?, ?, ?, ?, ?)",
                               [query.key, defaults.SOURCE, query.label, page, pages, found, done, _now()])
                bar.update(len(chosen))


def _with_images(photos, extras):
    """(catalog record, image size chosen) of each photo in an answer that offers an image."""
    records = ((photo_record(photo, extras), photo) for photo in photos)
    return [(record, image_choice(photo, extras)) for record, photo in records if record]


def _record_sizes(db, chosen):
    """The size each new photo's image will be downloaded at (a photo found before keeps its own)."""
    db.conn.executemany(
        "insert or ignore into image_sizes select id, ?, ?, ?, ? from photos where key = ? and url = ?",
        [(c.size, c.width, c.height, c.url, r.key, c.url) for r, c in chosen])


def _download(catalog, images_dir, settings, report, bars, on_retry):
    db = catalog.db
    pending = db.execute("select id, key, url from photos where source = ? and status = 'pending' order by id",
                         [defaults.SOURCE]).fetchall()
    stop = threading.Event()
    fetcher = _ImageFetcher(settings, stop)
    todo = []
    with bars.phase("Images downloaded", len(pending), "img") as bar:
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


IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".gif")
# What _destination names a download while it is written: the only files a rerun removes, in a folder that
# may be the user's own (--images), beside other programs' partial files (a browser's NAME.part).
HALF_WRITTEN = re.compile(rf"\d\d/\d+({'|'.join(map(re.escape, IMAGE_SUFFIXES))}){re.escape(PARTIAL)}")


def _destination(images_dir: Path, key: str, url: str) -> Path:
    photo_id = key.split(":", 1)[1]
    suffix = Path(urlsplit(url).path).suffix.lower()
    suffix = suffix if suffix in IMAGE_SUFFIXES else ".jpg"
    return images_dir / photo_id[-2:].rjust(2, "0") / f"{photo_id}{suffix}"


def _half_written(images_dir: Path) -> list[Path]:
    """The downloads a killed run left half-written under the images folder."""
    return [path for path in images_dir.glob(f"*/*{PARTIAL}")
            if HALF_WRITTEN.fullmatch(path.relative_to(images_dir).as_posix())]


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
