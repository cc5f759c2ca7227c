"""`lablr fetch`, the command this plugin adds to Lablr's command line."""

import sys

import click

from lablr.core.defaults import CATALOG

from . import defaults


@click.command("fetch")
@click.option("--tags", default="default", show_default=True, metavar="TAG,...|default|hot[:N]",
              help="Tags to search: a comma-separated list, 'default' (the original Lablr's 45 popular tags), "
                   "or 'hot' (Flickr's hot list now; hot:N for N of them).")
@click.option("--per-tag", default=defaults.PER_TAG, show_default=True, type=click.IntRange(1),
              help="Photos to record per tag (Flickr returns at most 4,000 per search).")
@click.option("--licenses", default="any", show_default=True, metavar="any|cc|free|ID,NAME,...",
              help="Only photos under these licences: Flickr's numbers or names (by, by-sa, cc0, ...); "
                   "'cc' any Creative Commons, 'free' those that allow reuse with credit or none needed.")
@click.option("--catalog", default=CATALOG, show_default=True, help="The SQLite catalog of photos and tags.")
@click.option("--images", type=click.Path(file_okay=False), default=None,
              help="Where to store the images (default: CATALOG.flickr/ beside the catalog).")
@click.option("--workers", default=defaults.WORKERS, show_default=True, type=click.IntRange(1, 64),
              help="Images downloaded at once.")
@click.option("--calls-per-hour", default=defaults.CALLS_PER_HOUR, show_default=True,
              type=click.FloatRange(min=1), help="API calls allowed per hour (Flickr's limit is 3,600 per key).")
@click.option("--timeout", default=defaults.TIMEOUT, show_default=True, type=click.FloatRange(min=0.1),
              help="Seconds to wait for an answer.")
@click.option("--attempts", default=defaults.ATTEMPTS, show_default=True, type=click.IntRange(1),
              help="Tries per request on timeouts, server errors and rate limits.")
@click.option("--backoff", default=defaults.BACKOFF, show_default=True, type=click.FloatRange(min=0),
              help="Seconds before the first retry; doubles after each failure.")
@click.option("--per-page", default=defaults.PER_PAGE, hidden=True, type=click.IntRange(1, 500))
@click.option("--quiet", "-q", is_flag=True, help="No progress bars.")
def fetch_command(tags, per_tag, licenses, catalog, images, workers, calls_per_hour, timeout, attempts, backoff,
                  per_page, quiet):
    """Search Flickr by tag, record each photo with all its tags, download the images.

    Needs a Flickr API key: $FLICKR_API_KEY and $FLICKR_API_SECRET, or ~/.config/lablr/flickr.json.
    Safe to interrupt (even kill): run it again and it continues where it stopped.
    """
    from .api import FetchSettings, parse_licenses
    from .downloads import Retry
    from .fetcher import default_images_dir, fetch

    settings = FetchSettings(per_tag=per_tag, per_page=per_page, licenses=parse_licenses(licenses),
                             calls_per_hour=calls_per_hour,
                             workers=workers, timeout=timeout,
                             retry=Retry(attempts, backoff, defaults.BACKOFF_CAP))
    report = fetch(catalog, tags, images_dir=images, settings=settings, progress=not quiet,
                   log=lambda message: click.echo(message, err=True))
    total = _count_by_status(catalog, defaults.SOURCE)
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
