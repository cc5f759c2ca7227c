"""Which of Flickr's image sizes to download for a model: the smallest that covers its input.

The facts (names, pixels, URL suffixes) are in defaults.SIZES; this module only orders them.
"""

from lablr.core.errors import LablrError

from . import defaults


def short_side(name: str) -> int:
    _, longest, square = defaults.SIZES[name]
    return longest if square else round(longest * defaults.ASPECT)


def by_short_side() -> list[str]:
    return sorted(defaults.SIZES, key=lambda name: (short_side(name), defaults.SIZES[name][1]))


def preference(input_size: int) -> tuple[str, ...]:
    """The size extras to ask for, best first: the smallest that covers `input_size`, then the
    larger ones (for a photo that lacks it), then the smaller ones (a photo smaller than that)."""
    if input_size < 1:
        raise LablrError(f"The input size must be a positive number of pixels, not {input_size}.")
    ordered = by_short_side()
    needed = max(input_size, defaults.MIN_SIDE)
    first = next((i for i, name in enumerate(ordered) if short_side(name) >= needed), len(ordered) - 1)
    smaller = [name for name in reversed(ordered[:first]) if short_side(name) >= defaults.MIN_SIDE]
    return tuple(ordered[first:] + smaller)


def model_input_size(model=None, size=None) -> int:
    """The side in pixels a fetch should cover: --size, else the --model bundle's, else the default model's."""
    if size:
        return int(size)
    from lablr.core import bundle
    from lablr.core.defaults import DEFAULT_MODEL

    manifest = bundle.read_manifest(bundle.resolve(model or DEFAULT_MODEL))
    if not isinstance(manifest.image_size, int):
        raise LablrError(f"The model {model or DEFAULT_MODEL} records no image size; give --size.")
    return manifest.image_size
