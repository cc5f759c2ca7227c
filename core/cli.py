"""The `lablr` command."""

import atexit
import json
import os
import signal
import sys
import threading
import warnings
from contextlib import closing, contextmanager
from pathlib import Path
from types import SimpleNamespace

# Before numpy loads (plugins load below, to add their commands): Lablr's numpy work is many small
# matrix products, and a multi-threaded BLAS on busy cores spins instead (preparing the default
# model's tag statistics took 8.5 s instead of 0.8 s at load average 20).
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import click  # noqa: E402

from lablr.core import defaults  # noqa: E402
from lablr.core.errors import LablrError  # noqa: E402

CATALOG_OPTION = click.option("--catalog", default=defaults.CATALOG, show_default=True,
                              help="The SQLite catalog of photos and tags.")
OUT_OPTION = click.option("--out", "-o", required=True, type=click.Path(file_okay=False),
                          help="Where to write the model bundle: a new folder, or a bundle to replace.")
SCORER_OPTION = click.option("--scorer", default=None, help="A registered scorer (default: the model's own).")


def model_option(text="A bundle path or name."):
    return click.option("--model", "-m", default=defaults.DEFAULT_MODEL, show_default=True, help=text)


def require_catalog(path):
    """A catalog to read must be there: opening a path that is not would make an empty one."""
    if path is not None and not os.path.exists(path):
        raise LablrError(f"No catalog at {path}: import photos into one first (`lablr import`), or name yours "
                         "with --catalog.")


class LablrGroup(click.Group):
    """Prints a LablrError, or a file that cannot be read or written, as one line, never a traceback."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except LablrError as error:
            raise click.ClickException(_shown(error.message)) from None
        except KeyboardInterrupt:  # Ctrl-C where the command has no more to say (tag and learn say what was done)
            _interrupted()
        except BrokenPipeError:
            raise  # `lablr ... | head`: click leaves quietly
        except OSError as error:  # a folder that is not there, no permission, a full disk
            raise click.ClickException(_shown(f"{error.filename}: {error.strerror}." if error.filename
                                              else f"{error.strerror or error}.")) from None
        finally:
            RUN.done = True  # no eval-loop check before this store: a Ctrl-C lands above, or _on_interrupt ends it


INTERRUPTED = "Interrupted."
RUN = SimpleNamespace(done=False)  # the command has returned or failed: what is left is Python ending


def _interrupted():
    """Exit as interrupted (status 130, as a shell reports Ctrl-C), saying so in one line, not a traceback."""
    click.echo(INTERRUPTED, err=True)
    sys.exit(130)


def _on_interrupt(signum, frame):
    """Ctrl-C while `lablr` runs (main() sets this handler): KeyboardInterrupt, as Python's own handler raises it,
    for the command to stop and say so. Once the command is done, and in a __del__ (deleting a model or a progress
    bar), where Python would print it as "Exception ignored" and go on, it ends the run at once instead: else
    Python's end (joining threads, deleting objects) would print a traceback, or click "Aborted!"."""
    if RUN.done or _in_a_destructor(frame):
        _end_interrupted()
    raise KeyboardInterrupt


def _in_a_destructor(frame) -> bool:
    while frame is not None:
        if frame.f_code.co_name == "__del__":
            return True
        frame = frame.f_back
    return False


def _end_interrupted():
    """What was printed is flushed, then one line, and status 130. What Lablr writes is written beside and then
    renamed, and the layer and the catalog are SQLite, so ending here leaves nothing half-written."""
    try:
        sys.stdout.flush()
    except (OSError, ValueError, RuntimeError):  # a closed pipe, or a write this interrupted: no more to show
        pass
    os.write(sys.stderr.fileno(), f"{INTERRUPTED}\n".encode())
    os._exit(130)


def _shown(message: str) -> str:
    """An error's line with control characters escaped: a file name in it cannot break or restyle the terminal."""
    from lablr.core.photometa.tagging import printable

    return printable(message)


