"""How well a model tags real photographs: the photo evaluation of scripts/photo_eval/.

    python scripts/bench_photos.py                        # the default model and openclipart-effnet
    python scripts/bench_photos.py --model my-model --verbose   # each photo's top 5, marked
    python scripts/bench_photos.py --json                 # the figures as JSON
    python scripts/bench_photos.py --from pypi            # only the photos Python packages ship
    python scripts/bench_photos.py --debian-packages      # the Debian packages the photos come from

The photos and their acceptable tags are in scripts/photo_eval/photos.toml, written before any
model was run on them. They are for measuring a model once it is built: never choose a rule, a
mapping or a temperature by what this script prints (scripts/photo_eval/tuning.toml holds other
photos for that; README.md there says more).

Tags are suggested the way `lablr suggest` suggests them (Model.load, then suggest_files on the
photos' files), and compared as Flickr compares tags: lower case, letters and digits only.
"""

import argparse
import importlib.util
import json
import struct
import sys
import tempfile
import tomllib
import zlib
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from lablr.core import defaults
from lablr.core.data.catalog import compact_tag
from lablr.core.errors import LablrError

LABELS = Path(__file__).resolve().parent / "photo_eval" / "photos.toml"
SETS = ("everyday", "isolated", "unreadable")
TOP = 3  # precision@3
CONFIDENT = 0.5  # a score a person reads as "probably right"
SHOWN = defaults.DEFAULT_MIN_PROBABILITY  # the web page shows tags scored this or more
VERBOSE_TOP = 5
SOURCE_KINDS = ("pypi", "debian")
INSTALL_HINT = {"pypi": "pip install {}", "debian": "apt-get install {}"}


class LabelError(Exception):
    """The labels file is not as README.md describes it; the message says where."""


@dataclass(frozen=True)
class Photo:
    source: str
    set: str
    shows: str
    tags: frozenset  # acceptable tags, groups expanded, in compact form

    @property
    def kind(self):
        return self.source.split(":", 1)[0]

    @property
    def package(self):
        return self.source.split(":", 2)[1]

    @property
    def name(self):
        return self.source.rsplit("/", 1)[-1]


# ---------------------------------------------------------------- the labels

def load_labels(path=LABELS) -> list[Photo]:
    """Every photo of a labels file, checked: a set, a source, tags as Flickr writes them."""
    try:
        data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as error:
        raise LabelError(f"{path}: {error}") from None
    groups = data.get("groups", {})
    photos = [_photo(entry, groups, index) for index, entry in enumerate(data.get("photo", []), 1)]
    if not photos:
        raise LabelError(f"{path}: no [[photo]] entries.")
    repeated = [source for source, n in Counter(p.source for p in photos).items() if n > 1]
    if repeated:
        raise LabelError(f"{path}: photos listed twice: {', '.join(repeated)}")
    return photos


def _photo(entry, groups, index) -> Photo:
    where = f"photo {index} ({entry.get('source', 'no source')})"
    source, set_, tags = entry.get("source"), entry.get("set"), entry.get("tags")
    if not isinstance(source, str) or parse_source(source) is None:
        raise LabelError(f"{where}: source must be KIND:PACKAGE:PATH[:MEMBER] with KIND one of {SOURCE_KINDS}.")
    if set_ not in SETS:
        raise LabelError(f"{where}: set must be one of {SETS}, not {set_!r}.")
    if not isinstance(tags, list) or not tags:
        raise LabelError(f"{where}: needs at least one tag.")
    expanded = expand_tags(tags, groups, where)
    return Photo(source, set_, entry.get("shows", ""), frozenset(compact_tag(t) for t in expanded))


def expand_tags(tags, groups, where, seen=()) -> set[str]:
    """Tags with every "@group" replaced by the group's tags (groups may name groups)."""
    out = set()
    for tag in tags:
        if not isinstance(tag, str) or not tag or tag != tag.lower() or any(c.isspace() for c in tag):
            raise LabelError(f"{where}: tag {tag!r} is not as Flickr writes tags (lowercase, no spaces).")
        if tag.startswith("@"):
            name = tag[1:]
            if name not in groups or name in seen:
                raise LabelError(f"{where}: {tag} is not a group of [groups] (or names itself).")
            out |= expand_tags(groups[name], groups, where, seen + (name,))
        else:
            out.add(tag)
    return out


