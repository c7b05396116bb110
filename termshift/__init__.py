"""Termshift: track how platforms' terms change, and make every change visible."""

__version__ = "0.1.0"