@click.group(cls=LablrGroup)
@click.version_option(package_name="lablr")
def cli():
    """Lablr suggests the tags that make a photo found on Flickr."""


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def plugins(as_json):
    """List every registered plugin part: kind, name, the plugin that provides it, what it is."""
    from lablr.core.plugins import all_parts

    found = all_parts()
    if as_json:
        click.echo(json.dumps([part.as_dict() for part in found], indent=2))
        return
    for part in found:
        click.echo(f"{part.kind:<11} {part.name:<16} {part.provider:<28} {part.description}".rstrip())


@cli.command("import")
@click.argument("source")
@click.argument("location", required=False)
@CATALOG_OPTION
def import_(source, location, catalog):
    """Import tagged images from SOURCE (openclipart, folder DIR, csv FILE)."""
    from lablr.core.data.importing import import_source

    report = import_source(source, location, catalog)
    click.echo(f"{report['added']} new photos in {catalog} ({report['skipped']} unreadable skipped, "
               f"{report['known']} already there); {report['total']} in all.")


RULES_HELP = ("Selection options not given are those `lablr prepare` recorded in the catalog, else the "
              "defaults for the photos' source (its plugin may change Lablr's: a split by owner, a stop-list).")


def rules_options(command):
    """The selection rules' options. Unset (None), they come from the catalog's record or the source."""
    for option in reversed([
        click.option("--per-owner-cap", type=click.IntRange(1),
                     help=f"At most this many photos of one owner or creator (default: {defaults.PER_OWNER_CAP})."),
        click.option("--min-tag-photos", type=click.IntRange(1),
                     help=f"Keep tags with at least this many photos, before the cap (default: "
                          f"{defaults.MIN_TAG_PHOTOS})."),
        click.option("--min-train-photos", type=click.IntRange(1),
                     help=f"Keep tags with at least this many training photos (default: {defaults.MIN_TRAIN_PHOTOS})."),
        click.option("--test-fraction", type=click.FloatRange(0, 1, max_open=True),
                     help=f"Share of photos held out for evaluation (default: {defaults.TEST_FRACTION})."),
        click.option("--split-by-owner/--split-by-photo", default=None,
                     help="Keep all photos of one owner on one side of the split, or split photo by photo."),
        click.option("--stop-tags", metavar="default|none|FILE",
                     help="Drop non-visual tags first: 'default' (camera makes, apps, years...), 'none', or a file "
                          "of tags, one a line."),
    ]):
        command = option(command)
    return command


def _chosen_rules(catalog, source, *, recorded=True, **options):
    """(Rules, source) for a command: its options over the catalog's record or the source's defaults."""
    from lablr.core.data.catalog import Catalog
    from lablr.core.data.selection import choose_rules, stop_tag_list

    changes = {name: value for name, value in options.items() if value is not None}
    if "stop_tags" in changes:
        changes["stop_tags"] = stop_tag_list(changes["stop_tags"])
    return choose_rules(Catalog(catalog), source, changes, recorded=recorded)


PART_OPTIONS = ("encoder", "image_size", "latent_dim", "tag_model", "scorer", "visualizer")


@cli.command(epilog=RULES_HELP)
@CATALOG_OPTION
@OUT_OPTION
@click.option("--like", default=None, metavar="NAME_OR_PATH",
              help="Build a model with this bundle's parts and settings (its recipe) from this catalog's photos.")
@click.option("--encoder", default=defaults.DEFAULT_PARTS["encoder"], show_default=True)
@click.option("--image-size", type=int, help=f"Image side (default: the encoder's; vae: {defaults.IMAGE_SIZE}).")
@click.option("--latent-dim", type=int, help=f"Latent size (default: the encoder's; vae: {defaults.LATENT_DIM}).")
@click.option("--epochs", default=defaults.EPOCHS, show_default=True, help="Training epochs (default with --like: "
              "the bundle's).")
