"""The lock as a hashed requirements.txt (pip --require-hashes, pip-sync)."""

from __future__ import annotations

from .pylock import Lock


def requirements_txt(lock: Lock) -> tuple[str, int, list[str]]:
    lines = [
        f"# Exported by `envgen export-requirements` from the lock of {lock.spec}",
        f"# (snapshot date {lock.snapshot_date.iso}, Python {lock.python}, {', '.join(lock.platforms)}).",
        "# Install with: pip install --require-hashes --no-deps -r THIS_FILE",
    ]
    skipped = []
    count = 0
    for p in sorted(lock.packages, key=lambda p: p.name):
        if p.is_local:
            skipped.append(p.name)
            lines.append(f"# {p.name}: local project at {p.directory} (install it separately)")
            continue
        if p.vcs is not None:  # pip --require-hashes takes no VCS requirement
            skipped.append(p.name)
            lines.append(f"# {p.name}: git {p.vcs.url} at commit {p.vcs.commit_id} (install it separately)")
            continue
        req = f"{p.name}=={p.version}"
        if p.marker:
            req += f" ; {p.marker}"
        hashes = sorted({a.sha256 for a in p.wheels} | ({p.sdist.sha256} if p.sdist else set()))
        lines.append(req + " \\")
        lines += [f"    --hash=sha256:{h}" + (" \\" if i < len(hashes) - 1 else "") for i, h in enumerate(hashes)]
        count += 1
    return "\n".join(lines) + "\n", count, skipped
