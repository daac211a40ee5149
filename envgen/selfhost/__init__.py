"""envgen's own runtime, in every bundle, so that a bundle verifies itself on a bare host.

envgen builds envgen: ``envgen.toml`` here is an ordinary spec for the
runtime envgen needs (its Python dependencies, the Debian interpreter,
bubblewrap), and ``pylock.envgen.toml`` its ordinary lock; every lock also
pins the static busybox .deb.  ``envgen archive`` snapshots it into the same
store as the paper's environment and puts that snapshot in the bundle, beside
the paper's own, with these members:

``VERIFY.sh``
    The bootstrap, for a host with nothing but ``sh``, ``tar`` and coreutils
    (no Python, bwrap, zstd, dpkg, envgen or network).  It checks the sha256
    of every member against ``envgen-bundle.json`` before it executes
    anything from the bundle; then busybox unpacks envgen's runtime .debs,
    the runtime's own Python runs the assembler (``envgen/builders/assemble.py``,
    the program both builders run) on ``selfhost/plan.json`` to install
    envgen's wheels, and ``envgen verify`` runs from the bundle's envgen
    source on that interpreter, in that bubblewrap.
``selfhost/snapshot.json``
    The snapshot manifest of envgen's runtime (its sha256 is
    ``selfhost-snapshot-id`` in the bundle manifest); its objects travel under
    ``objects/sha256/`` with the paper's, stored once when shared.
``selfhost/busybox``
    The static busybox binary from the pinned busybox-static .deb: the one
    executable the bootstrap starts from, checked by its hash and re-extracted
    from its .deb to compare.
``selfhost/plan.json``, ``selfhost/enter.sh``
    The assembler's plan for envgen's runtime (what the embedded builder
    would write), and the launcher that makes a directory ``/`` for a command
    (busybox ``unshare`` + ``pivot_root``, network cut).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from ..archive.members import SELFHOST_SNAPSHOT
from ..builders.base import BuildInputs
from ..builders.embedded import assembly
from ..builders.nix import busybox_binary
from ..errors import BuildError
from ..snapshot.store import Store

HERE = Path(__file__).resolve().parent
SPEC = HERE / "envgen.toml"
VERIFY = "VERIFY.sh"
SNAPSHOT = SELFHOST_SNAPSHOT
BUSYBOX = "selfhost/busybox"
PLAN = "selfhost/plan.json"
ENTER = "selfhost/enter.sh"
BUSYBOX_DEB = "busybox-static"


def snapshot_selfhost(store: Store, **kwargs) -> str:
    """Snapshot envgen's own runtime lock into *store*; its id.  Fetches what the store lacks (*kwargs*: snapshot's)."""
    from ..lock import load_lock_for
    from ..snapshot import snapshot

    spec, lock = load_lock_for(SPEC)
    return snapshot(store, lock, spec.path if spec else None, **kwargs).id


@dataclass
class SelfHost:
    """What a bundle carries so that it verifies itself: members made here, and the snapshot's objects."""

    snapshot_id: str
    members: dict[str, tuple[str, bytes, int]]  # path -> (role, bytes, mode)
    objects: dict[str, str]                      # sha256 -> role, every object of the snapshot


def bundle_members(store: Store, sid: str) -> SelfHost:
    inputs = BuildInputs.load(store, sid)
    asm = assembly(inputs, [])
    busybox = busybox_binary(store, inputs.lock)
    bb_deb = inputs.lock.deb(BUSYBOX_DEB)
    snap = store.read_root(sid)
    if bb_deb is None or snap != asm.files["snapshot.json"]:
        raise BuildError(f"envgen's own runtime snapshot {sid[:16]}… is inconsistent", hint="re-lock envgen/selfhost")
    wheels = [(name, _object_sha(p)) for name, p in asm.wheels]
    tools = [(name, _object_sha(p)) for name, p in asm.tools]
    values = {
        "BUSYBOX_SHA256": hashlib.sha256(busybox).hexdigest(),
        "BUSYBOX_DEB": bb_deb.sha256,
        "PYTHON": asm.command[0],
        "DEBS": " ".join(sha for _, sha in asm.debs),
        "WHEELS": " ".join(f"{name}={sha}" for name, sha in wheels),
        "TOOLS": " ".join(f"{name}={sha}" for name, sha in tools),
        "LOCK": hashlib.sha256(asm.files["pylock.toml"]).hexdigest(),
    }
    script = render_verify(values)
    members = {
        VERIFY: ("verify-script", script, 0o755),
        SNAPSHOT: ("selfhost-snapshot", snap, 0o644),
        BUSYBOX: ("selfhost-busybox", busybox, 0o755),
        PLAN: ("selfhost-plan", asm.files["plan.json"], 0o644),
        ENTER: ("selfhost-launcher", (HERE.parent / "builders" / "enter.sh").read_bytes(), 0o644),
    }
    objects = {o["sha256"]: "selfhost" for o in inputs.manifest["objects"]}
    return SelfHost(sid, members, objects)


def _object_sha(path: Path) -> str:
    return path.name  # store objects are named by their sha256


def render_verify(values: dict[str, str]) -> bytes:
    """VERIFY.sh: the template with this bundle's pins written into its data block."""
    template = (HERE / "VERIFY.sh").read_text()
    block = "".join(f"{k}='{v}'\n" for k, v in values.items())
    marker = "# @DATA@\n"
    if template.count(marker) != 1:
        raise AssertionError("envgen/selfhost/VERIFY.sh lost its data marker")
    return template.replace(marker, block).encode()
