"""Locking: spec -> PEP 751 lock (PyPI via uv, Debian via apt), and reading locks back."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import EnvgenError

if TYPE_CHECKING:
    from ..spec import Spec
    from . import pylock


def load_lock_for(path: str | Path, ui=None) -> tuple[Spec | None, pylock.Lock]:
    """Accept a spec (its lock is read) or a lock file itself."""
    # imported here: `envgen lock` imports this package first, and starts uv before it needs these
    from ..spec import load_spec
    from . import pylock

    path = Path(path)
    if not path.is_file():
        raise EnvgenError(f"{path}: no such file", hint="give a spec such as specs/abide.toml or a pylock.*.toml")
    try:
        head = tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise EnvgenError(f"{path}: invalid TOML: {exc}") from None
    if "lock-version" in head:
        return None, pylock.load(path)
    spec = load_spec(path)
    if not spec.lock_path.is_file():
        raise EnvgenError(f"{spec.path} has no lock yet ({spec.lock_path} is missing)",
                          hint=f"run `envgen lock {spec.path}`")
    lock = pylock.load(spec.lock_path)
    if lock.spec_sha256 != spec.sha256 and ui is not None:
        ui.warn(f"{spec.lock_path} was made from an earlier version of {spec.path}; run `envgen lock {spec.path}`")
    return spec, lock
