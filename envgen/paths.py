"""Where envgen keeps things on the host.

* the store (content-addressed objects): ``--store``, ``$ENVGEN_STORE``, or
  ``$XDG_DATA_HOME/envgen/store``;
* caches that only save time (apt indices, uv's cache): ``$ENVGEN_CACHE`` or
  ``$XDG_CACHE_HOME/envgen``.  Deleting the cache never changes a result.
"""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    if os.environ.get("ENVGEN_CACHE"):
        return Path(os.environ["ENVGEN_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "envgen"


def store_dir(explicit: str | os.PathLike | None = None) -> Path:
    if explicit:
        return Path(explicit)
    if os.environ.get("ENVGEN_STORE"):
        return Path(os.environ["ENVGEN_STORE"])
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return Path(base) / "envgen" / "store"
