"""The reliability plot of a bundle's calibrated scores, on its recorded held-out photos.

    python scripts/plot_reliability.py                       # the default model -> docs/reliability.png
    python scripts/plot_reliability.py --model NAME -o F.png

Each held-out photo's 10 most probable tags are binned by their shown probability; for each bin
the plot shows the share of those tags that really are the photo's own, against the mean
probability shown. A calibrated model follows the diagonal; the gap, weighted by how many tags
fall in each bin, is the expected calibration error (ECE) that `lablr evaluate` reports.
"""

import argparse
from pathlib import Path

import numpy as np

from lablr.core import defaults
from lablr.core.data.image_cache import encode_set, prepared_images
from lablr.core.model import Model
from lablr.core.pipeline import metrics
from lablr.core.pipeline.evaluate import recorded_split
from lablr.core.pipeline.metrics import relevance

ROOT = Path(__file__).resolve().parent.parent


def held_out_probabilities(model: Model):
    catalog, selection = recorded_split(model, defaults.cache_dir())
    known = set(model.tag_model.tags)
    photos = [p for p in ({**p, "tags": [t for t in p["tags"] if t in known]} for p in selection.test) if p["tags"]]
    images = prepared_images(catalog, photos, model.image_size)
    keys, latents = encode_set(model.encoder, images)
    tags_of = {p["key"]: p["tags"] for p in photos}
    return model.score(latents).display, relevance([tags_of[k] for k in keys], model.tag_model.tags)


def draw(found: dict, title: str, path: Path):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(5.2, 5.6), dpi=100)
    FigureCanvasAgg(figure)
    axes, counts = figure.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [4, 1]})
    bins = len(found["count"])
    centres = (np.arange(bins) + 0.5) / bins
    used = found["count"] > 0
    axes.plot([0, 1], [0, 1], color="#adb5bd", linestyle="--", label="perfectly calibrated")
    axes.bar(centres[used], found["accuracy"][used], width=0.9 / bins, color="#d9480f", alpha=0.75,
             label="share of these tags that are right")
    axes.plot(found["confidence"][used], found["accuracy"][used], marker="o", color="#212529", linestyle="none",
              label="at the bin's mean probability")
    axes.set_xlim(0, 1)
    axes.set_ylim(0, 1)
    axes.set_ylabel("right (share of tags)")
    axes.set_title(f"{title}\nECE over each photo's top 10: {found['ece']:.3f}", fontsize=10)
    axes.legend(loc="upper left", fontsize=8)
    counts.bar(centres, found["count"], width=0.9 / bins, color="#868e96")
    counts.set_xlabel("probability shown")
    counts.set_ylabel("tags")
    figure.tight_layout()
    figure.savefig(path)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=defaults.DEFAULT_MODEL)
    parser.add_argument("-o", "--output", type=Path, default=ROOT / "docs" / "reliability.png")
    args = parser.parse_args()
    model = Model.load(args.model)
    probabilities, relevant = held_out_probabilities(model)
    found = metrics.reliability(probabilities, relevant)
    draw(found, f"{model.name} ({model.default_scorer}), {len(relevant)} held-out images", args.output)
    for low, confidence, accuracy, count in zip(np.arange(10) / 10, found["confidence"], found["accuracy"],
                                                found["count"]):
        if count:
            print(f"{low:.1f}-{low + 0.1:.1f}: {count:5d} tags, mean probability {confidence:.3f}, "
                  f"right {accuracy:.3f}")
    print(f"ECE {found['ece']:.3f}; wrote {args.output}")


if __name__ == "__main__":
    main()