def parse_source(source: str):
    """(kind, package, path, member or None), or None when the source is malformed."""
    parts = source.split(":")
    if len(parts) not in (3, 4) or parts[0] not in SOURCE_KINDS or not all(parts[1:]):
        return None
    kind, package, path, *member = parts
    if kind == "pypi" and (member or path.startswith("/")):
        return None
    return kind, package, path, (member[0] if member else None)


# ---------------------------------------------------------------- finding the photos

def locate(photo: Photo, scratch: Path, index: int) -> Path | None:
    """The photo's file on this machine (a Qt resource member is copied out into scratch), or None."""
    kind, _, path, member = parse_source(photo.source)
    file = _python_package_file(path) if kind == "pypi" else Path(path)
    if file is None or not file.is_file():
        return None
    if member is None:
        return file
    data = qt_resources(file).get(member)
    if data is None:
        return None
    out = scratch / f"{index:04d}-{Path(member).name}"
    out.write_bytes(data)
    return out


def _python_package_file(path: str) -> Path | None:
    top, _, inside = path.partition("/")
    spec = importlib.util.find_spec(top)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0]) / inside


_RCC_CACHE = {}


def qt_resources(path: Path) -> dict[str, bytes]:
    """The files of a Qt resource bundle (.rcc, as `rcc -binary` writes it), by their resource path.

    The format: a "qres" header with the offsets of a tree of nodes, of the names and of the data;
    a node is a directory (its children's range) or a file (its data's offset), and a file's data
    may be zlib-compressed behind its own length. Files compressed with zstd are left out.
    """
    if path not in _RCC_CACHE:
        _RCC_CACHE[path] = dict(_rcc_files(Path(path).read_bytes()))
    return _RCC_CACHE[path]


def _rcc_files(blob: bytes):
    if blob[:4] != b"qres":
        return
    version, tree, data, names = struct.unpack(">IIII", blob[4:20])
    node_size = 14 if version == 1 else 22

    def name_at(offset):
        (length,) = struct.unpack(">H", blob[names + offset:names + offset + 2])
        start = names + offset + 6  # after the length and the name's hash
        return blob[start:start + 2 * length].decode("utf-16-be")

    def walk(index, prefix):
        at = tree + index * node_size
        name_offset, flags = struct.unpack(">IH", blob[at:at + 6])
        path = f"{prefix}/{name_at(name_offset)}" if index else ""
        if flags & 2:  # a directory
            count, first = struct.unpack(">II", blob[at + 6:at + 14])
            for child in range(first, first + count):
                yield from walk(child, path)
        elif not flags & 4:  # not zstd
            (offset,) = struct.unpack(">I", blob[at + 10:at + 14])
            (size,) = struct.unpack(">I", blob[data + offset:data + offset + 4])
            content = blob[data + offset + 4:data + offset + 4 + size]
            yield path, zlib.decompress(content[4:]) if flags & 1 else content

    yield from walk(0, "")


# ---------------------------------------------------------------- measuring

def suggest(model_name, files: list[Path]) -> tuple[str, list[dict]]:
    """The model's name and, per file, suggest_files' answer: as `lablr suggest --k 100` gives it."""
    from lablr.core.model import Model
    from lablr.core.suggesting import suggest_files

    model = Model.load(model_name)
    return model.name, suggest_files(model, [str(f) for f in files], defaults.MAX_K)


def figures(photos: list[Photo], results: list[dict]) -> dict:
    """Per set: precision@3, confident suggestions and how many are right, photos shown a tag, top score."""
    report = {}
    for set_ in SETS:
        pairs = [(p, r["suggestions"]) for p, r in zip(photos, results) if p.set == set_ and "suggestions" in r]
        if pairs:
            report[set_] = _set_figures(pairs)
    return report


def _set_figures(pairs) -> dict:
    top_right = [sum(compact_tag(s["tag"]) in p.tags for s in ranked[:TOP]) for p, ranked in pairs]
    confident = [(p, s) for p, ranked in pairs for s in ranked if s["score"] >= CONFIDENT]
    right = sum(compact_tag(s["tag"]) in p.tags for p, s in confident)
    scores = [s["score"] for _, ranked in pairs for s in ranked]
    return {
        "photos": len(pairs),
        "precision_at_3": round(sum(top_right) / (TOP * len(pairs)), 3),
        "confident": len(confident),
        "confident_right": round(right / len(confident), 3) if confident else None,
        "shown_at_0_2": round(sum(any(s["score"] >= SHOWN for s in ranked) for _, ranked in pairs) / len(pairs), 3),
        "max_score": round(max(scores), 3) if scores else None,
    }


