"""Siyu (私域): one owned customer base for a consumer brand."""

__version__ = "0.1.0"
