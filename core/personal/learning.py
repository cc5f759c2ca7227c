"""The model a personal layer serves, kept up to date one event at a time.

`Vocabulary` says which of a photo's tags the model learns from: the bundle's own tags at once,
a new tag once `min_photos` of the user's photos carry it, while the layer holds fewer than
`max_learned` new tags; a new tag below the threshold is counted (at most `max_pending` such
tags are). It needs no latents, so `lablr personal show` uses it too.

`Learning` adds each event's latent to the sums of its tags (a tag's earlier photos too, when it
joins), counts the user's tags and keeps what they did with the suggestions they saw; then the
served model is the bundle's with those sums and the user's offsets (lablr.core.personal.prior).
Only the tags an event carries are re-derived, so a feedback costs the same whether the layer
holds ten photos or ten thousand. An undo or reset replays the events that are left.
"""

import threading
from collections import Counter
from contextlib import closing
from dataclasses import dataclass, field, replace

import numpy as np

from lablr.core import bundle, defaults
from lablr.core.personal import prior
from lablr.core.personal.layer import Event, PersonalLayer, open_for_bundle, vocabulary_tags


@dataclass
class Learned:
    """What the layer adds to a bundle's tag model."""

    photos: int = 0
    tag_photos: dict = field(default_factory=dict)  # tag -> the user's photos carrying it
    added: list = field(default_factory=list)  # new tags in the vocabulary, most used first
    pending: dict = field(default_factory=dict)  # new tag -> photos so far, not in the vocabulary yet
    held_back: dict = field(default_factory=dict)  # those of `pending` with enough photos: no room among max_learned

    def as_dict(self) -> dict:
        return {"photos": self.photos, "added_tags": self.added, "pending_tags": self.pending,
                "held_back_tags": self.held_back, "tag_photos": self.tag_photos}


class Vocabulary:
    def __init__(self, known_tags, *, min_photos: int = defaults.PERSONAL_MIN_PHOTOS,
                 max_learned: int = defaults.PERSONAL_MAX_LEARNED_TAGS,
                 max_pending: int = defaults.PERSONAL_MAX_PENDING_TAGS):
        self.known = set(known_tags)
        self.min_photos, self.max_learned, self.max_pending = min_photos, max_learned, max_pending
        self.photos = 0
        self.tag_photos = Counter()  # every tag counted: known, added and pending
        self.added = []  # in the order they joined
        self._joined = set()
        self.pending = {}  # new tag -> ids of the events carrying it so far

    def learns(self, tag: str) -> bool:
        return tag in self.known or tag in self._joined


    def add(self, event_id: int, tags) -> tuple[list[str], dict]:
        """(the tags the model learns from this photo, {tag that joins now: ids of its earlier events})."""
        self.photos += 1
        learned, joined = [], {}
        for tag in tags:
            if self.learns(tag):
                learned.append(tag)
            elif tag in self.pending or len(self.pending) < self.max_pending:
                ids = self.pending.setdefault(tag, [])
                ids.append(event_id)
                if len(ids) >= self.min_photos and len(self.added) < self.max_learned:
                    self.added.append(tag)
                    self._joined.add(tag)
                    joined[tag] = self.pending.pop(tag)[:-1]
                    learned.append(tag)
            else:
                continue  # past the bound on pending tags: not counted
            self.tag_photos[tag] += 1
        return learned, joined

    def learned(self) -> Learned:
        by_use = sorted(self.added, key=lambda tag: (-self.tag_photos[tag], tag))
        pending = sorted(self.pending, key=lambda tag: (-len(self.pending[tag]), tag))
        counts = {tag: len(self.pending[tag]) for tag in pending}
        return Learned(photos=self.photos, tag_photos=dict(sorted(self.tag_photos.items())), added=by_use,
                       pending=counts, held_back={tag: n for tag, n in counts.items() if n >= self.min_photos})


