"""Rebuild the default model bundle that ships with Lablr, from Debian's OpenClipart.

    python scripts/build_default_model.py            # writes core/bundles/openclipart-vae

Needs `apt-get install openclipart-png openclipart-svg`. Takes a few minutes on 2 cores.
The data rules are Lablr's defaults (at most 100 images per creator, tags with 50+ images,
80/20 split, 20+ training images per tag); the held-out photos and the evaluation are
recorded in the bundle's manifest, so `lablr evaluate` reproduces the figures.
"""

import argparse
from pathlib import Path

from lablr.core import defaults
from lablr.core.bundle import bundled_root
from lablr.core.catalog import Catalog
from lablr.core.importing import import_source
from lablr.core.training import train


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path.home() / ".cache" / "lablr" / "build",
                        help="Where the catalog, decoded images and checkpoints go.")
    parser.add_argument("--out", type=Path, default=bundled_root() / defaults.DEFAULT_MODEL)
    parser.add_argument("--epochs", type=int, default=defaults.EPOCHS)
    parser.add_argument("--beta", type=float, default=1.0)
    parser.add_argument("--latent-dim", type=int, default=defaults.LATENT_DIM)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    args.work.mkdir(parents=True, exist_ok=True)
    catalog = args.work / "openclipart.db"
    if Catalog(catalog).count() == 0:
        import_source("openclipart", None, catalog)
    settings = {"image_size": defaults.IMAGE_SIZE, "latent_dim": args.latent_dim, "beta": args.beta}
    model = train(catalog, args.out, encoder_settings=settings, epochs=args.epochs, source="openclipart",
                  name=defaults.DEFAULT_MODEL, work_dir=args.work / f"{args.out.name}.work", seed=args.seed)
    for name, figures in model.manifest["evaluation"].items():
        print(f"{name:<12} mAP {figures['map']:.3f}  precision@5 {figures['precision_at_5']:.3f}  "
              f"recall@5 {figures['recall_at_5']:.3f}")
    print(f"Wrote {args.out}")


if __name__ == "__main__":
    main()
