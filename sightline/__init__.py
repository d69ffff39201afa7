"""Sightline composition root: the `sightline` CLI and the all-in-one runtime."""

__version__ = "0.1.0"