class Learning:
    """A bundle's model with one layer's events learned, served as `model` (swapped whole, never
    changed under a request that is using it)."""

    def __init__(self, base_model, layer: PersonalLayer, *, prior_photos: float | None = defaults.PERSONAL_PRIOR_PHOTOS,
                 photo_weight: int = defaults.PERSONAL_PHOTO_WEIGHT):
        self.base_model, self.layer = base_model, layer
        self.prior_photos, self.photo_weight = prior_photos, photo_weight
        trained = base_model.manifest.data.train_photos if base_model.manifest.data else 0  # none: a vocabulary's
        self.base_photos = max(trained, float(base_model.tag_model.counts.max(initial=1)))
        self._lock = threading.Lock()
        self._start()

    def _start(self):
        base = self.base_model.tag_model.copy()
        if hasattr(base, "freeze"):
            base.freeze()
        self.working = base
        # A bundle with no tags of its own (the photo vocabulary's) has no common shape to freeze: it is
        # taken from the user's photos each time they double, so that most feedback stays a small update.
        self.shape_photos = 0 if hasattr(base, "freeze") and not len(base.tags) else None
        # A tag the photo vocabulary knows (lablr.core.vocabulary) is known already: it learns from the first photo
        known = [*base.tags, *getattr(self.base_model, "vocabulary_tags", [])]
        self.vocabulary = Vocabulary(known, min_photos=self.layer.min_photos)
        self.latents = Rows(self.base_model.encoder.latent_dim)  # every photo taught, in order
        self.shown = Rows(4)  # each suggestion seen: (its photo's row, its tag, log-odds shown at, kept)
        self.shown_tags = {}  # tag -> its index in `shown`
        self.last_id, self.stamps = 0, (None, None)
        self.model, self.summary = self.base_model, self.vocabulary.learned()

    # -- keeping up with the layer ----------------------------------------------------------------

    def sync(self) -> bool:
        """Learn what was written since (by any process); True if the model changed."""
        with self._lock:
            version, removals, batches = self.layer.batches(after=self.last_id)
            if (version, removals) == self.stamps:
                return False
            if self.stamps[1] is not None and removals != self.stamps[1]:
                self._start()  # an undo or reset: the events that are left, replayed
                version, removals, batches = self.layer.batches()
            for events in batches:  # a batch at a time: a layer of many photos is never in memory whole
                self._learn(events)
            self.stamps = (version, removals)
            self._publish()
            return True

    def _learn(self, events: list[Event]):
        """Add the events' latents to their tags' sums in one update, and keep what was done with the
        suggestions they were shown."""
        latents = {event.id: event.latent for event in events}
        rows, row_tags = [], []
        for event in events:
            learned, joined = self.vocabulary.add(event.id, event.tags)
            if learned:
                rows.append(event.latent)
                row_tags.append(learned)
            for tag, earlier in joined.items():
                missing = [i for i in earlier if i not in latents]
                found = [latents[i] for i in earlier if i in latents] + (
                    list(self.layer.latents(missing)) if missing else [])
                rows += found
                row_tags += [[tag]] * len(found)
            self._observe(event)
            self.latents.extend(event.latent)
            self.last_id = event.id
        if rows:  # a photo weighted w counts as w photos: its latent added w times, still exact sums
            self.working.update(np.repeat(np.stack(rows), self.photo_weight, axis=0),
                                [tags for tags in row_tags for _ in range(self.photo_weight)])
        if self.shape_photos is not None and self.vocabulary.photos >= max(1, 2 * self.shape_photos):
            self.working.freeze()
            self.shape_photos = self.vocabulary.photos

    def _observe(self, event: Event):
        """A shown suggestion kept or removed: evidence for or against the tag near this photo."""
        if not event.suggested or not event.shown or len(event.shown) != len(event.suggested):
            return
        kept, row = set(event.tags), self.latents.size
        for tag, shown_at in zip(event.suggested, event.shown):
            if self.vocabulary.learns(tag) and shown_at is not None and np.isfinite(shown_at):
                self.shown.extend([row, self.shown_tags.setdefault(tag, len(self.shown_tags)), shown_at, tag in kept])

    def _publish(self):
        tags = self.working.tags
        user_counts = np.array([self.vocabulary.tag_photos.get(tag, 0) for tag in tags], dtype=np.float64)
        model_photos = self.base_photos + self.photo_weight * self.vocabulary.photos
        offsets = prior.prior_offsets(self.working.counts, model_photos, user_counts,
                                      self.vocabulary.photos, self.prior_photos)
        offsets = prior.Offsets(offsets, self._reactions(), self.base_model.default_scorer)
        served = self.working.snapshot() if hasattr(self.working, "snapshot") else self.working.copy()
        self.model = self.base_model.with_tag_model(served, offsets)
        self.summary = self.vocabulary.learned()  # read by requests while the next sync goes on

    def _reactions(self) -> prior.Reactions | None:
        if not self.shown.size:
            return None
        shown = self.shown.view()
        reactions = prior.Reactions(self.latents.view(), list(self.shown_tags), event=shown[:, 0].astype(int),
                                    tag=shown[:, 1].astype(int), shown_logits=shown[:, 2], kept=shown[:, 3])
        if defaults.PERSONAL_BIAS_VARIANCE is not None:
            return replace(reactions, variance=defaults.PERSONAL_BIAS_VARIANCE)
        return reactions.with_fitted_variance()

    # -- what the server and the CLI ask ------------------------------------------------------------

    def learned(self) -> Learned:
        return self.summary

    def shown_logits(self, latent, tags, *, concepts=None) -> list[float | None]:
        """The log-odds at which the served model shows these tags for a photo, without each tag's own
        bias (the bias is what the user's answer is evidence about). None where the model's scores are
        not probabilities. A model with a photo vocabulary needs the photo's `concepts` too (T,), from
        the same run of the encoder as its latent (`Model.encode_with_concepts`)."""
        model = self.model
        if model.vocabulary is None and model.default_scorer not in model.calibrations:
            return [None] * len(tags)
        if model.vocabulary is not None and concepts is None:
            raise ValueError("a model with a photo vocabulary shows probabilities of the photo's concepts too")
        concepts = None if concepts is None else np.asarray(concepts)[None]
        logits = prior.logit(model.score(latent[None], concepts=concepts, bias=False).display[0])
        index = model.tag_index
        return [None if tag not in index else float(logits[index[tag]]) for tag in tags]


