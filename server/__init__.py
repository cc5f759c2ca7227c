"""Lablr's local server: the JSON API, its OpenAPI description and the web page (Starlette)."""

from .app import create_app

__all__ = ["create_app"]
