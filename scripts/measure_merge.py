"""One `lablr fit` against shards fitted apart and merged, on OpenClipart with the default model.

    python scripts/measure_merge.py [--work DIR] [--shards 2]

Fits the default bundle's tag statistics on Debian's OpenClipart once, and again as N shards
merged (`lablr fit --shard`, `lablr merge`), then prints both bundles' held-out figures, their
tag model settings and calibrations, and for how many of 20 held-out photos the top 5 differ.
docs/scale.md promises the two are the same bundle up to float rounding.
"""

import argparse
from pathlib import Path

import numpy as np

from lablr.core import defaults
from lablr.core.data.catalog import Catalog
from lablr.core.data.image_cache import prepared_images
from lablr.core.data.importing import import_source
from lablr.core.data.selection import Rules, select
from lablr.core.model import Model
from lablr.core.pipeline.evaluate import evaluate_bundle
from lablr.core.pipeline.fit import refit
from lablr.core.pipeline.shard import fit_shard, merge


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=defaults.cache_dir() / "measure-merge")
    parser.add_argument("--shards", type=int, default=2)
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    catalog = args.work / "openclipart.db"
    if Catalog(catalog).count() == 0:
        import_source("openclipart", None, catalog, progress=False)
    base = Model.load(defaults.DEFAULT_MODEL)
    rules = Rules.from_dict(base.manifest.data.rules)
    one = refit(defaults.DEFAULT_MODEL, catalog, args.work / "one", rules=rules, source="openclipart")
    parts = [args.work / f"part-{i}" for i in range(args.shards)]
    for index, part in enumerate(parts):
        fit_shard(defaults.DEFAULT_MODEL, catalog, part, (index, args.shards), rules=rules, source="openclipart")
    merged = merge(parts, args.work / "merged")
    for name, model, path in (("one fit", one, args.work / "one"),
                              (f"{args.shards} shards merged", merged, args.work / "merged")):
        report = evaluate_bundle(path, catalog)
        scorer = model.default_scorer
        print(f"{name:<18} mAP {report[scorer]['map']:.3f}  ECE {report[scorer].get('ece', float('nan')):.3f}  "
              f"tag model {model.tag_model.settings()}  "
              f"calibration {model.calibrations[scorer].as_dict()}")
    test = select(Catalog(catalog).photos("openclipart"), rules).test[:20]
    images = prepared_images(catalog, test, one.image_size, progress=False)
    batch = np.concatenate([batch for batch in images.batches(64)])
    differ = sum([s.tag for s in a] != [s.tag for s in b] for a, b in zip(one.suggest(batch, 5), merged.suggest(batch, 5)))
    print(f"top 5 differs for {differ} of {len(batch)} held-out photos")


if __name__ == "__main__":
    main()
