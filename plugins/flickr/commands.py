"""`lablr fetch`, the command this plugin adds to Lablr's command line."""

import sys

import click

from lablr.core import defaults as CORE

from . import defaults


@click.command("fetch")
@click.option("--tags", default="default", show_default=True, metavar="TAG,...|default|hot[:N]|none",
              help="Tags to search: a comma-separated list, 'default' (the original Lablr's 45 popular tags), "
                   "'hot' (Flickr's hot list now; hot:N for N of them), or 'none' (with --user).")
@click.option("--user", default=None, metavar="NSID|URL|NAME",
              help="Also fetch this user's public photos with their tags: an NSID (12345678@N01), a link to "
                   "their photos, or their URL name. Give --tags none for theirs alone.")
@click.option("--per-tag", default=defaults.PER_TAG, show_default=True, type=click.IntRange(1),
              help="Photos to record per tag, and of the --user (Flickr returns at most 4,000 per search).")
@click.option("--size", type=click.IntRange(8, 4096), default=None,
              help="The model's input side in pixels: downloads the smallest Flickr size that covers it "
                   "(default: the --model's).")
@click.option("--model", "-m", default=None,
              help="Download images for this model's input size (default: the default model).")
@click.option("--licenses", default="any", show_default=True, metavar="any|cc|free|ID,NAME,...",
              help="Only photos under these licences: Flickr's numbers or names (by, by-sa, cc0, ...); "
                   "'cc' any Creative Commons, 'free' those that allow reuse with credit or none needed.")
@click.option("--catalog", default=CORE.CATALOG, show_default=True, help="The SQLite catalog of photos and tags.")
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
def fetch_command(tags, user, per_tag, size, model, licenses, catalog, images, workers, calls_per_hour, timeout,
                  attempts, backoff, per_page, quiet):
    """Search Flickr by tag, record each photo with all its tags, download the images.

    Needs a Flickr API key: $FLICKR_API_KEY and $FLICKR_API_SECRET, or ~/.config/lablr/flickr.json.
    Safe to interrupt (even kill): run it again and it continues where it stopped.
    """
    from .api import FetchSettings, parse_licenses
    from .downloads import Retry
    from .fetcher import default_images_dir, fetch
    from .sizes import model_input_size, preference

    input_size = model_input_size(model, size)
    settings = FetchSettings(per_tag=per_tag, per_page=per_page, licenses=parse_licenses(licenses),
                             calls_per_hour=calls_per_hour,
                             workers=workers, timeout=timeout,
                             retry=Retry(attempts, backoff, defaults.BACKOFF_CAP),
                             image_extras=preference(input_size))
    report = fetch(catalog, None if tags.strip().lower() == "none" else tags, user=user, images_dir=images,
                   settings=settings, progress=not quiet, log=lambda message: click.echo(message, err=True))
    click.echo(summary(report, catalog, images or default_images_dir(catalog), input_size, defaults.SOURCE))
    if report.failed:
        click.echo(f"{report.failed} downloads still failed after {attempts} attempts each; "
                   "run `lablr fetch` again to retry them.", err=True)
        sys.exit(1)


def summary(report, catalog, images, input_size, source) -> str:
    """What a fetch did, and where the catalog stands: photos ready, to download, sizes taken."""
    from lablr.core.data.catalog import Catalog

    db = Catalog(catalog).db
    total = dict(db.execute("select status, count(*) from photos where source = ? group by status", [source]))
    sizes = db.execute("select s.size, count(*), avg(d.bytes) from photos p join image_sizes s on s.photo_id = p.id "
                       "join downloads d on d.photo_id = p.id where p.source = ? group by s.size "
                       "order by count(*) desc", [source]).fetchall()
    taken = ", ".join(f"{size} {n} ({kb / 1e3:.0f} kB each)" for size, n, kb in sizes) or "none yet"
    return (f"{report.tags} searches: {report.found} photos found, {report.new} new. "
            f"{report.downloaded} images downloaded ({report.reused} found whole on disk), "
            f"{report.missing} gone from Flickr; {report.calls} API calls.\n"
            f"{catalog}: {total.get('ok', 0)} Flickr photos ready, {total.get('pending', 0)} to download; "
            f"images in {images}, sized for a {input_size} px model: {taken}.")


@click.command("flickr")
@click.option("--out", "-o", required=True, type=click.Path(file_okay=False),
              help="Where to write the model bundle: a new folder, or a bundle to replace.")
