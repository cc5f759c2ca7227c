"""How fast a suggestion the user keeps removing fades: its probability after 3 removals.

    python scripts/bench_removals.py [--model openclipart-effnet] [--groups 40]
    python scripts/bench_removals.py --model photos --photos      # the default, on real photographs

Groups of similar photos: each photo with its 4 nearest neighbours in latent space, among the
bundle's held-out photos (OpenClipart) or, with --photos, the labelled photographs of
scripts/photo_eval/photos.toml. For each group, the tag the model shows (probability >= the
display threshold) on the first photo that is not one of its own (acceptable) tags is the
"wrong" one; the user publishes the first 3 photos with their true tags, that tag shown each
time and not kept, through a real personal layer (SQLite in a temporary folder, as the server
records feedback: the log-odds shown are stored with it). Then the tag's probability on the 4th
and 5th photo is measured, before and after. In process, ranked and shown as the server does.
"""

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

REMOVALS = 3


def held_out(model):
    """(images, tag sets) of the bundle's held-out OpenClipart photos."""
    from bench_learning import catalog_photos

    keys = set(model.manifest.data.test_keys)
    return readable(model, [(p["path"], set(p["tags"])) for p in catalog_photos() if p["key"] in keys])


def photographs(model, scratch):
    """(images, acceptable tag sets) of the labelled photographs found on this machine."""
    from bench_photos import load_labels, locate

    found = [(locate(photo, Path(scratch), i), photo.tags) for i, photo in enumerate(load_labels())]
    return readable(model, [(path, tags) for path, tags in found if path is not None])


def readable(model, files):
    from lablr.core.data import decoding as imaging
    from lablr.core.errors import ImageError

    images, tags = [], []
    for path, own in files:
        try:
            images.append(imaging.load(path, model.image_size))
            tags.append(own)
        except ImageError:
            continue
    return np.stack(images), tags


def own(tag, tags) -> bool:
    from lablr.core.data.catalog import compact_tag

    return tag in tags or compact_tag(tag) in tags


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="openclipart-effnet")
    parser.add_argument("--photos", action="store_true", help="Groups of the labelled photographs instead.")
    parser.add_argument("--groups", type=int, default=40)
    args = parser.parse_args()

    from lablr.core import defaults
    from lablr.core.model import Model
    from lablr.core.personal.layer import PersonalLayer
    from lablr.core.personal.learning import Learning

    model = Model.load(args.model)
    with tempfile.TemporaryDirectory() as scratch:
        images, tags = photographs(model, scratch) if args.photos else held_out(model)
    latents, concepts = model.encode_with_concepts(images)

    def shown(served, rows):
        return served.score(latents[rows], concepts=None if concepts is None else concepts[rows]).display

    def published(i):
        """An OpenClipart photo is published with its own tags; a labelled photograph's acceptable tags
        are sets of synonyms, so with the suggestions it is shown that are acceptable."""
        if not args.photos:
            return sorted(tags[i])
        probability = shown(model, [i])[0]
        return [t for k, t in enumerate(model.tags) if probability[k] >= threshold and own(t, tags[i])]

    threshold = defaults.DEFAULT_MIN_PROBABILITY
    before, after = [], []
    for first in np.random.default_rng(0).permutation(len(images))[: args.groups]:
        group = np.argsort(((latents - latents[first]) ** 2).sum(axis=1))[:REMOVALS + 2]
        probability = shown(model, group[:1])[0]
        wrong = [k for k in np.argsort(-probability) if probability[k] >= threshold
                 and not own(model.tags[k], tags[first])]
        if not wrong:
            continue
        tag = model.tags[wrong[0]]
        with tempfile.TemporaryDirectory() as home:
            layer = PersonalLayer(Path(home) / "layer.sqlite", latent_dim=latents.shape[1])
            learning = Learning(model, layer)
            for i in group[:REMOVALS]:
                kept = [t for t in published(i) if t != tag] or ["untagged"]
                layer.record(f"photo{i}", latents[i], kept, [tag],
                             learning.shown_logits(latents[i], [tag], concepts=None if concepts is None else concepts[i]))
                learning.sync()
            layer.close()
        before += list(shown(model, group[REMOVALS:])[:, model.tag_index[tag]])
        served = learning.model
        after += list(shown(served, group[REMOVALS:])[:, served.tag_index[tag]])
    before, after = np.array(before), np.array(after)
    kind = "labelled photographs" if args.photos else "held-out photos"
    print(f"{model.name}: {len(before) // 2} groups of {REMOVALS + 2} similar {kind}; a tag shown at "
          f">= {threshold} on the first and not its own, removed on {REMOVALS}, measured on the other 2\n")
    print("| | median probability | shown (>= threshold) |")
    print("|---|---|---|")
    for name, values in (("before", before), (f"after {REMOVALS} removals", after)):
        print(f"| {name} | {np.median(values):.3f} | {np.mean(values >= threshold):.0%} |")


if __name__ == "__main__":
    main()
