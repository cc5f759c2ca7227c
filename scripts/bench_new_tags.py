"""How well a tag new to the model is suggested after 5 photos: through the personal layer, and before.

    python scripts/bench_new_tags.py [--model openclipart-effnet] [--draws 5]

The photos are those of OpenClipart's creators that bench_learning.py uses (images beyond the
per-creator cap). For every tag such a creator uses that the bundle does not know, with at least
6 images: 5 random images of it are taught under the new tag alone, and the tag's rank is
measured for each other image of that creator carrying it. Taught two ways, on the same draws:
through a real personal layer (SQLite in a temporary folder, lablr.core.personal.learning: the
tag sums, the user's tag frequencies as a prior, the offsets), as the server serves it; and into
the tag sums alone, as Lablr learned before the prior. Ranked as the server ranks, by the
calibrated probability.
"""

import argparse
import sys
from collections import Counter
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_learning import catalog_photos, users  # noqa: E402

SHOTS = 5


def variants(shared):
    return ((shared, "loglik", False), (shared, "loglik", True))


def encode(model, photos):
    from lablr.core.data import decoding as imaging
    from lablr.core.errors import ImageError

    kept, arrays = [], []
    for photo in photos:
        try:
            arrays.append(imaging.load(photo["path"], model.image_size))
            kept.append(photo)
        except ImageError:
            continue
    latents = np.concatenate([model.encode(np.stack(arrays[i:i + 32])) for i in range(0, len(arrays), 32)])
    return kept, latents


def ranks(model, shared, scorer, personal, latents, taught, measured, tag):
    """The new tag's rank for each measured photo, after the taught ones: through the personal layer
    as the server serves it (`personal`), or with the photos added to the tag sums alone."""
    if personal:
        served = served_after(model, latents[taught], [[tag]] * len(taught))
    else:
        tag_model = model.tag_model.copy()
        tag_model.shared = shared
        tag_model.update(latents[taught], [[tag]] * len(taught))
        served = model.with_tag_model(tag_model)
    k = served.tag_model.tags.index(tag)
    scores = served.score(latents[measured], scorer).score  # as served: calibrated, with the offsets
    return (scores > scores[:, [k]]).sum(axis=1) + 1


def served_after(model, latents, tags):
    """The model as served once a personal layer (in a temporary folder) learned these photos with their tags."""
    import tempfile

    from lablr.core.personal.layer import PersonalLayer
    from lablr.core.personal.learning import Learning

    with tempfile.TemporaryDirectory() as home:
        layer = PersonalLayer(Path(home) / "layer.sqlite", latent_dim=latents.shape[1])
        for i, (latent, own) in enumerate(zip(latents, tags)):
            layer.record(f"photo{i}", latent, list(own), None)
        learning = Learning(model, layer)
        learning.sync()
        layer.close()
    return learning.model


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="openclipart-effnet")
    parser.add_argument("--draws", type=int, default=5)
    parser.add_argument("--shared", type=float, help="The pooled covariance's weight to compare with none "
                        "(default: the bundle's own setting, or 20 if it has none).")
    args = parser.parse_args()

    from lablr.core.model import Model

    model = Model.load(args.model)
    known = set(model.tag_model.tags)
    shared = args.shared or model.tag_model.settings().get("shared") or 20.0
    found = {variant: [] for variant in variants(shared)}
    tags = 0
    for name, photos in users(model.manifest, catalog_photos(), 3)[:-1]:
        photos, latents = encode(model, photos)
        for tag, count in Counter(t for p in photos for t in p["tags"]).most_common():
            if tag in known or count < SHOTS + 1:
                continue
            tags += 1
            carrying = [i for i, p in enumerate(photos) if tag in p["tags"]]
            for draw in range(args.draws):
                order = np.random.default_rng(draw).permutation(carrying)
                for variant in found:
                    rank = ranks(model, *variant, latents, order[:SHOTS], order[SHOTS:], tag)
                    found[variant].append((np.mean(rank <= 3), np.mean(rank <= 10), np.median(rank)))
    print(f"{model.name}: {tags} new tags x {args.draws} draws, {SHOTS} photos taught each\n")
    print("| shared | scorer | taught through | in the top 3 | in the top 10 | median rank |")
    print("|---|---|---|---|---|---|")
    for (shared, scorer, personal), rows in found.items():
        rows = np.array(rows)
        how = "the personal layer (prior and offsets)" if personal else "the tag sums alone (before)"
        print(f"| {shared:g} | {scorer} | {how} | {rows[:, 0].mean():.0%} | {rows[:, 1].mean():.0%} | "
              f"{np.median(rows[:, 2]):.0f} |")


if __name__ == "__main__":
    main()
