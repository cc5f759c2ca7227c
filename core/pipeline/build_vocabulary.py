"""The photo vocabulary, built: ImageNet's 1,000 classes turned into everyday Flickr tags.

EfficientNet-Lite0's classifier names 1,000 ImageNet classes, and each class is a WordNet noun
synset. A reviewed rules file (scripts/vocabulary/rules.toml) says under which synsets a class
earns a tag: tabby and Egyptian cat are under domestic_cat.n.01, which earns cat, pet and
animal. Each class also keeps its own name (tabby, espresso, seashore) unless the rules hide it.
WordNet's hypernym tree decides what is under what; it is read here from WordNet 3.0's own
files (Debian's `wordnet-base`), when a bundle is built. The result, a list of tags and which
classes each one sums, ships in the bundle as data (lablr.core.vocabulary): serving needs no
WordNet.
"""

import tomllib
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lablr.core.data.catalog import normalize_tag
from lablr.core.errors import LablrError
from lablr.core.vocabulary import CLASSES, PIXEL_TAGS, ConceptVocabulary

WORDNET_ROOT = Path("/usr/share/wordnet")
SOURCES = Path(__file__).resolve().parents[2] / "scripts" / "vocabulary"
HYPERNYMS = ("@", "@i")  # a synset's hypernyms and, for an instance, its class


@dataclass
class WordNet:
    """The noun part of WordNet: each synset's words and hypernyms, and each word's senses in order."""

    words: dict[str, list[str]]  # synset id ("n02124075") -> its words, first the most usual
    hypernyms: dict[str, list[str]]  # synset id -> the ids of its hypernyms
    senses: dict[str, list[str]]  # word ("domestic_cat") -> its synset ids, sense 1 first

    def resolve(self, name: str) -> str:
        """A synset id from a readable name ("domestic_cat.n.01") or an id ("n02121808")."""
        if name.startswith("n") and name[1:].isdigit() and name in self.words:
            return name
        word, pos, number = (name.rsplit(".", 2) + ["", ""])[:3]
        senses = self.senses.get(word.lower(), [])
        if pos != "n" or not number.isdigit() or not 1 <= int(number) <= len(senses):
            raise LablrError(f"The rules name {name!r}, which is not a WordNet noun sense (word.n.NN).")
        return senses[int(number) - 1]

    def ancestors(self, synset: str) -> set[str]:
        """The synset and every synset above it."""
        seen, todo = set(), [synset]
        while todo:
            current = todo.pop()
            if current not in seen:
                seen.add(current)
                todo.extend(self.hypernyms.get(current, ()))
        return seen


def read_wordnet(root: Path = WORDNET_ROOT) -> WordNet:
    """WordNet 3.0's data.noun and index.noun (the format of wndb(5))."""
    try:
        data_lines = (root / "data.noun").read_text(encoding="latin-1").splitlines()
        index_lines = (root / "index.noun").read_text(encoding="latin-1").splitlines()
    except OSError as error:
        raise LablrError(f"WordNet is not at {root} ({error.strerror}): apt-get install wordnet-base.") from None
    words, hypernyms = {}, {}
    for line in data_lines:
        if line.startswith(" "):
            continue  # the licence at the top
        fields = line.split(" | ")[0].split()
        synset = "n" + fields[0]
        count = int(fields[3], 16)
        words[synset] = [fields[4 + 2 * i] for i in range(count)]
        pointers_at = 4 + 2 * count
        pointers = fields[pointers_at + 1:pointers_at + 1 + 4 * int(fields[pointers_at])]
        hypernyms[synset] = ["n" + pointers[i + 1] for i in range(0, len(pointers), 4)
                             if pointers[i] in HYPERNYMS and pointers[i + 2] == "n"]
    senses = {}
    for line in index_lines:
        if line.startswith(" "):
            continue
        fields = line.split()
        synset_count, pointer_count = int(fields[2]), int(fields[3])
        senses[fields[0]] = ["n" + offset for offset in fields[4 + pointer_count + 2:][:synset_count]]
    return WordNet(words, hypernyms, senses)