@click.option("--tag-model", default=defaults.DEFAULT_PARTS["tag_model"], show_default=True)
@click.option("--scorer", default=defaults.DEFAULT_PARTS["scorer"], show_default=True)
@click.option("--visualizer", default=defaults.DEFAULT_PARTS["visualizer"], show_default=True)
@click.option("--source", default=None, help="Only photos imported from this source.")
@rules_options
@click.pass_context
def train(ctx, catalog, out, like, encoder, image_size, latent_dim, epochs, tag_model, scorer, visualizer, source,
          **options):
    """Train an encoder and fit the tags: a new model bundle. Interrupted? Run it again to resume."""
    from lablr.core.pipeline.recipe import Recipe
    from lablr.core.pipeline.stages import new_encoder
    from lablr.core.pipeline.train import train as run

    given = [name for name in PART_OPTIONS if _given(ctx, name)]
    if like and given:
        raise LablrError(f"--like takes every part and its settings from {like}: leave out "
                         f"{', '.join('--' + name.replace('_', '-') for name in given)}.")
    if like:
        recipe = Recipe.of_bundle(like, with_data=False)
    else:
        settings = {name: value for name, value in [("image_size", image_size), ("latent_dim", latent_dim)] if value}
        recipe = Recipe.from_options(encoder=encoder, encoder_settings=settings, tag_model=tag_model, scorer=scorer,
                                     visualizer=visualizer)
    new_encoder(recipe)  # a missing extra or a bad setting: said before the catalog is read
    require_catalog(catalog)
    rules, source = _chosen_rules(catalog, source, **options)
    model = run(catalog, out, recipe=recipe, rules=rules, source=source,
                epochs=epochs if _given(ctx, "epochs") or not like else None)
    if model is None:
        click.echo("Trained as a worker of a multi-worker job; the chief evaluates and writes the bundle.")
        return
    print_report(model.manifest.evaluation)
    click.echo(f"Saved {out}")


def _given(ctx, name) -> bool:
    return ctx.get_parameter_source(name) not in (None, click.core.ParameterSource.DEFAULT)


@cli.command(epilog=RULES_HELP)
@model_option()
@CATALOG_OPTION
@OUT_OPTION
@click.option("--add", is_flag=True, help="Add the catalog's photos to the model's tag statistics (those it does "
              "not hold yet).")
@click.option("--source", default=None, help="Only photos imported from this source.")
@click.option("--shard", default=None, metavar="I/N",
              help="Fit only shard I (0 to N-1) of the photos; --out is then a part for `lablr merge`.")
@click.option("--shards", type=click.IntRange(1), default=None,
              help="With --dask: fit N shards on the cluster (default: one per worker).")
@click.option("--dask", "scheduler", default=None, metavar="ADDRESS",
              help="Fit the shards on a Dask cluster (tcp://host:8786) and merge them: pip install 'lablr[dask]'.")
@rules_options
def fit(model, catalog, out, add, source, shard, shards, scheduler, **options):
    """Fit the tag models anew (or --add photos) with a bundle's encoder."""
    require_catalog(catalog)
    rules, source = _chosen_rules(catalog, source, **options)
    if shard or shards or scheduler:
        click.echo(_fit_sharded(model, catalog, out, add=add, source=source, shard=shard, shards=shards,
                                scheduler=scheduler, rules=rules))
        return
    from lablr.core.pipeline.fit import add_photos, refit

    if add:
        added = add_photos(model, catalog, out, rules=rules, source=source)
        click.echo(added.summary(model, catalog))
        fitted = added.model
    else:
        fitted = refit(model, catalog, out, rules=rules, source=source)
    if fitted.manifest.evaluation:
        print_report(fitted.manifest.evaluation)
    click.echo(f"Saved {out} ({len(fitted.tag_model.tags)} tags)")


def _fit_sharded(model_name, catalog_path, out, *, add, source, shard, shards, scheduler, rules) -> str:
    """`lablr fit` with --shard, or with --dask: what it did, in one line."""
    from lablr.core.pipeline.shard import fit_shard, parse_shard

    if add:
        raise LablrError("--add does not combine with --shard or --dask: merge the parts, then `lablr fit --add`.")
    if shard and (shards or scheduler):
        raise LablrError("--shard fits one part here; --dask with --shards N fits them all on a cluster: not both.")
    if shard:
        index, count = parse_shard(shard)
        part = fit_shard(model_name, catalog_path, out, (index, count), rules=rules, source=source)
        return (f"Saved part {index}/{count} at {out}: {part['photos']} of {part['data']['train_photos']} training "
                f"photos. Merge all {count} with `lablr merge PART... --out MODEL`.")
    if not scheduler:
        raise LablrError("--shards N runs on a cluster: add --dask ADDRESS, or run `lablr fit --shard I/N` for each I.")
    from lablr.core.pipeline.on_dask import fit_on_dask

    model = fit_on_dask(scheduler, model_name, catalog_path, out, shards, rules=rules, source=source)
    return f"Saved {out} ({len(model.tag_model.tags)} tags; shards fitted on {scheduler}, parts in {out}.parts)"