@click.option("--tags", default="default", show_default=True, metavar="TAG,...|default|hot[:N]|none",
              help="Tags to search, as for `lablr fetch`.")
@click.option("--user", default=None, metavar="NSID|URL|NAME",
              help="Also learn this user's own photos and tags (their NSID, a link to their photos, or URL name).")
@click.option("--per-tag", default=defaults.BUILD_PER_TAG, show_default=True, type=click.IntRange(1),
              help="Photos per tag, and of the --user.")
@click.option("--model", "-m", "base_model", default=None,
              help="The model to build on: its encoder (trained anew for the pixel VAE), tag model and scorer "
                   "(default: the default model).")
@click.option("--catalog", default=None, help="The SQLite catalog of the photos (default: OUT.db beside the bundle).")
@click.option("--licenses", default="any", show_default=True, metavar="any|cc|free|ID,NAME,...",
              help="Only photos under these licences, as for `lablr fetch`.")
@click.option("--epochs", type=click.IntRange(1), default=None, help="Training epochs (pixel VAE only).")
@click.option("--min-tag-photos", type=click.IntRange(1),
              help=f"Keep tags with at least this many photos (default: {CORE.MIN_TAG_PHOTOS}).")
@click.option("--min-train-photos", type=click.IntRange(1),
              help=f"Keep tags with at least this many training photos (default: {CORE.MIN_TRAIN_PHOTOS}).")
@click.option("--per-owner-cap", type=click.IntRange(1),
              help=f"At most this many photos of one photographer, not counting --user "
                   f"(default: {CORE.PER_OWNER_CAP}).")
@click.option("--workers", default=defaults.WORKERS, show_default=True, type=click.IntRange(1, 64),
              help="Images downloaded at once.")
@click.option("--calls-per-hour", default=defaults.CALLS_PER_HOUR, show_default=True, type=click.FloatRange(min=1),
              help="API calls allowed per hour.")
@click.option("--backoff", default=defaults.BACKOFF, show_default=True, type=click.FloatRange(min=0), hidden=True)
@click.option("--quiet", "-q", is_flag=True, help="No progress display.")
def build_flickr_command(out, tags, user, per_tag, base_model, catalog, licenses, epochs, min_tag_photos,
                         min_train_photos, per_owner_cap, workers, calls_per_hour, backoff, quiet):
    """Fetch Flickr photos, fit a model on them, evaluate it: one command to a model to serve.

    Chains `lablr fetch`, `prepare`, `train` (the pixel VAE only) and `fit`, with one progress
    display. Killed at any moment, the same command continues where it stopped.
    """
    from lablr.core.cli import print_report
    from lablr.core.data.selection import Rules, source_rules

    from .api import FetchSettings, parse_licenses
    from .building import build
    from .downloads import Retry

    settings = FetchSettings(per_tag=per_tag, licenses=parse_licenses(licenses), calls_per_hour=calls_per_hour,
                             workers=workers, retry=Retry(defaults.ATTEMPTS, backoff, defaults.BACKOFF_CAP))
    given = {"per_owner_cap": per_owner_cap, "min_tag_photos": min_tag_photos, "min_train_photos": min_train_photos}
    rules = Rules.from_dict({**source_rules(defaults.SOURCE).as_dict(),
                             **{name: value for name, value in given.items() if value is not None}})
    result = build(out, tags=None if tags.strip().lower() == "none" else tags, user=user, base_model=base_model,
                   catalog=catalog, rules=rules, settings=settings, epochs=epochs, progress=not quiet,
                   log=lambda message: click.echo(message, err=True))
    fetched = result.fetched
    click.echo(f"{result.catalog}: {fetched.new} new photos this run, {fetched.downloaded} images downloaded; "
               f"{result.train} training and {result.test} held-out photos, {len(result.model.tag_model.tags)} tags"
               f"{' (the bundle was already built from them)' if result.reused else ''}.")
    click.echo("Held-out photos (other photographers than the training ones):")
    print_report(result.model.manifest.evaluation)
    if result.own_evaluation:
        click.echo("Your own held-out photos:")
        print_report(result.own_evaluation)
    click.echo(f"Saved {out}. Serve it with:\n    lablr serve --model {out}")


@click.group("build")
def build_group():
    """Build a model from a data source in one command: `lablr build flickr`."""
