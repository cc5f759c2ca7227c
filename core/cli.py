"""The `lablr` command."""

import json
import os
import sys
from pathlib import Path

import click

from . import defaults
from .errors import LablrError

CATALOG_HELP = "The SQLite catalog of photos and tags."
DEFAULT_CATALOG = os.environ.get("LABLR_CATALOG", "lablr.db")



class LablrGroup(click.Group):
    """Prints a LablrError as one line, never a traceback."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except LablrError as error:
            raise click.ClickException(error.message) from None


@click.group(cls=LablrGroup)
@click.version_option(package_name="lablr")
def cli():
    """Lablr suggests the tags that make a photo found on Flickr."""


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def plugins(as_json):
    """List every registered plugin part: kind, name, and the module that provides it."""
    from .plugins import all_parts

    rows = [{"kind": p.kind, "name": p.name, "plugin": p.plugin} for p in all_parts()]
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    for row in rows:
        click.echo(f"{row['kind']:<11} {row['name']:<16} {row['plugin']}")


@cli.command("import")
@click.argument("source")
@click.argument("location", required=False)
@click.option("--catalog", default=DEFAULT_CATALOG, show_default=True, help=CATALOG_HELP)
def import_(source, location, catalog):
    """Import tagged images from SOURCE (openclipart, folder DIR, csv FILE)."""
    from .importing import import_source

    report = import_source(source, location, catalog)
    click.echo(f"{report['added']} new photos in {catalog} ({report['skipped']} unreadable skipped, "
               f"{report['known']} already there); {report['total']} in all.")


def _rules(per_owner_cap, min_tag_photos, min_train_photos, test_fraction, split_by_owner, stop_tags=None):
    from .preparing import stop_tag_list
    from .selection import Rules

    return Rules(per_owner_cap=per_owner_cap, min_tag_photos=min_tag_photos, min_train_photos=min_train_photos,
                 test_fraction=test_fraction, split_by_owner=split_by_owner, stop_tags=stop_tag_list(stop_tags))


def rules_options(command):
    for option in reversed([
        click.option("--per-owner-cap", default=defaults.PER_OWNER_CAP, show_default=True,
                     help="At most this many photos of one owner or creator."),
        click.option("--min-tag-photos", default=defaults.MIN_TAG_PHOTOS, show_default=True,
                     help="Keep tags with at least this many photos (before the cap)."),
        click.option("--min-train-photos", default=defaults.MIN_TRAIN_PHOTOS, show_default=True,
                     help="Keep tags with at least this many training photos."),
        click.option("--test-fraction", default=defaults.TEST_FRACTION, show_default=True,
                     help="Share of photos held out for evaluation."),
        click.option("--split-by-owner", is_flag=True, help="Keep all photos of one owner on one side."),
        click.option("--stop-tags", default=None, metavar="default|none|FILE",
                     help="Drop non-visual tags first: 'default' (camera makes, apps, years...), or a file of tags."),
    ]):
        command = option(command)
    return command


@cli.command()
@click.option("--catalog", default=DEFAULT_CATALOG, show_default=True, help=CATALOG_HELP)
@click.option("--out", "-o", required=True, type=click.Path(file_okay=False), help="Where to write the model bundle.")
@click.option("--encoder", default=defaults.DEFAULT_PARTS["encoder"], show_default=True)
@click.option("--image-size", type=int, help=f"Image side (default: the encoder's; vae: {defaults.IMAGE_SIZE}).")
@click.option("--latent-dim", type=int, help=f"Latent size (default: the encoder's; vae: {defaults.LATENT_DIM}).")
@click.option("--epochs", default=defaults.EPOCHS, show_default=True)
@click.option("--tag-model", default=defaults.DEFAULT_PARTS["tag_model"], show_default=True)
@click.option("--scorer", default=defaults.DEFAULT_PARTS["scorer"], show_default=True)
@click.option("--visualizer", default=defaults.DEFAULT_PARTS["visualizer"], show_default=True)
@click.option("--source", default=None, help="Only photos imported from this source.")
@rules_options
def train(catalog, out, encoder, image_size, latent_dim, epochs, tag_model, scorer, visualizer, source, **rules):
    """Train an encoder and fit the tags: a new model bundle. Interrupted? Run it again to resume."""
    from .training import train as run

    settings = {name: value for name, value in [("image_size", image_size), ("latent_dim", latent_dim)] if value}
    model = run(catalog, out, encoder=encoder, encoder_settings=settings,
                tag_model=tag_model, scorer=scorer, visualizer=visualizer, rules=_rules(**rules),
                epochs=epochs, source=source)
    _print_report(model.manifest["evaluation"])
    click.echo(f"Saved {out}")


@cli.command()
@click.option("--model", "-m", default=defaults.DEFAULT_MODEL, show_default=True, help="A bundle path or name.")
@click.option("--catalog", default=DEFAULT_CATALOG, show_default=True, help=CATALOG_HELP)
@click.option("--out", "-o", required=True, type=click.Path(file_okay=False), help="Where to write the new bundle.")
@click.option("--add", is_flag=True, help="Add the catalog's photos to the model's tag statistics.")
@click.option("--source", default=None, help="Only photos imported from this source.")
@rules_options
def fit(model, catalog, out, add, source, **rules):
    """Fit the tag models anew (or --add photos) with a bundle's encoder."""
    from .fitting import refit

    fitted = refit(model, catalog, out, add=add, rules=_rules(**rules), source=source)
    if "evaluation" in fitted.manifest:
        _print_report(fitted.manifest["evaluation"])
    click.echo(f"Saved {out} ({len(fitted.tag_model.tags)} tags)")


