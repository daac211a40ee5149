"""Multi-site ABIDE autism classification with optional MIDA site adaptation (see docs/abide.md)."""

__version__ = "0.1.0"
