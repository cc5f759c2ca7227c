"""Fit the photo vocabulary's temperature on the TUNING photos, never on the evaluated ones.

    python scripts/fit_vocabulary_temperature.py              # prints the temperature and what it changes
    python scripts/build_bundle.py photos                     # after writing it into rules.toml's [settings]

The classifier's probabilities, summed over a tag's concepts, are the starting point. Dividing the
logits by a temperature T > 1 softens them, T < 1 sharpens them. T is chosen to minimise the log
loss of each tuning photo's 10 best tags (the ones a person is shown) against the tags written
for that photo in scripts/photo_eval/tuning.toml; the evaluation set (photos.toml) is never read.
"""

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))

from bench_photos import CONFIDENT, load_labels, locate  # noqa: E402  (the photo evaluation's own loader)

from lablr.core import defaults  # noqa: E402
from lablr.core.data import decoding  # noqa: E402
from lablr.core.data.catalog import compact_tag  # noqa: E402
from lablr.core.model import Model  # noqa: E402

TUNING = ROOT / "photo_eval" / "tuning.toml"
TEMPERATURES = np.round(np.arange(0.5, 3.01, 0.05), 2)
SHOWN = defaults.DEFAULT_K  # the tags a person is shown


def tuning_photos(model):
    """(acceptable tags, image, logits) for every tuning photo found on this machine."""
    photos = load_labels(TUNING)
    found = []
    with tempfile.TemporaryDirectory(prefix="lablr-tuning-") as scratch:
        for index, photo in enumerate(photos):
            path = locate(photo, Path(scratch), index)
            if path is not None:
                try:
                    found.append((photo.tags, decoding.load(path, model.image_size)))
                except Exception as error:  # a file the photo evaluation lists but Lablr cannot read
                    print(f"skipped {path.name}: {error}", file=sys.stderr)
    images = np.stack([image for _, image in found])
    _, logits = model.encoder.encode_with_logits(images)
    return [tags for tags, _ in found], images, logits


def shown_pairs(model, tags, images, logits, temperature):
    """(probability, right) of each photo's SHOWN best tags at this temperature."""
    model.vocabulary.temperature = temperature
    probabilities = model.vocabulary.probabilities(logits, images)
    ranking = probabilities * model.vocabulary.rank_weights()
    names = [compact_tag(tag) for tag in model.vocabulary.all_tags]
    pairs = []
    for row, acceptable in enumerate(tags):
        for column in np.argsort(-ranking[row], kind="stable")[:SHOWN]:
            pairs.append((probabilities[row, column], names[column] in acceptable))
    return np.array(pairs, dtype=float)


def log_loss(pairs):
    p = np.clip(pairs[:, 0], 1e-6, 1 - 1e-6)
    return float(-np.mean(pairs[:, 1] * np.log(p) + (1 - pairs[:, 1]) * np.log(1 - p)))


def confident(pairs):
    chosen = pairs[pairs[:, 0] >= CONFIDENT]
    return len(chosen), (float(chosen[:, 1].mean()) if len(chosen) else float("nan"))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=defaults.DEFAULT_MODEL)
    args = parser.parse_args()
    model = Model.load(args.model)
    tags, images, logits = tuning_photos(model)
    print(f"{len(tags)} tuning photos")
    losses = {float(t): log_loss(shown_pairs(model, tags, images, logits, float(t))) for t in TEMPERATURES}
    best = min(losses, key=losses.get)
    for temperature in sorted({1.0, best}):
        pairs = shown_pairs(model, tags, images, logits, temperature)
        count, right = confident(pairs)
        print(f"T = {temperature:.2f}: log loss {losses[temperature]:.4f}; {count} confident (>= {CONFIDENT}) "
              f"of the top {SHOWN}, {right:.0%} right")
    print(f"Best temperature: {best:.2f} (write it into scripts/vocabulary/rules.toml [settings])")


if __name__ == "__main__":
    main()
