"""Proof that learning helps: users the bundle never saw teach a real server through feedback.

    python scripts/bench_learning.py                           # openclipart-effnet
    python scripts/bench_learning.py --model openclipart-vae

A user's photos differ from the bundle's training data in style and in vocabulary. OpenClipart
has such users: the prolific creators, whose images beyond the per-creator cap the bundle never
saw. The three largest creators whose tags vary are taken (the machine-made series, whose
images nearly all carry one set of tags, are skipped and named), then the bundle's own
held-out photos as a control.

For each, a real `lablr serve` (with an empty personal layer in a temporary data directory)
first ranks a random half of the photos; the other half is sent to POST /api/v1/feedback with
its true tags; the first half is ranked again. mAP is computed over the bundle's own
vocabulary, so before and after rank the same tags, under both scorers. Beside it, whether the
probabilities shown mean what they say on the user's photos: the calibration error of each
photo's 10 most probable tags, the bundle's and the user's own, against the tags it carries.
"""

import argparse
import os
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))  # the helper that runs `lablr serve` on a free port

from lablr.core import defaults  # noqa: E402

SCORERS = ("loglik", "mahalanobis")
MIN_VARIETY = 0.05  # distinct tag sets per image below which a creator's images are a machine-made series


def catalog_photos():
    """Every OpenClipart image with its tags and creator, from the cached evaluation catalog."""
    from lablr.core.data.catalog import Catalog
    from lablr.core.data.importing import import_source

    path = defaults.cache_dir() / "openclipart.db"
    path.parent.mkdir(parents=True, exist_ok=True)
    photos = Catalog(path).photos("openclipart")
    if not photos:
        import_source("openclipart", None, path)
        photos = Catalog(path).photos("openclipart")
    return photos


def users(manifest, photos, count):
    """[(name, photos)]: the largest creators beyond the cap whose tags vary, then the held-out photos."""
    from lablr.core.data.selection import Rules, select

    selection = select(photos, Rules.from_dict(manifest.data.rules))
    seen = {p["key"] for p in selection.train + selection.test}
    unseen = defaultdict(list)
    for photo in photos:
        if photo["key"] not in seen and photo["tags"] and photo.get("owner"):
            unseen[photo["owner"]].append(photo)
    chosen = []
    largest_first = sorted(unseen.items(), key=lambda item: -len(item[1])) if count else []
    for owner, owned in largest_first:
        variety = len({tuple(sorted(p["tags"])) for p in owned}) / len(owned)
        if variety < MIN_VARIETY:
            print(f"skipped {owner}: {len(owned)} unseen images with {variety:.1%} distinct tag sets "
                  "(a machine-made series)")
            continue
        chosen.append((owner, owned))
        if len(chosen) == count:
            break
    return chosen + [("held-out photos of the bundle", selection.test)]


def suggestions(client, photo, scorer):
    """The server's suggestions of every tag (k = the most it gives), best first, or None if it
    refuses the image."""
    data = Path(photo["path"]).read_bytes()
    answer = client.post("/api/v1/suggest", params={"k": defaults.MAX_K, "scorer": scorer},
                         files={"image": ("photo.png", data, "image/png")})
    if answer.status_code != 200:
        return None
    return answer.json()["results"][0]["suggestions"]


def measure(client, photos, vocabulary, scorer):
    """mAP over the bundle's vocabulary, and the calibration error of what the server shows: over
    each photo's most probable tags (the bundle's and those the user added), the gap between the
    probability shown and how often the photo carries the tag."""
    from lablr.core.data.catalog import normalize_tag
    from lablr.core.pipeline.metrics import expected_calibration_error, ranking_metrics, relevance

    index = {tag: k for k, tag in enumerate(vocabulary)}
    scores, shown, kept = [], [], []
    for photo in photos:
        answer = suggestions(client, photo, scorer)
        if answer is None:
            continue
        row = np.full(len(vocabulary), -np.inf)
        for position, tag in enumerate(s["tag"] for s in answer if s["tag"] in index):
            row[index[tag]] = -position
        scores.append(row)
        shown.append({s["tag"]: s["score"] for s in answer})
        kept.append(photo["tags"])
    result = ranking_metrics(np.array(scores), relevance(kept, vocabulary))
    every_tag = sorted(set().union(*shown))
    probabilities = np.array([[row.get(tag, 0.0) for tag in every_tag] for row in shown])
    own = [[normalize_tag(tag) for tag in tags] for tags in kept]  # as the layer stores the tags taught
    result["ece"] = expected_calibration_error(probabilities, relevance(own, every_tag))
    return result


