"""envgen nix SPEC | envgen nix seed SPEC"""

from __future__ import annotations

import textwrap
from pathlib import Path

from ..errors import EnvgenError
from ..lock import load_lock_for
from ..snapshot.store import open_store


def register(sub, parents, fmt):
    p = sub.add_parser(
        "nix",
        parents=parents,
        formatter_class=fmt,
        help="write the Nix flake's data for a spec, or seed the Nix store from the snapshot",
        description=textwrap.dedent(
            """\
            envgen nix SPEC        write nix/specs/NAME.json (the flake's per-spec data,
                                   from the lock and the snapshot manifest) next to flake.nix
            envgen nix seed SPEC   load the snapshot's artifacts into the Nix store
                                   (nix-store --add-fixed), verifying those already there

            The flake has no nixpkgs input and builds offline from seeded
            fixed-output artifacts only:
              packages.x86_64-linux.NAME-env   the environment tree
              apps.x86_64-linux.NAME           the spec's [run] command

            `envgen build SPEC --builder nix` does both steps, then `nix build`.
            """
        ),
        epilog="example:\n  envgen nix seed specs/abide.toml && nix build .#abide-env && nix run .#abide -- --help",
    )
    p.add_argument("words", nargs="+", metavar="[seed] SPEC", help="a spec (its lock is read) or a pylock.*.toml")
    p.add_argument("--flake-dir", metavar="DIR", default=None,
                   help="where flake.nix, nix/ and envgen/nix/lib live (default: the nearest ancestor of SPEC "
                        "holding flake.nix and envgen/nix/lib, else SPEC's project)")
    p.set_defaults(func=run)


def run(args, ui) -> int:
    words = list(args.words)
    action = "generate"
    if words[0] in ("seed", "generate") and len(words) > 1:
        action = words.pop(0)
    if len(words) != 1:
        raise EnvgenError(f"expected one SPEC, got {' '.join(words)}", hint="envgen nix [seed] SPEC")
    from ..builders import BuildInputs, nix, snapshot_offline

    store = open_store(args.store)
    spec, lock = load_lock_for(words[0], ui)
    where = spec.path if spec else lock.path
    assert where is not None  # a loaded lock has its path
    flake_dir = Path(args.flake_dir) if args.flake_dir else nix.flake_dir_for(where)
    if action == "seed":
        nix.require_nix()
    inputs = BuildInputs.load(store, snapshot_offline(store, lock, spec.path if spec else None))
    path, data, generated = nix.generate(inputs, flake_dir)
    result = {"spec": lock.name, "data": str(path), "flake": str(path.parents[2]), "snapshot": data["snapshot"]}
    if action == "seed":
        with ui.status(f"seeding the Nix store for {lock.name}") as update:
            result.update(nix.seed(store, data, generated, lock, update))

    def human(out):
        out.print(f"{lock.name}: wrote {path}")
        if action == "seed":
            out.print(f"  seeded {result['added']} artifacts into the Nix store "
                      f"({result['present']} already there, all verified)")
        out.print(f"  build: nix build {path.parents[2]}#{lock.name}-env"
                  f"   (or nix-build {path.parents[2]}/nix/default.nix -A {lock.name}-env)")

    ui.emit(result, human)
    return 0
