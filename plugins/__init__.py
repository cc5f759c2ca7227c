"""Lablr's default plugins, one module per part."""