@cli.command()
@click.argument("parts", nargs=-1, required=True, type=click.Path(file_okay=False))
@OUT_OPTION
@click.option("--model", "-m", default=None, help="The bundle the parts were fitted with (default: as they record it).")
def merge(parts, out, model):
    """Add the tag statistics of PARTS (from `lablr fit --shard`) into one bundle."""
    from lablr.core.pipeline.shard import merge as run

    merged = run(parts, out, model_name=model)
    click.echo(f"Saved {out} ({len(merged.tag_model.tags)} tags from {len(parts)} parts)")


@cli.command()
@model_option()
@click.option("--catalog", default=None, help="Evaluate on this catalog's held-out photos "
              "(default: the photos recorded with the bundle).")
@click.option("--scorer", "scorers", multiple=True, help="Scorers to compare (default: mahalanobis and loglik).")
@click.option("--json", "as_json", is_flag=True,
              help="Print JSON (`ece`: the calibration error of the model's own scorer).")
def evaluate(model, catalog, scorers, as_json):
    """Precision@5, recall@5, mAP and calibration error on held-out photos, beside the popularity baseline.

    \b
    The bundled benchmark, on OpenClipart:
      lablr evaluate --model openclipart-effnet   (or openclipart-vae)
    The default model, photos, has no held-out photos of its own: give it
    --catalog, or see scripts/bench_photos.py.
    """
    from lablr.core.pipeline.evaluate import evaluate_bundle

    require_catalog(catalog)
    report = evaluate_bundle(model, catalog, scorers=scorers or None, cache=defaults.cache_dir())
    if as_json:
        click.echo(json.dumps(report, indent=2))
    else:
        print_report(report)


def print_report(report):
    """A report of held-out figures as a table (for plugins' commands too, e.g. `lablr build flickr`)."""
    click.echo(f"{'':<14} {'precision@5':>12} {'recall@5':>9} {'mAP':>7} {'tag mAP':>8} {'ECE top 10':>11}")
    for name, figures in report.items():
        if isinstance(figures, dict) and "map" in figures:
            ece = f"{figures['ece']:>11.3f}" if "ece" in figures else f"{'-':>11}"
            click.echo(f"{name:<14} {figures['precision_at_5']:>12.3f} {figures['recall_at_5']:>9.3f} "
                       f"{figures['map']:>7.3f} {figures.get('tag_map', float('nan')):>8.3f} {ece}")
    click.echo("mAP ranks by the calibrated probability where there is one; ECE: its expected calibration "
               "error over each photo's top 10 tags.")


NO_PERSONAL_OPTION = click.option("--no-personal", is_flag=True,
                                  help="The model alone, without what it learned from your photos.")


@cli.command()
@click.argument("images", nargs=-1, required=True, type=click.Path())
@click.option("--k", "-k", default=defaults.DEFAULT_K, show_default=True, type=click.IntRange(1, defaults.MAX_K),
              help="Tags per photo.")
@model_option()
@SCORER_OPTION
@click.option("--exclude", default="", help="Comma-separated tags the photo already has.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@NO_PERSONAL_OPTION
def suggest(images, k, model, scorer, exclude, as_json, no_personal):
    """Suggest tags for each IMAGE, best first.

    An image that cannot be read (missing, damaged, too large) gets one line on stderr and the
    others are still answered; the exit status is then 1, and 0 when every image was answered.
    """
    from lablr.core.model import Model
    from lablr.core.personal.learning import personal_model
    from lablr.core.photometa.tagging import printable
    from lablr.core.suggesting import suggest_files

    loaded = personal_model(Model.load(model), not no_personal)
    loaded.scorer(scorer)  # an unknown scorer fails before any image is read
    results = suggest_files(loaded, images, k, scorer=scorer, exclude=exclude.split(","))
    if as_json:
        click.echo(json.dumps({"model": loaded.name, "results": results}, indent=2))
    for result in results:
        name = printable(result["filename"])
        if "error" in result:
            click.echo(f"{name}: {printable(result['error']['message'])}", err=True)
        elif not as_json:
            click.echo(f"{name}: " + printable(", ".join(f"{s['tag']} ({s['score']:.2f})"
                                                         for s in result["suggestions"])))
    if any("error" in result for result in results):
        sys.exit(1)


@cli.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(), metavar="PHOTO_OR_FOLDER...")
@click.option("--k", "-k", default=defaults.TAG_K, show_default=True, type=click.IntRange(1, defaults.MAX_K),
              help="Suggestions to consider per photo.")
