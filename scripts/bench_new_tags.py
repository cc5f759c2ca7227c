"""How well a tag new to the model is suggested after 5 photos, under each covariance prior.

    python scripts/bench_new_tags.py [--model openclipart-effnet] [--draws 5]

The photos are those of OpenClipart's creators that bench_learning.py uses (images beyond the
per-creator cap). For every tag such a creator uses that the bundle does not know, with at least
6 images: 5 random images of it are added to a copy of the bundle's tag model under the new tag
alone, and the tag's rank is measured for each other image of that creator carrying it. The
same draws are scored with each tag's covariance shrunk towards a scaled identity alone (OAS,
`shared` 0) and also towards the pooled covariance of all tags (`shared`: worth that many
photos), under both scorers; and, for loglik, once more with the tag's popularity counted as at
least the rarest bundled tag's (a floor the scorer does not have: it shows what such a floor
would add). In process, ranked as the server ranks (by the calibrated probability when the
bundle has a calibration for the scorer, a function of the raw score and the tag's photo count).
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
    return ((0.0, "mahalanobis", False), (0.0, "loglik", False), (shared, "mahalanobis", False),
            (shared, "loglik", False), (shared, "loglik", True))


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


def ranks(model, shared, scorer, floor, latents, taught, measured, tag):
    tag_model = model.tag_model.copy()
    tag_model.shared = shared
    tag_model.update(latents[taught], [[tag]] * len(taught))
    k = tag_model.tags.index(tag)
    tag_model.centroids()  # the covariances are derived from the true counts first
    if floor:
        tag_model.counts = np.maximum(tag_model.counts, model.tag_model.counts.min())
    scores = model.with_tag_model(tag_model).score(latents[measured], scorer).score  # as served: calibrated
    return (scores > scores[:, [k]]).sum(axis=1) + 1


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
                    found[variant].append((np.mean(rank <= 10), np.median(rank)))
    print(f"{model.name}: {tags} new tags x {args.draws} draws, {SHOTS} photos taught each\n")
    print("| shared | scorer | popularity floor | in the top 10 | median rank |")
    print("|---|---|---|---|---|")
    for (shared, scorer, floor), rows in found.items():
        rows = np.array(rows)
        print(f"| {shared:g} | {scorer} | {'yes' if floor else 'no'} | {rows[:, 0].mean():.0%} | "
              f"{np.median(rows[:, 1]):.0f} |")


if __name__ == "__main__":
    main()
