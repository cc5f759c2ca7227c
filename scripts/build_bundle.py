"""Rebuild the model bundles that ship with Lablr: the photo vocabulary's, and OpenClipart's benchmarks.

    python scripts/build_bundle.py                       # all, in name order: openclipart-effnet, -vae, photos
    python scripts/build_bundle.py openclipart-vae       # the original's method only
    python scripts/build_bundle.py photos                # the default: needs openclipart-effnet and wordnet-base

`photos`, the default, trains nothing: it is openclipart-effnet's encoder (the same PCA, so the
same latent space, and a user's personal layer carries over) with its ImageNet classifier and the
photo vocabulary (scripts/vocabulary/, WordNet from Debian's `wordnet-base`), and no tags of its
own until a user teaches some (the personal layer, `lablr fit`, `lablr build flickr`).

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

from lablr.core.bundle import bundled_names, bundled_root, leave_out
from lablr.core.data.catalog import Catalog
from lablr.core.data.importing import import_source
from lablr.core.pipeline.recipe import Recipe
from lablr.core.pipeline.train import train
from lablr.plugins import effnet

# The shipped recipes' levers are measured in docs/quality.md (scripts/measure_levers.py): for
# openclipart-effnet a 128-d PCA, a covariance shared by all tags worth 100 photos, and loglik,
# which ranks clearly better on these features; openclipart-vae is the original's method.


PHOTOS = "photos"
PHOTOS_BASE = "openclipart-effnet"


def build_photos(out: Path, temperature: float | None = None):
    """The default bundle: the base's encoder with the photo vocabulary, an empty tag model, a picture."""
    import numpy as np

    from lablr.core.bundle import Manifest, PartSpec
    from lablr.core.model import Model
    from lablr.core.pipeline.build_vocabulary import photo_vocabulary, with_photo_vocabulary
    from lablr.core.plugins import get_part

    base = Model.load(PHOTOS_BASE)
    effnet.convert_network(base.encoder.image_size, classifier=True)  # this Lablr's conversion, not the shipped one
    encoder = with_photo_vocabulary(base.encoder, photo_vocabulary(temperature))
    tag_model = get_part("tag_model", "gaussian")(**base.tag_model.settings())
    tag_model.fit(np.zeros((0, encoder.latent_dim)), [], [])
    picture = get_part("visualizer", "pca")(**base.visualizer.settings()).fit(tag_model)
    parts = {kind: PartSpec(spec.name, spec.settings) for kind, spec in base.manifest.parts.items()}
    parts["encoder"].settings = encoder.settings()
    model = Model({"encoder": encoder, "tag_model": tag_model, "visualizer": picture},
                  Manifest(parts=parts, name=PHOTOS))
    model.save(out)
    print(f"Wrote {out}: {len(encoder.vocabulary.all_tags)} tags over ImageNet's classes and the pixels")


def build(name, work: Path, out: Path):
    if name == PHOTOS:  # no recipe of its own: no training data
        return build_photos(out)
    recipe = Recipe.of_bundle(bundled_root() / name)  # read before `out`, the same folder, is replaced
    catalog = work / f"{recipe.source}.db"
    if Catalog(catalog).count() == 0:
        import_source(recipe.source, None, catalog)
    model = train(catalog, out, recipe=recipe, name=name, work_dir=work / f"{name}.work")
    if name == PHOTOS_BASE:  # it runs the network the default ships (its features output): one copy in the package
        leave_out(out, effnet.LITE_FILE)
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
