"""How fast a suggestion the user keeps removing fades: its probability after 3 removals.

    python scripts/bench_removals.py [--model openclipart-effnet] [--groups 40]

Groups of similar photos: each held-out photo of the bundle with its 4 nearest held-out
neighbours in latent space. For each group, the tag the bundle shows (probability >= the
display threshold) on the first photo that is not one of its own tags is the "wrong" one;
the user publishes the first 3 photos with their true tags, that tag shown each time and not
kept, through a real personal layer (SQLite in a temporary folder, as the server records
feedback: the log-odds shown are stored with it). Then the tag's probability on the 4th and
5th photo is measured, before and after. In process, ranked and shown as the server does.
"""

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_learning import catalog_photos  # noqa: E402
from bench_new_tags import encode  # noqa: E402

REMOVALS = 3


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="openclipart-effnet")
    parser.add_argument("--groups", type=int, default=40)
    args = parser.parse_args()

    from lablr.core import defaults
    from lablr.core.model import Model
    from lablr.core.personal.layer import PersonalLayer
    from lablr.core.personal.learning import Learning

    model = Model.load(args.model)
    held_out = set(model.manifest.data.test_keys)
    photos, latents = encode(model, [p for p in catalog_photos() if p["key"] in held_out])
    threshold = defaults.DEFAULT_MIN_PROBABILITY
    before, after = [], []
    for first in np.random.default_rng(0).permutation(len(photos))[: args.groups]:
        group = np.argsort(((latents - latents[first]) ** 2).sum(axis=1))[:REMOVALS + 2]
        shown = model.score(latents[group[:1]]).display[0]
        wrong = [k for k in np.argsort(-shown) if shown[k] >= threshold
                 and model.tag_model.tags[k] not in photos[first]["tags"]]
        if not wrong:
            continue
        tag = model.tag_model.tags[wrong[0]]
        with tempfile.TemporaryDirectory() as home:
            layer = PersonalLayer(Path(home) / "layer.sqlite", latent_dim=latents.shape[1])
            learning = Learning(model, layer)
            for i in group[:REMOVALS]:
                tags = [t for t in photos[i]["tags"] if t != tag] or ["untagged"]
                layer.record(f"photo{i}", latents[i], tags, [tag], learning.shown_logits(latents[i], [tag]))
                learning.sync()
            layer.close()
        k = model.tag_index[tag]
        before += list(model.score(latents[group[REMOVALS:]]).display[:, k])
        served = learning.model
        after += list(served.score(latents[group[REMOVALS:]]).display[:, served.tag_index[tag]])
    before, after = np.array(before), np.array(after)
    print(f"{model.name}: {len(before) // 2} groups of {REMOVALS + 2} similar held-out photos; a tag shown at "
          f">= {threshold} on the first and not its own, removed on {REMOVALS}, measured on the other 2\n")
    print("| | median probability | shown (>= threshold) |")
    print("|---|---|---|")
    for name, values in (("before", before), (f"after {REMOVALS} removals", after)):
        print(f"| {name} | {np.median(values):.3f} | {np.mean(values >= threshold):.0%} |")


if __name__ == "__main__":
    main()
