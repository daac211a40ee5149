"""Multi-site ABIDE autism classification pipeline (placeholder; see issue 5)."""

__version__ = "0.1.0"
