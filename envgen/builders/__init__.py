"""The build stage: a snapshot id -> an environment tree (embedded builder, or Nix).

Callers use :func:`build_spec` (a spec's lock, snapshotted offline, then
built) or :func:`get_builder` with a snapshot id; see :mod:`.base` for the
contract every builder keeps.
"""

from __future__ import annotations

from pathlib import Path

from ..lock import pylock
from ..snapshot import Store, snapshot
from .base import BUILDERS, Builder, BuildInputs, BuildResult, Note, build_key, get_builder, quiet

__all__ = ["BUILDERS", "BuildInputs", "BuildResult", "Builder", "Note", "build_key", "build_spec", "get_builder",
           "quiet", "snapshot_offline"]


def snapshot_offline(store: Store, lock: pylock.Lock, spec_path: Path | None) -> str:
    """The snapshot id of *lock* (and the current local sources), from store objects only."""
    return snapshot(store, lock, spec_path, offline=True).id


def build_spec(store: Store, lock: pylock.Lock, spec_path: Path | None, builder: str = "embedded", *,
               force: bool = False, note: Note = quiet) -> BuildResult:
    """Snapshot *lock* offline (packing the local projects), then build it with *builder*."""
    sid = snapshot_offline(store, lock, spec_path)
    return get_builder(builder).build(store, sid, force=force, note=note)