@cli.command()
@click.option("--model", "-m", default=defaults.DEFAULT_MODEL, show_default=True, help="A bundle path or name.")
@click.option("--catalog", default=None, help="Evaluate on this catalog's held-out photos "
              "(default: the photos recorded with the bundle).")
@click.option("--scorer", "scorers", multiple=True, help="Scorers to compare (default: mahalanobis and loglik).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def evaluate(model, catalog, scorers, as_json):
    """Precision@5, recall@5 and mAP on held-out photos, beside the popularity baseline."""
    from .fitting import evaluate_bundle

    report = evaluate_bundle(model, catalog, scorers=scorers or None, cache=defaults.cache_dir())
    if as_json:
        click.echo(json.dumps(report, indent=2))
    else:
        _print_report(report)


def _print_report(report):
    click.echo(f"{'':<14} {'precision@5':>12} {'recall@5':>9} {'mAP':>7} {'tag mAP':>8}")
    for name, figures in report.items():
        if isinstance(figures, dict) and "map" in figures:
            click.echo(f"{name:<14} {figures['precision_at_5']:>12.3f} {figures['recall_at_5']:>9.3f} "
                       f"{figures['map']:>7.3f} {figures.get('tag_map', float('nan')):>8.3f}")


@cli.command()
@click.argument("images", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("--k", "-k", default=defaults.DEFAULT_K, show_default=True, type=click.IntRange(1, defaults.MAX_K))
@click.option("--model", "-m", default=defaults.DEFAULT_MODEL, show_default=True, help="A bundle path or name.")
@click.option("--scorer", default=None, help="A registered scorer (default: the model's own).")
@click.option("--exclude", default="", help="Comma-separated tags the photo already has.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def suggest(images, k, model, scorer, exclude, as_json):
    """Suggest tags for each IMAGE, best first."""
    import numpy as np

    from . import images as imaging
    from .model import Model

    loaded = Model.load(model)
    arrays = np.stack([imaging.load(path, loaded.image_size) for path in images])
    excluded = [t.strip() for t in exclude.split(",") if t.strip()]
    results = loaded.suggest(arrays, k, scorer=scorer, exclude=excluded)
    if as_json:
        click.echo(json.dumps({"model": loaded.name, "results": [
            {"filename": path, "suggestions": [s.as_dict() for s in found]} for path, found in zip(images, results)
        ]}, indent=2))
        return
    for path, found in zip(images, results):
        click.echo(f"{path}: " + ", ".join(f"{s.tag} ({s.score:.2f})" for s in found))


@cli.command()
@click.argument("image", type=click.Path(exists=True, dir_okay=False))
@click.option("--output", "-o", required=True, type=click.Path(dir_okay=False), help="A .png or .svg file.")
@click.option("--k", "-k", default=defaults.DEFAULT_K, show_default=True, type=click.IntRange(1, defaults.MAX_K))
@click.option("--model", "-m", default=defaults.DEFAULT_MODEL, show_default=True, help="A bundle path or name.")
def plot(image, output, k, model):
    """Draw where IMAGE falls among the tags."""
    from . import images as imaging
    from .model import Model

    picture_format = "svg" if output.lower().endswith(".svg") else "png"
    loaded = Model.load(model)
    data = loaded.plot(imaging.load(image, loaded.image_size), k, format=picture_format)
    partial = Path(output + ".partial")
    partial.write_bytes(data)
    partial.replace(output)
    click.echo(f"Wrote {output}")


@cli.command()
@click.option("--host", default=defaults.HOST, show_default=True, help="The address to listen on.")
@click.option("--port", default=defaults.PORT, show_default=True, type=click.IntRange(1, 65535))
@click.option("--model", "-m", default=defaults.DEFAULT_MODEL, show_default=True, help="A bundle path or name.")
@click.option("--workers", default=1, show_default=True, type=click.IntRange(1, 64),
              help="Server processes; each loads the model once.")
@click.option("--max-body", default=defaults.MAX_BODY_BYTES, show_default=True, type=click.IntRange(1),
              help="The largest request body accepted, in bytes.")
@click.option("--access-log", is_flag=True, help="Log every request.")
@click.option("--no-personal", is_flag=True, help="Serve the model alone: neither use nor record what you publish.")
def serve(host, port, model, workers, max_body, access_log, no_personal):
    """Serve the JSON API and the web page (http://127.0.0.1:8777 by default)."""
    from .bundle import check_parts, resolve

    path = resolve(model)  # a missing model fails here, in one line, before any worker starts
    check_parts(path)  # and so does a model whose plugin or optional extra is not installed
    from lablr.server.run import serve as run_server

    run_server(host=host, port=port, model=path, workers=workers, max_body_bytes=max_body, access_log=access_log,
               personal=not no_personal)


@cli.command()
@click.argument("destination", type=click.Path(dir_okay=False))
@click.option("--catalog", default=DEFAULT_CATALOG, show_default=True, help=CATALOG_HELP)
def export(destination, catalog):
    """Write the catalog as the original Lablr's path,label CSV."""
    from lablr.plugins.files import write_csv

    from .catalog import Catalog

    write_csv(Catalog(catalog).photos(), destination)
    click.echo(f"Wrote {destination}")


@cli.command()
@click.option("--tags", default="default", show_default=True, metavar="TAG,...|default|hot[:N]",
              help="Tags to search: a comma-separated list, 'default' (the original Lablr's 45 popular tags), "
                   "or 'hot' (Flickr's hot list now; hot:N for N of them).")
@click.option("--per-tag", default=defaults.FLICKR_PER_TAG, show_default=True, type=click.IntRange(1),
              help="Photos to record per tag (Flickr returns at most 4,000 per search).")
@click.option("--licenses", default="any", show_default=True, metavar="any|cc|free|ID,NAME,...",
              help="Only photos under these licences: Flickr's numbers or names (by, by-sa, cc0, ...); "
                   "'cc' any Creative Commons, 'free' those that allow reuse with credit or none needed.")
@click.option("--catalog", default=DEFAULT_CATALOG, show_default=True, help=CATALOG_HELP)
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
def fetch(tags, per_tag, licenses, catalog, images, workers, calls_per_hour, timeout, attempts, backoff, per_page,
          quiet):
    """Search Flickr by tag, record each photo with all its tags, download the images.

    Needs a Flickr API key: $FLICKR_API_KEY and $FLICKR_API_SECRET, or ~/.config/lablr/flickr.json.
    Safe to interrupt (even kill): run it again and it continues where it stopped.
    """
    from lablr.plugins.flickr import FetchSettings, default_images_dir, fetch as run, parse_licenses

    from .fetching import Retry

    settings = FetchSettings(per_tag=per_tag, per_page=per_page, licenses=parse_licenses(licenses),
                             calls_per_hour=calls_per_hour,
                             workers=workers, timeout=timeout,
                             retry=Retry(attempts, backoff, defaults.FLICKR_BACKOFF_CAP))
    report = run(catalog, tags, images_dir=images, settings=settings, progress=not quiet,
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
    from .catalog import Catalog

    rows = Catalog(catalog).db.execute("select status, count(*) from photos where source = ? group by status",
                                       [source]).fetchall()
    return dict(rows)


@cli.command()
@click.option("--catalog", default=DEFAULT_CATALOG, show_default=True, help=CATALOG_HELP)
@click.option("--size", default=defaults.IMAGE_SIZE, show_default=True, type=click.IntRange(8, 1024),
              help="Image side in pixels (the encoder's --image-size).")
@click.option("--source", default=None, help="Only photos from this source (e.g. flickr).")
@click.option("--stop-tags", default="default", show_default=True, metavar="default|none|FILE",
              help="Drop non-visual tags (camera makes, apps, years...): Lablr's list, none, or a file of tags.")
@click.option("--split-by-owner/--split-by-photo", default=True, show_default=True,
              help="Keep all photos of one owner on one side of the split.")
@click.option("--per-owner-cap", default=defaults.PER_OWNER_CAP, show_default=True)
@click.option("--min-tag-photos", default=defaults.MIN_TAG_PHOTOS, show_default=True)
@click.option("--min-train-photos", default=defaults.MIN_TRAIN_PHOTOS, show_default=True)
@click.option("--test-fraction", default=defaults.TEST_FRACTION, show_default=True)
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
def prepare(catalog, size, source, stop_tags, split_by_owner, per_owner_cap, min_tag_photos, min_train_photos,
            test_fraction, quiet):
    """Decode the catalog's images into the training set; record broken images and the split."""
    from .preparing import prepare_catalog

    rules = _rules(per_owner_cap, min_tag_photos, min_train_photos, test_fraction, split_by_owner, stop_tags)
    summary = prepare_catalog(catalog, size, rules, source, progress=not quiet)
    click.echo(f"Decoded {summary['decoded']} images at {size}x{size} into {summary['images']} "
               f"({summary['bytes'] / 1e6:.1f} MB); {summary['broken']} broken, marked and skipped.")
    for key, reason in summary["broken_examples"].items():
        click.echo(f"  broken: {key}: {reason}")
    owners = (f"; owners: {summary['train_owners']} training, {summary['test_owners']} held out, "
              f"{summary['owners_on_both_sides']} on both sides") if split_by_owner else ""
    click.echo(f"Split: {summary['train']} training and {summary['test']} held-out photos{owners}.")
    click.echo(f"{len(summary['tags'])} tags kept: {', '.join(summary['tags'][:20])}"
               f"{' ...' if len(summary['tags']) > 20 else ''}")
    options = [f"--catalog {catalog}", *([f"--source {source}"] if source else []),
               *(["--split-by-owner"] if split_by_owner else []), f"--stop-tags {stop_tags}",
               *([f"--image-size {size}"] if size != defaults.IMAGE_SIZE else [])]
    for name, value, default in [("per-owner-cap", per_owner_cap, defaults.PER_OWNER_CAP),
                                 ("min-tag-photos", min_tag_photos, defaults.MIN_TAG_PHOTOS),
                                 ("min-train-photos", min_train_photos, defaults.MIN_TRAIN_PHOTOS),
                                 ("test-fraction", test_fraction, defaults.TEST_FRACTION)]:
        if value != default:
            options.append(f"--{name} {value}")
    click.echo("Next: lablr train " + " ".join(options) + " --out MODEL")


@cli.group()
def personal():
    """What Lablr learned from the photos you published (kept on this machine): show, export, undo, reset."""


MODEL_OPTION = click.option("--model", "-m", default=defaults.DEFAULT_MODEL, show_default=True,
                            help="A bundle path or name: each model has its own layer.")


@personal.command("show")
@MODEL_OPTION
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def personal_show(model, as_json):
    """How many photos the model learned from, the tags added, the last events."""
    from .personal import describe

    report = describe(model)
    if as_json:
        click.echo(json.dumps(report, indent=2))
        return
    click.echo(f"Model {report['model']}: learned from {report['photos']} of your photos"
               f"{' (' + report['layer'] + ')' if report['layer'] else ''}.")
    click.echo("Tags added: " + (", ".join(report["added_tags"]) or "none"))
    if report["pending_tags"]:
        click.echo(f"Waiting for {report['min_photos']} photos: "
                   + ", ".join(f"{t} ({n})" for t, n in report["pending_tags"].items()))
    for event in report["last"]:
        click.echo(f"  {event['time']}  {event['photo_hash'][:12]}  {', '.join(event['tags'])}")


@personal.command("export")
@click.argument("destination", type=click.Path(dir_okay=False))
@MODEL_OPTION
def personal_export(destination, model):
    """Write every event (time, photo hash, latent, tags, suggested) to a JSON FILE."""
    from .personal import export

    click.echo(f"Wrote {export(model, destination)} events to {destination}")


@personal.command("undo")
@click.argument("count", type=click.IntRange(min=1))
@MODEL_OPTION
def personal_undo(count, model):
    """Forget the last COUNT photos: their latents leave the statistics exactly."""
    from .personal import undo

    undone = undo(model, count)
    for event in undone:
        click.echo(f"Forgot {event.photo_hash[:12]} ({event.time}): {', '.join(event.tags)}")
    click.echo(f"{len(undone)} photos forgotten.")


@personal.command("reset")
@MODEL_OPTION
@click.option("--yes", is_flag=True, help="Do not ask.")
def personal_reset(model, yes):
    """Forget everything learned for this model: it serves the bundle as shipped."""
    from .personal import reset

    if not yes:
        click.confirm(f"Forget every photo learned for {model}?", abort=True)
    click.echo(f"{reset(model)} photos forgotten.")


def main():
    cli(prog_name="lablr")


if __name__ == "__main__":
    sys.exit(main())
