"""The personal layer: what the user's own tags teach Lablr, beside a bundle."""


def photos(count: int) -> str:
    """"1 photo", "2 photos": how the personal commands count."""
    return f"{count} photo{'' if count == 1 else 's'}"
