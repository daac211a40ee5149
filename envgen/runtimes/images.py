"""What the image-based runtimes share: the built tree, its image metadata, and where exports go."""

from __future__ import annotations

from pathlib import Path

from ..snapshot import Store
from ..ui import UI


def build_for_image(store: Store, target: str, ui: UI, variant: str | None = None):
    """(spec or None, lock, BuildResult, ImageMeta) of *target*, built by the embedded builder."""
    from ..builders import build_spec
    from ..export import meta_for
    from ..lock import load_lock_for

    spec, lock = load_lock_for(target, ui, variant)
    res = build_spec(store, lock, spec.path if spec else None, "embedded", note=ui.info)
    return spec, lock, res, meta_for(spec, lock, res)


def exports_dir(store: Store) -> Path:
    d = store.paths.exports
    d.mkdir(parents=True, exist_ok=True)
    return d
