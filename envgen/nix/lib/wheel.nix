# One source (a local project or an sdist) built into a wheel, in a build root:
# the runtime and build .debs (compilers, headers) unpacked by busybox, the
# source and its pinned build tools under /.build, and envgen's assembler run
# by the root's own Python with the root as / (envgen/builders/enter.sh) -- the same program,
# paths and environment as the embedded builder, so the wheel is the same.
{ fetch, bootstrap, data, source }:
let
  plan = import ./plan.nix data {
    build = {
      name = source.project;
      source = "/.build/source/${source.source.file}";
      backend = source.backend;
      backend_path = source.backendPath;
      requires = map (r: "/.build/tools/${r.file}") source.requires;
    };
    out = "/.build/out";
  };
  tools = source.requires ++ [ data.tools.installer data.tools.pyproject_hooks ];
in
derivation {
  name = "${data.name}-wheel-${source.project}";
  system = "x86_64-linux";
  builder = bootstrap.bb;
  args = [ "sh" "-e" ./build-wheel.sh ];
  busybox = bootstrap.bb;
  bootstrapCheck = bootstrap.check;
  enterSh = ../../builders/enter.sh;  # busybox unshare + pivot_root, shared with VERIFY.sh
  assemblePy = ../../builders/assemble.py;
  layoutPy = ../../layout.py;
  debs = map fetch (data.debs ++ data.buildDebs);  # sorted by package name, as the embedded build root
  sourceFile = fetch source.source;
  sourceName = source.source.file;
  tools = map fetch tools;
  toolFiles = map (t: t.file) tools;
  inherit plan;
  passAsFile = [ "plan" ];
  pythonVersion = data.python;
  SOURCE_DATE_EPOCH = toString data.epoch;
}