@click.option("--min-score", type=click.FloatRange(0, 1), default=None,
              help="Only tags scored at least this (the score shown, 0 to 1).")
@click.option("--dry-run", is_flag=True, help="Show what would be added, with scores; write nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON: per photo, the tags added and their scores.")
@click.option("--keep-mtime", is_flag=True, help="Keep each photo's modification time.")
@click.option("--sidecar", is_flag=True, help="Write NAME.xmp beside each photo and leave the photo untouched.")
@click.option("--force", is_flag=True, help="Also photos Lablr has tagged before.")
@model_option()
@SCORER_OPTION
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
@NO_PERSONAL_OPTION
def tag(paths, model, as_json, quiet, no_personal, **options):
    """Write suggested tags into each photo as XMP and IPTC keywords (XMP only in PNG and WebP).

    Keywords already there are kept; the picture and all other metadata stay as they were.
    Each photo is replaced atomically. Exit status 1 if any photo could not be read or written.
    """
    from tqdm import tqdm

    from lablr.core.model import Model
    from lablr.core.personal.learning import personal_model
    from lablr.core.photometa.tagging import (
        Options,
        describe,
        summarize,
        summary_line,
        tag_photos,
    )
    from lablr.core.progress import progress_bar

    loaded = personal_model(Model.load(model), not no_personal)
    done = []
    with progress_bar(unit="photo", shown=not quiet) as bar:
        def report(outcome):
            done.append(outcome)
            bar.update(1)
            line = None if as_json else describe(outcome)
            if line:
                tqdm.write(line, file=sys.stderr if outcome.status == "failed" else sys.stdout)
            checkpoint()

        def so_far():
            return summary_line(summarize(done), options["dry_run"])

        finish = "" if options["dry_run"] else "Each photo is as it was or fully tagged: run it again to finish."
        with warnings.catch_warnings(), _stop_between_photos(bar, done, so_far, finish) as checkpoint:
            # a library's note on a damaged file is not a line for the user: each photo ends in one
            warnings.simplefilter("ignore")  # line of Lablr's, with its reason
            outcomes = tag_photos(paths, loaded, Options(**options), report=report, start=bar.reset)
    counts = summarize(outcomes)
    if as_json:
        click.echo(json.dumps({"model": loaded.name, "dry_run": options["dry_run"], "summary": counts,
                               "photos": [o.as_dict() for o in outcomes]}, indent=2, ensure_ascii=False))
    else:
        click.echo(summary_line(counts, options["dry_run"]) if outcomes else NO_PHOTOS)
    if counts["failed"]:
        sys.exit(1)


NO_PHOTOS = (f"No photos found: in folders Lablr looks for {', '.join(defaults.TAG_SUFFIXES)} files (any case; "
             "hidden ones left out).")


@contextmanager
def _stop_between_photos(bar, done: list, summary, then: str):
    """Ctrl-C in a command that goes photo by photo stops it once the photo at hand is done (the
    yielded checkpoint, called after each, says when), and one line says what was done (exit status
    130). So the count is exact: no photo is done and left out of it. A second Ctrl-C stops at once."""
    asked = []

    def on_interrupt(signum, frame):
        if asked:
            raise KeyboardInterrupt
        asked.append(signum)

    def checkpoint():
        if asked:
            raise KeyboardInterrupt

    in_main_thread = threading.current_thread() is threading.main_thread()  # where Python takes signals
    previous = signal.signal(signal.SIGINT, on_interrupt) if in_main_thread else None
    try:
        yield checkpoint
    except KeyboardInterrupt:
        bar.close()
        total = f" of {bar.total}" if bar.total else ""
        click.echo(f"Interrupted after {len(done)}{total} photos. {summary()} {then}".rstrip(), err=True)
        sys.exit(130)
    finally:
        if previous is not None:  # None: not ours to restore (another thread, or set outside Python)
            signal.signal(signal.SIGINT, previous)