def teach(client, photos, show_first: bool):
    """Publish each photo with its true tags; with `show_first`, as the extension does: the
    suggestions it was shown (those above the display threshold) go with it."""
    recorded = 0
    for photo in photos:
        data = Path(photo["path"]).read_bytes()
        fields = {"tags": ",".join(t.replace(",", " ") for t in photo["tags"])}
        if show_first:
            answer = client.post("/api/v1/suggest", files={"image": ("photo.png", data, "image/png")})
            if answer.status_code == 200:
                fields["suggested"] = ",".join(s["tag"] for s in answer.json()["results"][0]["suggestions"]
                                               if s["score"] >= defaults.DEFAULT_MIN_PROBABILITY)
        answer = client.post("/api/v1/feedback", data=fields, files={"image": ("photo.png", data, "image/png")})
        recorded += answer.status_code == 200 and answer.json()["recorded"]
    return recorded


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="openclipart-effnet", help="A bundle trained on OpenClipart.")
    parser.add_argument("--users", type=int, default=3, help="How many creators (0: the held-out replay only).")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--shown", action="store_true",
                        help="Send with each photo the suggestions it was shown, as the extension does.")
    args = parser.parse_args()

    import httpx
    from lablr_server import running_server

    from lablr.core.bundle import read_manifest, resolve
    from lablr.core.personal import layer as personal
    from lablr.core.pipeline.metrics import ECE_TOP

    bundle = resolve(args.model)
    manifest = read_manifest(bundle)
    vocabulary = [tag for tag, _ in manifest.tags]
    chosen = users(manifest, catalog_photos(), args.users)
    rng = np.random.default_rng(args.seed)
    rows = []
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as home:
        os.environ["XDG_DATA_HOME"] = home  # the server's layer, and `personal.reset` here, live there
        with running_server(bundle, env={"XDG_DATA_HOME": home}) as (base, _), \
                httpx.Client(base_url=base, timeout=120) as client:
            for name, photos in chosen:
                personal.reset(bundle)
                order = rng.permutation(len(photos))
                taught = [photos[i] for i in order[: len(photos) // 2]]
                measured = [photos[i] for i in order[len(photos) // 2:]]
                before = {scorer: measure(client, measured, vocabulary, scorer) for scorer in SCORERS}
                recorded = teach(client, taught, args.shown)
                learned = client.get("/api/v1/personal").json()
                after = {scorer: measure(client, measured, vocabulary, scorer) for scorer in SCORERS}
                rows.append((name, recorded, len(learned["added_tags"]), before["loglik"]["photos"], before, after))
                print(f"{name}: taught {recorded} photos ({len(learned['added_tags'])} new tags joined), "
                      + "; ".join(f"{s} mAP {before[s]['map']:.3f} -> {after[s]['map']:.3f} "
                                  f"({after[s]['map'] - before[s]['map']:+.3f}, calibration error "
                                  f"{before[s]['ece']:.3f} -> {after[s]['ece']:.3f})" for s in SCORERS), flush=True)
            personal.reset(bundle)
    print(f"\n{manifest.name}, seed {args.seed}, {time.perf_counter() - started:.0f} s; mAP on the other half, "
          "over the bundle's own tags, before -> after:\n")
    print("| User | photos taught | new tags | photos measured | " + " | ".join(f"{s} mAP" for s in SCORERS)
          + "".join(f" | {s} calibration error of the top {ECE_TOP}" for s in SCORERS) + " |")
    print("|---|---|---|---|" + "---|" * 2 * len(SCORERS))
    for name, recorded, added, measured, before, after in rows:
        cells = [f"{before[s]['map']:.3f} -> {after[s]['map']:.3f} (**{after[s]['map'] - before[s]['map']:+.3f}**)"
                 for s in SCORERS]
        cells += [f"{before[s]['ece']:.3f} -> {after[s]['ece']:.3f}" for s in SCORERS]
        print(f"| {name} | {recorded} | {added} | {measured} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
