"""Time `lablr build flickr` against the fake Flickr, phase by phase, and scale it to 45 x 300 photos.

    .venv/bin/python scripts/measure_flickr.py                       # 45 tags x 300 photos
    .venv/bin/python scripts/measure_flickr.py --tags 45 --per-tag 40  # a smaller run, extrapolated

The fake Flickr (tests/fake_flickr.py) runs in this process and serves photo-like JPEGs at
Flickr's real sizes: an OpenClipart drawing of the photo's subject (each tag its own drawings)
composed onto a cropped, flipped, rescaled and colour-jittered scikit-image sample photo, with
sensor noise, saved as Flickr saves them (JPEG quality 85); a tag's photos share VARIANTS such
images, which costs Lablr the same as distinct ones and keeps the setup short. The build runs in a child process
(`lablr build flickr`'s own function, with a display that records when each phase starts and
ends), on the default model unless --model says otherwise. All images are rendered before the
clock starts and the fake answers at once, so there are no network waits: the download time is
Lablr's own work (HTTP on loopback, writing, fsync, the catalog). Flickr's rate limit and a real
line's bandwidth are added as computed figures, not measured ones.

The machine may be shared: the load average is printed before and after, and the per-photo
figures are scaled linearly to 45 x 300 (every phase is linear in the number of photos).
"""

import argparse
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
import zlib
from pathlib import Path

import numpy as np
from PIL import Image, ImageEnhance

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
from fake_flickr import FakeFlickr, FakePhoto, size_pixels  # noqa: E402

FULL_TAGS, FULL_PER_TAG = 45, 300
DRAWINGS_PER_TAG = 12
VARIANTS = 30  # distinct images per tag and size; photos share them (rendering all would take longer than the build)
BACKGROUNDS = ("astronaut", "brick", "camera", "chelsea", "coffee", "coins", "grass", "gravel",
               "hubble_deep_field", "immunohistochemistry", "moon", "retina", "rocket", "clock", "colorwheel")
OTHER_TAGS = ("travel", "vacation", "outdoor", "holiday", "europe", "usa", "friends", "weekend", "canon", "nikon",
              "iphone", "2019", "2021", "explore", "hdr", "bw", "vintage", "colour")
LINE_MBIT = (20, 50)  # a home line's bandwidth, for the download estimate
SEARCH_WAIT = 3600 / 3500  # seconds per API call beyond the burst, at the fetcher's default rate


def sample_photos():
    import skimage.data

    out = []
    for name in BACKGROUNDS:
        array = np.asarray(getattr(skimage.data, name)())
        if array.ndim == 2:
            array = np.stack([array] * 3, axis=-1)
        out.append(Image.fromarray(array[..., :3].astype(np.uint8)))
    return out


def drawings(tags, root="/usr/share/openclipart/png"):
    """DRAWINGS_PER_TAG OpenClipart drawings (RGBA, at most 512 px) for each tag: its subjects look
    alike, other tags' do not."""
    paths = sorted(Path(root).rglob("*.png"))
    rng = np.random.default_rng(7)
    chosen = []
    for i in rng.permutation(len(paths)):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                image = Image.open(paths[i])
            with image:
                if image.width * image.height > 4_000_000:
                    continue
                image.thumbnail((512, 512))
                chosen.append(image.convert("RGBA"))
        except (OSError, ValueError):
            continue
        if len(chosen) == len(tags) * DRAWINGS_PER_TAG:
            return {tag: chosen[k * DRAWINGS_PER_TAG:(k + 1) * DRAWINGS_PER_TAG] for k, tag in enumerate(tags)}
    raise SystemExit("Needs Debian's openclipart-png (sudo apt-get install openclipart-png).")


