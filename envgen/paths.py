"""Where envgen keeps things on the host.

* the store (content-addressed objects): ``--store``, ``$ENVGEN_STORE``, or
  ``$XDG_DATA_HOME/envgen/store``;
* caches that only save time (apt indices, uv's cache): ``$ENVGEN_CACHE`` or
  ``$XDG_CACHE_HOME/envgen``.  Deleting the cache never changes a result.
"""

from __future__ import annotations

import os
from pathlib import Path

# the two places, found without pathlib by `envgen run` (envgen.run.launch), and the store's run files named there
from .run.launch import JOURNAL_DIR, RECORDS_DB, RUN_CACHE_DIR, cache_root, store_root


def cache_dir() -> Path:
    return Path(cache_root())


def store_dir(explicit: str | os.PathLike | None = None) -> Path:
    return Path(store_root(explicit))


class StorePaths:
    """Every place inside a store directory, in one home (stages never spell these names).

    ``objects/`` ``roots/`` ``tmp/`` ``locks/`` belong to the store proper
    (:mod:`envgen.snapshot.store`); the rest are later stages' results, each
    re-creatable from the objects and roots, except ``records.sqlite`` and ``records.d/`` (history).
    """

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)

    @property
    def objects(self) -> Path:
        return self.root / "objects" / "sha256"

    @property
    def roots(self) -> Path:
        return self.root / "roots"

    @property
    def tmp(self) -> Path:
        return self.root / "tmp"

    @property
    def locks(self) -> Path:
        return self.root / "locks"

    @property
    def marker(self) -> Path:
        return self.root / "envgen-store.json"

    @property
    def trees(self) -> Path:
        """Embedded builds: ``trees/<build key>/{rootfs,meta.json,listing.txt}``."""
        return self.root / "trees"

    def tree(self, key: str) -> Path:
        return self.trees / key

    @property
    def units(self) -> Path:
        """Install units (one package installed once, hard-linked into trees): ``units/<key>/{meta.json,
        listing.txt,root/}``; gc keeps those that some tree's meta.json lists."""
        return self.root / "units"

    def unit(self, key: str) -> Path:
        return self.units / key

    @property
    def built_wheels(self) -> Path:
        """Wheels built from source: ``built-wheels/<key>.json`` names the wheel object (a cache)."""
        return self.root / "built-wheels"

    @property
    def nix_roots(self) -> Path:
        """Nix gc roots (out-links) of Nix-built trees."""
        return self.root / "nix-roots"

    @property
    def nix_flakes(self) -> Path:
        """The Nix builder's flake per snapshot: ``nix-flakes/<snapshot id>/{flake.nix,nix/specs,envgen/nix/lib,…}``."""
        return self.root / "nix-flakes"

    @property
    def nix_trees(self) -> Path:
        """Tree digests of Nix store paths: ``nix-trees/<store path name>.json``."""
        return self.root / "nix-trees"

    @property
    def records(self) -> Path:
        """The provenance database (history, not a cache)."""
        return self.root / RECORDS_DB

    @property
    def run_journal(self) -> Path:
        """Runs' own record files (``<run id>.json``), until a reader moves them into ``records.sqlite``."""
        return self.root / JOURNAL_DIR

    @property
    def run_cache(self) -> Path:
        """Start-up fast path answers of ``envgen run``."""
        return self.root / RUN_CACHE_DIR

    @property
    def exports(self) -> Path:
        """Images made on demand by the podman, sif and apptainer runtimes."""
        return self.root / "exports"

    @property
    def attestations(self) -> Path:
        """SLSA provenance of built trees: ``attestations/<builder>-<tree digest>.intoto.json`` (rewritable)."""
        return self.root / "attestations"

    @property
    def sif_cache(self) -> Path:
        """Unsquashed SIF partitions: ``sif-cache/<partition sha256>/rootfs``."""
        return self.root / "sif-cache"


def probes_dir() -> Path:
    """Per-boot answers about the host (can bwrap make a network namespace?)."""
    return cache_dir() / "probes"


def apt_state_dir() -> Path:
    """apt's private state for resolving the Debian layer (indices: a cache, never an input)."""
    return cache_dir() / "apt"
