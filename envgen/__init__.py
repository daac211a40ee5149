"""envgen: source-pinned, reproducible research environments with a Python core."""

__version__ = "0.1.0"

# Version of the file formats envgen writes (lock tool table, manifests, bundles).
# Readers refuse files whose format-version is newer than this.
FORMAT_VERSION = 1