@cli.command()
@click.argument("image", type=click.Path(exists=True, dir_okay=False))
@click.option("--output", "-o", required=True, type=click.Path(dir_okay=False),
              help="A .png or .svg file: a new name, or a picture Lablr drew before.")
@click.option("--k", "-k", default=defaults.DEFAULT_K, show_default=True, type=click.IntRange(1, defaults.MAX_K),
              help="Suggested tags to highlight.")
@model_option()
@NO_PERSONAL_OPTION
def plot(image, output, k, model, no_personal):
    """Draw where IMAGE falls among the tags (those you taught too, as the web page does)."""
    from lablr.core.data import decoding as imaging
    from lablr.core.files import write_output
    from lablr.core.model import PICTURE_TYPES, Model
    from lablr.core.outputs import check_replaceable, is_lablr_picture
    from lablr.core.personal.learning import personal_model

    picture_format = Path(output).suffix.lower().lstrip(".")
    if picture_format not in PICTURE_TYPES:
        raise LablrError(f"The picture is drawn as PNG or SVG: give --output a name ending in .png or .svg, "
                         f"not {output!r}.")
    check_replaceable(output, "a picture Lablr drew", is_lablr_picture)  # before the model loads: said at once
    loaded = personal_model(Model.load(model), not no_personal)
    data = loaded.plot(imaging.load(image, loaded.image_size), k, format=picture_format)
    write_output(output, data, "a picture Lablr drew", is_lablr_picture)
    click.echo(f"Wrote {output}")


@cli.command()
@click.option("--host", default=defaults.HOST, show_default=True, help="The address to listen on.")
@click.option("--port", default=defaults.PORT, show_default=True, type=click.IntRange(1, 65535))
@model_option()
@click.option("--workers", default=1, show_default=True, type=click.IntRange(1, 64),
              help="Server processes; each loads the model once.")
@click.option("--max-body", default=defaults.MAX_BODY_BYTES, show_default=True, type=click.IntRange(1),
              help="The largest request body accepted, in bytes.")
@click.option("--access-log", is_flag=True, help="Log every request.")
@click.option("--allowed-host", "allowed_hosts", multiple=True, metavar="NAME",
              help="Also answer requests for this host name (repeatable); loopback names and --host always are.")
@click.option("--body-timeout", default=defaults.BODY_TIMEOUT, show_default=True, type=click.FloatRange(0.1, 60),
              help="Seconds a request may take to send its body; then 408.")
@click.option("--keep-alive", default=defaults.KEEP_ALIVE_TIMEOUT, show_default=True,
              type=click.FloatRange(0.1, 300),
              help="Seconds a connection may stay idle: after an answer, or before it has sent a whole request head.")
@click.option("--limit-concurrency", default=defaults.LIMIT_CONCURRENCY, show_default=True,
              type=click.IntRange(1), help="Connections and requests at once, per worker; past it, 503.")
@click.option("--no-personal", is_flag=True, help="Serve the model alone: neither use nor record what you publish.")
@click.option("--extension-id", "extension_ids", multiple=True, metavar="ID",
              help="Answer only this browser extension (its id, as chrome://extensions shows it; repeatable).")
def serve(host, port, model, workers, max_body, access_log, allowed_hosts, body_timeout, keep_alive,
          limit_concurrency, no_personal, extension_ids):
    """Serve the JSON API and the web page (http://127.0.0.1:8777 by default)."""
    from lablr.core import bundle

    path = bundle.resolve(model)  # a missing model fails here, in one line, before any worker starts
    bundle.check(path)  # and so does a damaged one, or one whose plugin or optional extra is not installed
    if not no_personal:
        from lablr.core.personal.layer import check

        check(path)  # and a personal layer that cannot be read
    from lablr.server.options import ServerOptions
    from lablr.server.run import serve as run_server

    run_server(ServerOptions(model=str(path), host=host, port=port, workers=workers, max_body_bytes=max_body,
                             access_log=access_log, allowed_hosts=tuple(allowed_hosts), body_timeout=body_timeout,
                             keep_alive=keep_alive, limit_concurrency=limit_concurrency, personal=not no_personal,
                             extension_ids=tuple(extension_ids)))


