{
  description = "envgen environments, built hermetically from envgen snapshots (no nixpkgs, no binary cache)";

  # No inputs: everything a build reads is a fixed-output artifact of the
  # snapshot, seeded into the store by `envgen nix seed SPEC`.  envgen writes
  # this file (from envgen/nix/template/flake.nix) and its Nix library
  # (envgen/nix/lib) into every flake directory it generates.
  outputs = { self }:
    let
      o = import ./envgen/nix/lib/outputs.nix { specDir = ./nix/specs; };
    in
    {
      packages.x86_64-linux = o.packages;
      apps.x86_64-linux = o.apps;
      checks.x86_64-linux = o.packages;
    };
}
