{
  description = "envgen environments, built hermetically from envgen snapshots (no nixpkgs, no binary cache)";

  # No inputs: everything a build reads is a fixed-output artifact of the
  # snapshot, seeded into the store by `envgen nix seed SPEC`.
  outputs = { self }:
    let
      o = import ./nix/lib/outputs.nix { specDir = ./nix/specs; };
    in
    {
      packages.x86_64-linux = o.packages;
      apps.x86_64-linux = o.apps;
      checks.x86_64-linux = o.packages;
    };
}
