"""The personal layer: what the user's own tags teach Lablr, beside a bundle."""
