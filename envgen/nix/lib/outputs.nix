# Every spec under nix/specs/*.json (written by `envgen nix SPEC`) becomes
#   packages.<name>-env     the environment tree (root filesystem layout)
#   packages.<name>-app     bin/python and bin/<run command>, runnable from /nix/store
#   packages.<name>-bootstrap-check   the busybox trust-root check
#   (and one <name>-wheel-<project> derivation per source the lock builds)
#   apps.<name>             the spec's [run] command
{ specDir }:
let
  fetch = import ./fetch.nix;
  files = builtins.attrNames (builtins.readDir specDir);
  jsons = builtins.filter (f: builtins.match ".*\\.json" f != null) files;
  one = file:
    let
      data = builtins.fromJSON (builtins.readFile (specDir + "/${file}"));
      bootstrap = import ./bootstrap.nix { inherit fetch data; };
      # every source of the lock (local projects, sdists) built into a wheel, each its own derivation
      builtWheels = map (source: import ./wheel.nix { inherit fetch bootstrap data source; }) data.sources;
      env = import ./env.nix { inherit fetch bootstrap data builtWheels; };
      app = import ./app.nix { inherit bootstrap env data; };
      cmd = if data.commandIsPython then baseNameOf (builtins.head data.command) else "python";
    in
    {
      packages = {
        "${data.name}-env" = env;
        "${data.name}-app" = app;
        "${data.name}-bootstrap-check" = bootstrap.check;
      };
      apps."${data.name}" = { type = "app"; program = "${app}/bin/${cmd}"; };
    };
  all = map one jsons;
  merge = attr: builtins.foldl' (acc: x: acc // x.${attr}) { } all;
in
{ packages = merge "packages"; apps = merge "apps"; }
