"""Locking: spec -> PEP 751 lock (PyPI via uv, Debian via apt), and reading locks back."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import EnvgenError

if TYPE_CHECKING:
    from ..spec import Spec
    from . import pylock


def load_lock_for(path: str | Path, ui=None, variant: str | None = None) -> tuple[Spec | None, pylock.Lock]:
    """Accept a spec (its lock is read) or a lock file itself.

    *variant*: the spec's ``[variants.NAME]`` (its lock ``pylock.SPECNAME.NAME.toml``); the spec returned is
    then the variant's.  A lock file is one env already: a variant other than its own is refused.
    """
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
        lock = pylock.load(path)
        if variant is not None and lock.variant != variant:
            its = f"variant {lock.variant!r}" if lock.variant else "the default env"
            raise EnvgenError(f"{path} is the lock of {its}, not of variant {variant!r}",
                              hint="give the spec with --variant, or the variant's lock")
        return None, lock
    spec = load_spec(path).for_variant(variant)
    if not spec.lock_path.is_file():
        again = f"envgen lock {spec.path}" + (f" --variant {variant}" if variant else "")
        raise EnvgenError(f"{spec.path} has no lock yet ({spec.lock_path} is missing)", hint=f"run `{again}`")
    lock = pylock.load(spec.lock_path)
    if lock.spec_sha256 != spec.sha256 and ui is not None:
        ui.warn(f"{spec.lock_path} was made from an earlier version of {spec.path}; run `envgen lock {spec.path}`")
    return spec, lock