@cli.command()
@click.argument("destination", type=click.Path(dir_okay=False), metavar="FILE")
@CATALOG_OPTION
def export(destination, catalog):
    """Write the catalog as the original Lablr's path,label CSV to FILE (a new name, or such a CSV)."""
    require_catalog(catalog)
    from lablr.core.data.catalog import Catalog
    from lablr.plugins.files import write_csv

    write_csv(Catalog(catalog).photos(), destination)
    click.echo(f"Wrote {destination}")


@cli.command()
@CATALOG_OPTION
@click.option("--size", default=defaults.IMAGE_SIZE, show_default=True, type=click.IntRange(8, 1024),
              help="Image side in pixels (the encoder's --image-size).")
@click.option("--source", default=None, help="Only photos from this source (e.g. flickr).")
@rules_options
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
def prepare(catalog, size, source, quiet, **options):
    """Decode the catalog's images into the training set; record broken images, the split and its rules.

    Selection options not given are the defaults for the photos' source (its plugin may change
    Lablr's: a split by owner, a stop-list). `lablr train` and `lablr fit` use the recorded rules.
    """
    from lablr.core.data.prepare import prepare_catalog

    require_catalog(catalog)
    rules, source = _chosen_rules(catalog, source, recorded=False, **options)
    summary = prepare_catalog(catalog, size, rules, source, progress=not quiet)
    click.echo(f"Decoded {summary['decoded']} images at {size}x{size} into {summary['images']} "
               f"({summary['bytes'] / 1e6:.1f} MB); {summary['broken']} broken, marked and skipped.")
    for key, reason in summary["broken_examples"].items():
        click.echo(f"  broken: {key}: {reason}")
    owners = (f"; owners: {summary['train_owners']} training, {summary['test_owners']} held out, "
              f"{summary['owners_on_both_sides']} on both sides") if rules.split_by_owner else ""
    click.echo(f"Split: {summary['train']} training and {summary['test']} held-out photos{owners}.")
    click.echo(f"{len(summary['tags'])} tags kept: {', '.join(summary['tags'][:20])}"
               f"{' ...' if len(summary['tags']) > 20 else ''}")
    click.echo(f"Rules, recorded for lablr train and fit: {_describe(rules)}.")


def _describe(rules) -> str:
    return (f"at most {rules.per_owner_cap} photos per owner; tags with {rules.min_tag_photos}+ photos and "
            f"{rules.min_train_photos}+ training photos; {rules.test_fraction:.0%} held out, "
            f"split by {'owner' if rules.split_by_owner else 'photo'}; {len(rules.stop_tags)} stop tags")


def _add_plugin_commands():
    from lablr.core.plugins import load_plugins, pm

    load_plugins()
    pm.hook.register_commands(cli=cli)


_add_plugin_commands()


@cli.group()
def personal():
    """What Lablr learned from your photos (kept on this machine): show, learn, export, undo, reset."""


MODEL_OPTION = model_option("A bundle path or name: each model has its own layer.")


@personal.command("show")
@MODEL_OPTION
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def personal_show(model, as_json):
    """How many photos the model learned from, the tags added, the last events."""
    from lablr.core.personal.learning import describe

    report = describe(model)
    if as_json:
        click.echo(json.dumps(report, indent=2))
        return
    click.echo(f"Model {report['model']}: learned from {report['photos']} of your photos"
               f"{' (' + report['layer'] + ')' if report['layer'] else ''}.")
    used = sorted(report["tag_photos"].items(), key=lambda item: (-item[1], item[0]))
    click.echo("Your tags, by photos: " + (", ".join(f"{t} ({n})" for t, n in used[:20]) or "none")
               + (f" and {len(used) - 20} more" if len(used) > 20 else ""))
    click.echo("Tags added to its vocabulary: " + (", ".join(report["added_tags"]) or "none"))
    held_back = report["held_back_tags"]
    waiting = {t: n for t, n in report["pending_tags"].items() if t not in held_back}
    if waiting:
        click.echo(f"Waiting for {report['min_photos']} photos: " + ", ".join(f"{t} ({n})" for t, n in waiting.items()))
    if held_back:
        click.echo(f"Not added, as the model holds {report['max_learned_tags']} new tags, its limit "
                   "(LABLR_PERSONAL_MAX_LEARNED_TAGS): " + ", ".join(f"{t} ({n})" for t, n in held_back.items()))
    for event in report["last"]:
        click.echo(f"  {event['time']}  {event['photo_hash'][:12]}  {', '.join(event['tags'])}")