class Rows:
    """A growing array of rows of one width, appended in place; a `view` is never changed by later appends."""

    def __init__(self, width: int):
        self._data, self.size = np.empty((0, width)), 0

    def extend(self, rows):
        rows = np.asarray(rows, dtype=np.float64).reshape(-1, self._data.shape[1])
        if self.size + len(rows) > len(self._data):
            grown = np.empty((max(2 * len(self._data), self.size + len(rows), 64), self._data.shape[1]))
            grown[:self.size] = self._data[:self.size]
            self._data = grown
        self._data[self.size:self.size + len(rows)] = rows
        self.size += len(rows)

    def view(self) -> np.ndarray:
        return self._data[:self.size]


def personal_model(model, enabled: bool = True):
    """A loaded Model with its user's personal layer learned (as the server serves it), or the model
    alone when `enabled` is False, it was never saved, or the user has no layer yet."""
    from lablr.core.personal.layer import carry_over, layer_path

    if not enabled or model.path is None:
        return model
    path = layer_path(model.path)
    if not path.exists() and not carry_over(model.path, path):
        return model
    layer = PersonalLayer.for_bundle(model)
    try:
        learning = Learning(model, layer)
        learning.sync()
        return learning.model
    finally:
        layer.close()


def describe(model) -> dict:
    layer, manifest = open_for_bundle(model)
    vocabulary = Vocabulary([tag for tag, _ in manifest.tags] + vocabulary_tags(bundle.resolve(model)))
    last = []
    if layer:
        with closing(layer):
            for events in layer.batches()[2]:
                for event in events:
                    vocabulary.add(event.id, event.tags)
                last = (last + events)[-5:]
    return {"model": manifest.name, "layer": str(layer.path) if layer else None,
            "min_photos": defaults.PERSONAL_MIN_PHOTOS, "max_learned_tags": vocabulary.max_learned,
            **vocabulary.learned().as_dict(),
            "last": [event.as_dict() for event in last][::-1]}