class PhotoLikeFlickr(FakeFlickr):
    """Serves composed, photo-like JPEGs; every image is rendered by prerender(), before timing."""

    def setup_content(self, subjects, backgrounds):
        self.subjects, self.backgrounds = subjects, backgrounds

    def render(self, photo, width, height):
        variant = photo.seed % VARIANTS
        rng = np.random.default_rng([variant, zlib.crc32(photo.tags[0].encode())])
        background = self.backgrounds[int(rng.integers(len(self.backgrounds)))]
        scale = rng.uniform(1.0, 2.0)
        crop_w, crop_h = int(background.width / scale), int(background.height / scale)
        left, top = rng.integers(0, background.width - crop_w + 1), rng.integers(0, background.height - crop_h + 1)
        image = background.crop((left, top, left + crop_w, top + crop_h)).resize((width, height), Image.BICUBIC)
        if rng.random() < 0.5:
            image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        image = ImageEnhance.Color(image).enhance(rng.uniform(0.6, 1.4))
        image = ImageEnhance.Brightness(image).enhance(rng.uniform(0.7, 1.2))
        drawing = self.subjects[photo.tags[0]][variant % DRAWINGS_PER_TAG].copy()
        side = int(min(width, height) * rng.uniform(0.45, 0.85))
        drawing.thumbnail((side, side))
        at = (int(rng.integers(0, width - drawing.width + 1)), int(rng.integers(0, height - drawing.height + 1)))
        image.paste(drawing, at, drawing)
        noisy = np.asarray(image, np.float32) + rng.normal(0, 4, (height, width, 3))
        return Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8))

    def _jpeg(self, photo, extra):
        key = (photo.tags[0], photo.seed % VARIANTS, (photo.width, photo.height), extra)
        if key not in self._jpegs:
            buffer = io.BytesIO()
            self.render(photo, *size_pixels(photo, extra)).save(buffer, "JPEG", quality=85)
            self._jpegs[key] = buffer.getvalue()
        return self._jpegs[key]

    def prerender(self, extra):
        for photo in self.photos:
            if size_pixels(photo, extra):
                self._jpeg(photo, extra)


def make_photos(tags, per_tag, owners):
    """per_tag photos for each tag, by `owners` photographers, each tagged with its subject and a few others."""
    photos = []
    for k, tag in enumerate(tags):
        for n in range(per_tag):
            i = k * per_tag + n
            rng = np.random.default_rng(i)
            photo_id = str(52000000000 + i * 7919)
            owner = int(rng.integers(owners))
            extra = list(rng.choice(OTHER_TAGS, size=int(rng.integers(1, 4)), replace=False))
            photos.append(FakePhoto(
                id=photo_id, owner=f"{20000000 + owner}@N0{owner % 8}", ownername=f"Photographer {owner}",
                secret=f"{zlib.crc32(photo_id.encode()):08x}ab", server="65535", title=f"{tag} #{n}", license=i % 11,
                tags=[tag, *extra], colour="", shape="", seed=zlib.crc32(photo_id.encode()),
                width=(1024, 1024, 768)[i % 3], height=(768, 768, 1024)[i % 3]))
    return photos


class TimedPhases:
    """A progress display for build() that records each phase's start and end instead of drawing."""

    def __init__(self):
        self.phases = {}

    def phase(self, name, total, unit="step"):
        from contextlib import contextmanager

        @contextmanager
        def timed():
            started = time.perf_counter()

            class Count:
                def update(self, n=1):
                    pass

            try:
                yield Count()
            finally:
                self.phases[name] = self.phases.get(name, 0.0) + time.perf_counter() - started

        return timed()

    def close(self):
        pass


def child(args):
    """Runs in its own process: the build, timed phase by phase; prints JSON."""
    import lablr.plugins.flickr.building as building
    from lablr.core import defaults as core_defaults
    from lablr.core.data.selection import Rules, source_rules
    from lablr.plugins.flickr.api import FetchSettings

    timer = TimedPhases()
    settings = FetchSettings(per_tag=args.per_tag, calls_per_hour=1e9, burst=1000)
    scaled = args.per_tag / FULL_PER_TAG  # a smaller run keeps the rules in proportion
    rules = Rules.from_dict({**source_rules("flickr").as_dict(),
                             "min_tag_photos": max(3, round(core_defaults.MIN_TAG_PHOTOS * min(1.0, scaled))),
                             "min_train_photos": max(2, round(core_defaults.MIN_TRAIN_PHOTOS * min(1.0, scaled)))})
    started = time.perf_counter()
    result = building.build(args.out, tags=args.tag_list, base_model=args.model, settings=settings, progress=timer,
                            rules=rules)
    total = time.perf_counter() - started
    print(json.dumps({"phases": timer.phases, "total": total, "train": result.train, "test": result.test,
                      "tags": len(result.model.tag_model.tags), "evaluation": result.model.manifest.evaluation,
                      "image_size": result.model.image_size}))


