"""How long a big personal layer takes to load, and the memory it needs, beside the bundle alone.

    python scripts/bench_layer_start.py [--events 1000] [--tags 75] [--model openclipart-effnet]

Writes a layer of EVENTS photos (random latents), each with TAGS tags new to the model drawn
from 20 x TAGS names (the red team's layer: 1,000 events of 75 new tags), in a temporary
folder, then loads it as a server does at start-up (lablr.core.personal.learning) and scores one
batch. Prints the time and the process's peak resident memory before and after.
"""

import argparse
import resource
import tempfile
import time
from pathlib import Path

import numpy as np


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="openclipart-effnet")
    parser.add_argument("--events", type=int, default=1000)
    parser.add_argument("--tags", type=int, default=75)
    args = parser.parse_args()

    from lablr.core.model import Model
    from lablr.core.personal.layer import PersonalLayer
    from lablr.core.personal.learning import Learning

    model = Model.load(args.model)
    model.score(np.zeros((1, model.encoder.latent_dim)))
    rng = np.random.default_rng(0)
    names = [f"new{i}" for i in range(20 * args.tags)]
    with tempfile.TemporaryDirectory() as home:
        layer = PersonalLayer(Path(home) / "layer.sqlite", latent_dim=model.encoder.latent_dim,
                              max_events=args.events)
        for i in range(args.events):
            layer.record(f"photo{i}", rng.normal(size=model.encoder.latent_dim),
                         list(rng.choice(names, args.tags, replace=False)), None)
        before = peak_mb()
        started = time.perf_counter()
        learning = Learning(model, layer)
        learning.sync()
        learning.model.score(rng.normal(size=(8, model.encoder.latent_dim)))
        seconds = time.perf_counter() - started
        learned = learning.learned()
        layer.close()
    print(f"{model.name}: a layer of {args.events:,} photos x {args.tags} new tags loaded and scored in "
          f"{seconds:.1f} s; {len(learned.added)} tags joined the model ({len(learning.model.tag_model.tags)} in all), "
          f"{len(learned.pending):,} waiting; peak RSS {before:.0f} MB before, {peak_mb():.0f} MB after")


if __name__ == "__main__":
    main()