def measure(model_names, photos: list[Photo], verbose=None) -> dict:
    """Every available photo through every model: the figures, and what was skipped and why."""
    with tempfile.TemporaryDirectory(prefix="lablr-photos-") as scratch:
        found = [(p, locate(p, Path(scratch), i)) for i, p in enumerate(photos)]
        available = [(p, f) for p, f in found if f is not None]
        report = {"photos": len(photos), "available": len(available), "skipped": skipped(found), "models": {}}
        for model_name in dict.fromkeys(model_names):
            name, results = suggest(model_name, [f for _, f in available])
            chosen = [p for p, _ in available]
            report["models"][name] = figures(chosen, results)
            report["models"][name]["undecodable_files"] = [r["filename"] for r in results if "error" in r]
            if verbose:
                print_photos(name, chosen, results, verbose)
    return report


def skipped(found) -> dict:
    """{package: {"photos": n, "install": command}} for the photos not found here."""
    missing = Counter((p.kind, p.package) for p, f in found if f is None)
    return {package: {"photos": n, "install": INSTALL_HINT[kind].format(package)}
            for (kind, package), n in sorted(missing.items())}


# ---------------------------------------------------------------- printing

def print_photos(model_name, photos, results, out):
    print(f"\n{model_name}: each photo's top {VERBOSE_TOP} (+ an acceptable tag, - not)", file=out)
    for photo, result in zip(photos, results):
        if "error" in result:
            print(f"  [{photo.set}] {photo.name}: {result['error']['message']}", file=out)
            continue
        marks = ", ".join(f"{'+' if compact_tag(s['tag']) in photo.tags else '-'}{s['tag']} {s['score']:.2f}"
                          for s in result["suggestions"][:VERBOSE_TOP])
        print(f"  [{photo.set}] {photo.name} ({photo.shows}): {marks}", file=out)


def print_report(report):
    print(f"{report['available']} of {report['photos']} photos found.")
    for package, missing in report["skipped"].items():
        print(f"  skipped {missing['photos']} from {package}: {missing['install']}")
    header = f"{'':<28} {'set':<11} {'photos':>6} {'prec@3':>7} {'>=0.5':>6} {'right':>6} {'>=0.2':>6} {'max':>5}"
    print(header)
    for model_name, sets in report["models"].items():
        for set_, f in sets.items():
            if set_ in SETS:
                right = "-" if f["confident_right"] is None else f"{f['confident_right']:.2f}"
                print(f"{model_name:<28} {set_:<11} {f['photos']:>6} {f['precision_at_3']:>7.3f} {f['confident']:>6} "
                      f"{right:>6} {f['shown_at_0_2']:>6.2f} {f['max_score']:>5.2f}")
        for filename in sets["undecodable_files"]:
            print(f"  {model_name}: could not read {filename}")
    print(f"prec@3: share of the top {TOP} tags that are acceptable; >=0.5: suggestions scored {CONFIDENT} or more, "
          f"right: the share of them acceptable; >={SHOWN}: photos with a tag the web page shows; max: top score.")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", action="append", help="A bundle name or path (repeatable; default: the default "
                        "model and openclipart-effnet).")
    parser.add_argument("--labels", type=Path, default=LABELS,
                        help="The labels file (default: photo_eval/photos.toml).")
    parser.add_argument("--from", dest="kind", choices=("all",) + SOURCE_KINDS, default="all",
                        help="Only the photos that Python packages (pypi) or Debian packages ship.")
    parser.add_argument("--json", action="store_true", help="Print the figures as JSON.")
    parser.add_argument("--verbose", action="store_true", help=f"Print each photo's top {VERBOSE_TOP}, marked "
                        "(on stderr with --json).")
    parser.add_argument("--debian-packages", action="store_true",
                        help="Print the Debian packages the photos come from.")
    args = parser.parse_args(argv)
    try:
        photos = [p for p in load_labels(args.labels) if args.kind in ("all", p.kind)]
        if args.debian_packages:
            print(" ".join(sorted({p.package for p in photos if p.kind == "debian"})))
            return 0
        verbose = (sys.stderr if args.json else sys.stdout) if args.verbose else None
        report = measure(args.model or [defaults.DEFAULT_MODEL, "openclipart-effnet"], photos, verbose)
    except (LabelError, LablrError) as error:
        print(f"bench_photos: {error}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print_report(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