def read_rules(path: Path = SOURCES / "rules.toml") -> dict:
    try:
        return tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as error:
        raise LablrError(f"Cannot read the vocabulary rules {path}: {error}") from None


def read_classes(path: Path = SOURCES / "imagenet_synsets.txt") -> list[str]:
    classes = path.read_text().split()
    if len(classes) != CLASSES or len(set(classes)) != CLASSES:
        raise LablrError(f"{path} must list the 1,000 ImageNet synsets, each once; it has {len(classes)}.")
    return classes


def class_name(wordnet: WordNet, synset: str) -> str:
    """A class's own tag: its first WordNet word, as people type it ("Egyptian_cat" -> "egyptian cat")."""
    return normalize_tag(wordnet.words[synset][0].replace("_", " "))


def build_vocabulary(wordnet: WordNet, rules: dict, classes: list[str]) -> ConceptVocabulary:
    """Tags and the classes each one sums, from the rules and WordNet's hypernym tree."""
    never = {normalize_tag(tag) for tag in rules.get("never", {}).get("tags", [])}
    never_synsets = {wordnet.resolve(name) for name in rules.get("never", {}).get("synsets", [])}
    members = defaultdict(set)  # tag -> class indexes
    ancestors = [wordnet.ancestors(synset) for synset in classes]
    for tag, spec in rules.get("tags", {}).items():
        tag = normalize_tag(tag)
        under = {wordnet.resolve(name) for name in spec.get("under", [])}
        excluded = {wordnet.resolve(name) for name in spec.get("except", [])}
        if under & never_synsets:
            raise LablrError(f"The rule for {tag!r} names a synset the rules keep from being a tag.")
        for index, above in enumerate(ancestors):
            if above & under and not above & excluded:
                members[tag].add(index)
    if rules.get("settings", {}).get("class_names", True):
        hidden = {wordnet.resolve(name) for name in rules.get("hidden_classes", {}).get("synsets", [])}
        for index, synset in enumerate(classes):
            if synset not in hidden:
                members[class_name(wordnet, synset)].add(index)
    tags = sorted(tag for tag in members if tag not in never and members[tag])
    pairs = [(index, k) for k, tag in enumerate(tags) for index in sorted(members[tag])]
    pixel_tags = [normalize_tag(tag) for tag in rules.get("pixels", {}).get("tags", [])]
    unknown = sorted(set(pixel_tags) - set(PIXEL_TAGS))
    if unknown:
        raise LablrError(f"The rules ask for pixel tags Lablr cannot read: {', '.join(unknown)} "
                         f"(it reads {', '.join(PIXEL_TAGS)}).")
    return ConceptVocabulary(tags=tags, classes=np.array([p[0] for p in pairs], np.int16),
                             tag_of=np.array([p[1] for p in pairs], np.int16),
                             temperature=float(rules.get("settings", {}).get("temperature", 1.0)),
                             pixel_tags=pixel_tags)


def photo_vocabulary(temperature: float | None = None) -> ConceptVocabulary:
    """The vocabulary the photos bundle ships, from the committed rules and Debian's WordNet."""
    vocabulary = build_vocabulary(read_wordnet(), read_rules(), read_classes())
    if temperature is not None:
        vocabulary.temperature = float(temperature)
    return vocabulary


def with_photo_vocabulary(encoder, vocabulary: ConceptVocabulary):
    """The stage that adds the photo vocabulary: the same effnet-lite0 encoder (the same PCA, so the
    same latent space) with its classifier, which gives the vocabulary's probabilities."""
    from lablr.plugins.effnet import NAME, EffNetLite0Encoder

    if not isinstance(encoder, EffNetLite0Encoder):
        raise LablrError(f"The photo vocabulary needs the {NAME} encoder's ImageNet classifier.")
    out = EffNetLite0Encoder(encoder.latent_dim, encoder.image_size, encoder.batch_size, classifier=True)
    out.mean, out.components, out.explained_variance = encoder.mean, encoder.components, encoder.explained_variance
    out.vocabulary = vocabulary
    return out
