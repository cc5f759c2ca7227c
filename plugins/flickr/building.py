"""`lablr build flickr`: from an API key to a model to serve, in one command.

It chains what a person would otherwise type: fetch (the photos, at the smallest size that
covers the model's input), prepare (decode them once, drop broken ones, choose the split),
train (only for an encoder that learns from the photos, the pixel VAE), fit the tag models
and evaluate them on the held-out photos. Every phase reuses the core's functions and keeps
their guarantees: the fetch resumes page by page and file by file, the decoded images are a
cache written whole, VAE training resumes from its checkpoints, and the bundle is saved
atomically and recorded with the selection it was fitted on, so a rerun after a kill at any
moment redoes only what was not finished.
"""

import hashlib
import json
import time
from collections import Counter
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from lablr.core import bundle
from lablr.core.data.catalog import Catalog
from lablr.core.data.image_cache import prepared_images
from lablr.core.data.selection import Rules, Selection, select, source_rules
from lablr.core.errors import LablrError
from lablr.core.model import Model
from lablr.core.pipeline import stages
from lablr.core.pipeline.recipe import Recipe

from . import defaults
from .api import FetchSettings
from .fetcher import fetch
from .progress import Overall
from .sizes import preference
from .tables import create_tables

NO_CAP = 10**9


@dataclass
class BuildResult:
    model: Model
    out: Path
    catalog: Path
    fetched: object  # the FetchReport
    train: int
    test: int
    reused: bool  # the bundle of an earlier run was already fitted on this selection
    own_evaluation: dict = field(default_factory=dict)  # figures on the --user's own held-out photos


def build(out, *, tags="default", user=None, base_model=None, catalog=None, rules: Rules | None = None,
          settings: FetchSettings = FetchSettings(per_tag=defaults.BUILD_PER_TAG), epochs=None, progress=True,
          log=None) -> BuildResult:
    """Fetch, prepare, (train,) fit and evaluate into the bundle `out`; safe to kill and rerun.

    `rules` default to Flickr's (the selection_rules hook). `progress`: True for one overall bar,
    False for none, or a display with phase() and close().
    """
    out = Path(out)
    bundle.check_out(out)  # before hours of downloads
    catalog = Path(catalog or f"{out}.db")
    rules = rules or source_rules(defaults.SOURCE)
    base_path = bundle.resolve(base_model or _default_model())
    base = bundle.check_parts(base_path)  # a missing plugin or extra fails now, not after the download
    recipe = Recipe.of_manifest(base, with_data=False).but(source=defaults.SOURCE, rules=rules, epochs=epochs)
    trains = recipe.parts["encoder"].name in defaults.TRAINED_ENCODERS
    if trains:  # the VAE needs the `train` extra: said before anything is downloaded
        stages.new_encoder(recipe)
    weights = {k: v for k, v in defaults.PHASE_WEIGHTS.items() if trains or k != "Training the encoder"}
    display = progress if hasattr(progress, "phase") else Overall(weights, enabled=progress)
    try:
        fetched = fetch(catalog, tags, user=user, settings=replace(settings, image_extras=preference(base.image_size)),
                        progress=display, log=log)
        if fetched.failed:
            raise LablrError(f"{fetched.failed} images could not be downloaded after every retry; run the same "
                             "command again later: it continues where it stopped.")
        with display.phase("Decoding images", 1):
            selection, images = _prepare(catalog, base.image_size, recipe, set(fetched.users))
        fingerprint = _fingerprint(base_path, base, stages.data_summary(recipe, selection), sorted(fetched.users),
                                   epochs)
        done, own_evaluation = _finished(catalog, out, fingerprint)
        model = done
        if not done:
            encoder = _trained_encoder(recipe, selection, images, out, display) if trains else None
            with display.phase("Fitting and evaluating", 1):
                encoder = encoder or Model.load(base_path).encoder
                model = stages.fit_and_evaluate(recipe, encoder, selection, images, name=out.name)
                own_evaluation = _own_evaluation(model, selection, images, set(fetched.users))
                model.save(out)
                _record_build(catalog, out, fingerprint, own_evaluation)
    finally:
        display.close()
    return BuildResult(model, out, catalog, fetched, len(selection.train), len(selection.test), bool(done),
                       own_evaluation)


