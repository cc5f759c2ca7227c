"""Rebuild the model bundles that ship with Lablr, from Debian's OpenClipart.

    python scripts/build_bundle.py                       # both: openclipart-effnet (the default) and -vae
    python scripts/build_bundle.py openclipart-vae       # the original's method only

Each bundle is rebuilt from its own recipe, the one its manifest records (parts and settings,
source and selection rules, training epochs and seed): the same pipeline as
`lablr train --like NAME`, on the same catalog.

Needs `apt-get install openclipart-png openclipart-svg`. The EfficientNet bundle trains nothing
but a PCA (it decodes at 224 px and runs the network once per photo: a few minutes); the VAE
trains for 10-20 minutes on 2 cores. Each bundle carries its encoder as a LiteRT `.tflite`, and
the calibration of its scores, fitted by cross-fitting on the training side. Both follow Lablr's
default data rules (at most 100 images per creator, tags with 50+ images, 80/20 split, 20+
training images per tag), so they are measured
on the same held-out photos, which are recorded in each manifest with the figures:
`lablr evaluate --model NAME` reproduces them.
"""

import argparse
from pathlib import Path

from lablr.core.bundle import bundled_names, bundled_root
from lablr.core.data.catalog import Catalog
from lablr.core.data.importing import import_source
from lablr.core.pipeline.recipe import Recipe
from lablr.core.pipeline.train import train

# The shipped recipes' levers are measured in docs/quality.md (scripts/measure_levers.py): for
# openclipart-effnet a 128-d PCA, a covariance shared by all tags worth 100 photos, and loglik,
# which ranks clearly better on these features; openclipart-vae is the original's method.


def build(name, work: Path, out: Path):
    recipe = Recipe.of_bundle(bundled_root() / name)  # read before `out`, the same folder, is replaced
    catalog = work / f"{recipe.source}.db"
    if Catalog(catalog).count() == 0:
        import_source(recipe.source, None, catalog)
    model = train(catalog, out, recipe=recipe, name=name, work_dir=work / f"{name}.work")
    for scorer, figures in model.manifest.evaluation.items():
        calibrated = f"  (raw ranking {figures['uncalibrated_map']:.3f})  ECE {figures['ece']:.3f}" \
            if "ece" in figures else ""
        print(f"{scorer:<12} mAP {figures['map']:.3f}  precision@5 {figures['precision_at_5']:.3f}  "
              f"recall@5 {figures['recall_at_5']:.3f}{calibrated}")
    print(f"Wrote {out}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", default=bundled_names(), choices=bundled_names(),
                        help="Bundles to build (default: all).")
    parser.add_argument("--work", type=Path, default=Path.home() / ".cache" / "lablr" / "build",
                        help="Where the catalog, decoded images and checkpoints go.")
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    for name in args.names:
        build(name, args.work, bundled_root() / name)


if __name__ == "__main__":
    main()