@personal.command("learn")
@click.argument("paths", nargs=-1, required=True, type=click.Path(), metavar="PHOTO_OR_FOLDER...")
@MODEL_OPTION
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
def personal_learn(paths, model, quiet):
    """Learn from the keywords already in your photos and their XMP sidecars (IPTC, XMP, Lightroom's
    hierarchy; not those Lablr wrote). Folders are searched recursively, hidden files left out. Offline."""
    from tqdm import tqdm

    from lablr.core.model import Model
    from lablr.core.personal.from_photos import learn_photos, problem_lines, skipped_lines, summary_line
    from lablr.core.personal.layer import PersonalLayer
    from lablr.core.progress import progress_bar

    loaded = Model.load(model)
    layer = PersonalLayer.for_bundle(loaded)
    done = []
    with closing(layer), progress_bar(unit="photo", shown=not quiet) as bar:
        def report(outcome):
            done.append(outcome)
            bar.update(1)
            for line in problem_lines(outcome):
                tqdm.write(line, file=sys.stderr)
            checkpoint()

        finish = "What was learned is kept: run it again to learn the rest (a photo counts once)."
        with _stop_between_photos(bar, done, lambda: summary_line(done), finish) as checkpoint:
            outcomes = learn_photos(paths, loaded, layer, report=report, start=bar.reset)
    photo_outcomes = [o for o in outcomes if o.status != "skipped"]
    click.echo(summary_line(photo_outcomes) if photo_outcomes else NO_PHOTOS)
    for line in skipped_lines(outcomes):
        click.echo(line)
    if any(problem_lines(o) for o in outcomes):
        sys.exit(1)


@personal.command("export")
@click.argument("destination", type=click.Path(dir_okay=False), metavar="FILE")
@MODEL_OPTION
def personal_export(destination, model):
    """Write every event (time, photo hash, latent, tags, suggested) to a JSON FILE (a new name, or an earlier
    export)."""
    from lablr.core.personal.layer import export

    click.echo(f"Wrote {export(model, destination)} events to {destination}")


@personal.command("undo")
@click.argument("count", type=click.IntRange(min=1))
@MODEL_OPTION
def personal_undo(count, model):
    """Forget the last COUNT photos: their latents leave the statistics exactly."""
    from lablr.core.personal import photos
    from lablr.core.personal.layer import undo

    undone = undo(model, count)
    for event in undone:
        click.echo(f"Forgot {event.photo_hash[:12]} ({event.time}): {', '.join(event.tags)}")
    click.echo(f"{photos(len(undone))} forgotten.")


@personal.command("reset")
@MODEL_OPTION
@click.option("--yes", is_flag=True, help="Do not ask.")
def personal_reset(model, yes):
    """Forget everything learned for this model: it serves the bundle as shipped."""
    from lablr.core.personal import photos
    from lablr.core.personal.layer import reset

    if not yes:
        click.confirm(f"Forget every photo learned for {model}?", abort=True)
    count, carried_from = reset(model)
    if carried_from and count:
        click.echo(f"{model} had learned nothing itself: it now starts empty, instead of from the layer of "
                   f"{carried_from}, which keeps its {photos(count)}.")
    else:
        click.echo(f"{photos(count)} forgotten.")


def main():
    signal.signal(signal.SIGINT, _on_interrupt)
    # Python's last steps, after the atexit functions, put SIGINT back to the system's default, which would end
    # the process as killed (status -2): by then all is written and printed, and a Ctrl-C is let pass.
    atexit.register(signal.signal, signal.SIGINT, signal.SIG_IGN)  # registered first, so it runs last
    try:
        cli(prog_name="lablr")
    finally:  # also when click stopped it before any command ran (a mistyped option)
        RUN.done = True


if __name__ == "__main__":
    sys.exit(main())