def _default_model():
    from lablr.core.defaults import DEFAULT_MODEL

    return DEFAULT_MODEL


def _prepare(catalog_path, size, recipe: Recipe, own_owners):
    """Decode every downloaded photo once (a cache `lablr prepare` shares), then choose the split."""
    catalog = Catalog(catalog_path)
    images = prepared_images(catalog_path, catalog.photos(defaults.SOURCE), size, progress=False)
    catalog.mark_broken(sorted(images.broken))
    selection = select_for_build(catalog.photos(defaults.SOURCE), recipe.rules, own_owners)
    if not selection.train or not selection.test:
        raise LablrError(f"Too few tagged photos in {catalog_path} for these rules (each tag needs "
                         f"{recipe.rules.min_tag_photos} photos): fetch more with a higher --per-tag or more --tags.")
    stages.record_split(catalog_path, selection, recipe)
    return selection, images


def select_for_build(photos, rules: Rules, own_owners=frozenset()) -> Selection:
    """Flickr's rules for everyone's photos; a --user's own photos uncapped, split photo by photo,
    and their tags learnt from a few photos, so the model speaks both vocabularies."""
    if not own_owners:
        return select(photos, rules)
    theirs = select([p for p in photos if p.get("owner") not in own_owners], rules)
    own_rules = replace(rules, per_owner_cap=NO_CAP, split_by_owner=False,
                        min_tag_photos=min(rules.min_tag_photos, defaults.OWN_MIN_TAG_PHOTOS),
                        min_train_photos=min(rules.min_train_photos, defaults.OWN_MIN_TRAIN_PHOTOS))
    mine = select([p for p in photos if p.get("owner") in own_owners], own_rules)
    counts = Counter(theirs.counts) + Counter(mine.counts)
    return Selection(train=theirs.train + mine.train, test=theirs.test + mine.test,
                     tags=sorted(counts, key=lambda t: (-counts[t], t)), counts=dict(counts))


def _trained_encoder(recipe: Recipe, selection, images, out, display):
    """A new encoder of the base model's kind and settings (the pixel VAE), trained on these photos;
    it resumes from the checkpoints in OUT.work when a run was killed."""
    encoder = stages.new_encoder(recipe)
    with display.phase("Training the encoder", 1):
        stages.train_encoder(encoder, recipe, images, selection, Path(f"{out}.work"), progress=False)
    return encoder


def _own_evaluation(model, selection, images, own_owners) -> dict:
    """The figures on the user's own held-out photos ({} without --user)."""
    own_test = [p for p in selection.test if p.get("owner") in own_owners]
    return stages.held_out_report(model, Selection(test=own_test), images) if own_test else {}


def _fingerprint(base_path, base: bundle.Manifest, data, own_owners, epochs) -> str:
    """What the bundle is a function of: the base model, the photos on each side, the rules."""
    text = json.dumps([base.files, base_path.name, asdict(data), own_owners, epochs], sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


def _finished(catalog_path, out: Path, fingerprint) -> tuple[Model | None, dict]:
    """The bundle an earlier run saved from the same inputs (its save is atomic, and recorded in the
    catalog's `builds` table after it), with its figures on the user's own photos."""
    db = Catalog(catalog_path).db
    create_tables(db)
    row = db.execute("select fingerprint, own_evaluation from builds where out = ?", [str(out.absolute())]).fetchone()
    if not row or row[0] != fingerprint:
        return None, {}
    try:
        return Model.load(out), json.loads(row[1] or "{}")
    except LablrError:
        return None, {}


def _record_build(catalog_path, out: Path, fingerprint, own_evaluation):
    db = Catalog(catalog_path).db
    with db.atomic():
        db.execute("insert or replace into builds values (?, ?, ?, ?)",
                   [str(out.absolute()), fingerprint, json.dumps(own_evaluation), _now()])


def _now():
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
