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
from lablr.core.pipeline.evaluate import held_out_report
from lablr.core.pipeline.train import data_summary, encoder_to_train, fit_model
from lablr.core.plugins import get_part

from . import defaults
from .api import FetchSettings
from .fetcher import SOURCE, fetch
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
    catalog = Path(catalog or f"{out}.db")
    rules = rules or source_rules(SOURCE)
    base_path = bundle.resolve(base_model or _default_model())
    base = bundle.check_parts(base_path)  # a missing plugin or extra fails now, not after the download
    size, encoder = base.image_size, base.parts["encoder"]
    trains = encoder.name in defaults.TRAINED_ENCODERS
    if trains:  # the VAE needs the `train` extra: said before anything is downloaded
        encoder_to_train(encoder.name, encoder.settings)
    weights = {k: v for k, v in defaults.PHASE_WEIGHTS.items() if trains or k != "Training the encoder"}
    display = progress if hasattr(progress, "phase") else Overall(weights, enabled=progress)
    try:
        fetched = fetch(catalog, tags, user=user, settings=replace(settings, image_extras=preference(size)),
                        progress=display, log=log)
        if fetched.failed:
            raise LablrError(f"{fetched.failed} images could not be downloaded after every retry; run the same "
                             "command again later: it continues where it stopped.")
        with display.phase("Decoding images", 1):
            selection, images = _prepare(catalog, size, rules, set(fetched.users))
        data = data_summary(SOURCE, rules, selection)
        fingerprint = _fingerprint(base_path, base, data, sorted(fetched.users), epochs)
        done, own_evaluation = _finished(catalog, out, fingerprint)
        model = done
        if not done:
            part = _trained_encoder(encoder, selection, images, out, epochs, display) if trains else None
            with display.phase("Fitting and evaluating", 1):
                part = part or Model.load(base_path).encoder
                model, own_evaluation = _fit_and_evaluate(part, base, selection, images, set(fetched.users),
                                                          out.name, data)
                model.save(out)
                _record_build(catalog, out, fingerprint, own_evaluation)
    finally:
        display.close()
    return BuildResult(model, out, catalog, fetched, len(selection.train), len(selection.test), bool(done),
                       own_evaluation)


def _default_model():
    from lablr.core.defaults import DEFAULT_MODEL

    return DEFAULT_MODEL


def _prepare(catalog_path, size, rules, own_owners):
    """Decode every downloaded photo once (a cache `lablr prepare` shares), then choose the split."""
    catalog = Catalog(catalog_path)
    images = prepared_images(catalog_path, catalog.photos(SOURCE), size, progress=False)
    catalog.mark_broken(sorted(images.broken))
    selection = select_for_build(catalog.photos(SOURCE), rules, own_owners)
    if not selection.train or not selection.test:
        raise LablrError(f"Too few tagged photos in {catalog_path} for these rules (each tag needs "
                         f"{rules.min_tag_photos} photos): fetch more with a higher --per-tag or more --tags.")
    catalog.save_splits({p["key"]: "train" for p in selection.train} | {p["key"]: "test" for p in selection.test},
                        rules=rules.as_dict(), source=SOURCE)
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


def _trained_encoder(encoder, selection, images, out, epochs, display):
    """A new encoder of the base model's kind and settings (the pixel VAE), trained on these photos;
    it resumes from the checkpoints in OUT.work when a run was killed."""
    part = get_part("encoder", encoder.name)(**encoder.settings)
    with display.phase("Training the encoder", 1):
        part.fit(images.subset(p["key"] for p in selection.train), work_dir=Path(f"{out}.work"), verbose=0,
                 **({"epochs": epochs} if epochs else {}))
    return part


def _fit_and_evaluate(encoder, base: bundle.Manifest, selection, images, own_owners, name, data):
    """The tag models (of the base model's kind and settings) fitted on the training photos, with
    the held-out figures; and the figures on the user's own held-out photos ({} without --user)."""
    names = base.part_names()
    model = fit_model(encoder, names["encoder"], selection, images, tag_model=names["tag_model"],
                      tag_model_settings=base.parts["tag_model"].settings, scorer=names["scorer"],
                      visualizer=names["visualizer"], name=name, data=data)
    model.manifest.evaluation = held_out_report(model, selection, images)
    own_test = [p for p in selection.test if p.get("owner") in own_owners]
    own = held_out_report(model, Selection(test=own_test), images) if own_test else {}
    return model, own


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