def du(path):
    return sum(p.stat().st_size for p in Path(path).rglob("*") if p.is_file())


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tags", type=int, default=FULL_TAGS, help="How many of the 45 default tags.")
    parser.add_argument("--per-tag", type=int, default=FULL_PER_TAG)
    parser.add_argument("--owners", type=int, default=None, help="Photographers (default: a ninth of the photos).")
    parser.add_argument("--model", default=None, help="The model to build on (default: the default model).")
    parser.add_argument("--keep", action="store_true", help="Keep the catalog, images and bundle (printed).")
    parser.add_argument("--child", nargs=2, metavar=("OUT", "TAGS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        args.out, tag_text = args.child
        args.tag_list = tag_text.split(",")
        return child(args)

    from lablr.core import bundle
    from lablr.core import defaults as core_defaults
    from lablr.plugins.flickr import defaults
    from lablr.plugins.flickr.sizes import preference

    tags = list(defaults.TAGS[:args.tags])
    model = args.model or core_defaults.DEFAULT_MODEL
    input_size = bundle.read_manifest(bundle.resolve(model)).image_size
    extra = preference(input_size)[0]
    n = len(tags) * args.per_tag
    fake = PhotoLikeFlickr(photos=make_photos(tags, args.per_tag, args.owners or max(1, n // 9)))
    fake.setup_content(drawings(tags), sample_photos())
    print(f"Rendering {n} photos at {extra} (before the clock starts)...", flush=True)
    fake.prerender(extra)
    fake.start()
    work = Path(tempfile.mkdtemp(prefix="lablr-measure-"))
    out = work / "my-flickr"
    env = {**os.environ, **fake.env(), "XDG_CONFIG_HOME": str(work / "config")}
    load_before = os.getloadavg()
    try:
        done = subprocess.run([sys.executable, __file__, "--child", str(out), ",".join(tags), "--per-tag",
                               str(args.per_tag), *(["--model", args.model] if args.model else [])],
                              env=env, capture_output=True, text=True)
        if done.returncode:
            raise SystemExit(done.stdout[-3000:] + done.stderr[-3000:])
        figures = json.loads(done.stdout.strip().splitlines()[-1])
    finally:
        fake.stop()
    load_after = os.getloadavg()
    catalog = Path(f"{out}.db")
    images, decoded = du(f"{catalog}.flickr"), du(f"{catalog}.images")
    photos = sum(1 for _ in Path(f"{catalog}.flickr").rglob("*.jpg"))
    scale = FULL_TAGS * FULL_PER_TAG / photos
    print(f"\n{model} ({figures['image_size']} px): {len(tags)} tags x {args.per_tag} = {photos} photos at {extra}, "
          f"{os.cpu_count()} CPUs, load average {load_before[0]:.1f} before, {load_after[0]:.1f} after "
          f"(1-minute; {load_before[2]:.1f} / {load_after[2]:.1f} over 15 minutes)")
    print(f"{'phase':<24} {'measured':>10} {'ms/photo':>9} {'for 45x300':>11}")
    for name, seconds in figures["phases"].items():
        print(f"{name:<24} {seconds:>9.1f}s {1000 * seconds / photos:>9.1f} {seconds * scale / 60:>9.1f} min")
    print(f"{'whole build':<24} {figures['total']:>9.1f}s {1000 * figures['total'] / photos:>9.1f} "
          f"{figures['total'] * scale / 60:>9.1f} min")
    per_photo = images / photos
    full_bytes = per_photo * FULL_TAGS * FULL_PER_TAG
    print(f"images: {per_photo / 1e3:.1f} kB a photo ({extra}); 45x300: {full_bytes / 1e6:.0f} MB of JPEGs, "
          f"{decoded * scale / 1e6:.0f} MB decoded ({figures['image_size']} px), "
          f"catalog {catalog.stat().st_size * scale / 1e6:.1f} MB")
    searches = FULL_TAGS * -(-FULL_PER_TAG // defaults.PER_PAGE)
    waits = max(0, searches - defaults.BURST) * SEARCH_WAIT
    line = " or ".join(f"{full_bytes * 8 / (mbit * 1e6) / 60:.1f} min at {mbit} Mbit/s" for mbit in LINE_MBIT)
    print(f"not measured here (network waits): Flickr's rate limit, {searches} searches = {waits / 60:.1f} min; "
          f"the download itself {line}")
    evaluation = figures["evaluation"]
    print(f"held-out mAP ({figures['train']} training, {figures['test']} held-out photos, {figures['tags']} tags; "
          "synthetic photos, so a check that it learns, not a quality figure): "
          + ", ".join(f"{name} {value['map']:.3f}" for name, value in evaluation.items() if "map" in value))
    if args.keep:
        print(f"kept in {work}")
    else:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
