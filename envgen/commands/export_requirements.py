"""envgen export-requirements SPEC"""

from __future__ import annotations

import sys

from ..fsutil import atomic_write
from ..lock import load_lock_for
from ..lock.export import requirements_txt
from . import variant_option


def register(sub, parents, fmt):
    p = sub.add_parser(
        "export-requirements",
        parents=parents,
        formatter_class=fmt,
        help="write a hashed requirements.txt for pip --require-hashes and pip-sync",
        description="Write the lock's PyPI packages as a requirements.txt with --hash lines\n"
        "(wheel and sdist), which `pip install --require-hashes -r` and pip-sync\n"
        "accept. Local projects cannot carry hashes and are listed as comments;\n"
        "the Debian runtime has no requirements.txt form.",
        epilog="example:\n  envgen export-requirements specs/abide.toml -o requirements.txt\n"
        "  pip install --require-hashes --no-deps -r requirements.txt",
    )
    p.add_argument("spec", metavar="SPEC", help="a spec (its lock is read) or a pylock.*.toml")
    variant_option(p)
    p.add_argument("-o", "--output", metavar="FILE", help="write here (atomically) instead of stdout")
    p.set_defaults(func=run)


def run(args, ui) -> int:
    _, lock = load_lock_for(args.spec, ui, args.variant)
    text, count, skipped = requirements_txt(lock)
    if args.output:
        atomic_write(args.output, text)
        ui.emit({"output": args.output, "packages": count, "skipped_local": skipped},
                lambda out: out.print(f"wrote {args.output}: {count} pinned packages"))
    elif ui.json:
        ui.emit({"output": None, "packages": count, "skipped_local": skipped, "text": text})
    else:
        sys.stdout.write(text)
    return 0
