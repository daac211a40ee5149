# The environment tree: the same root filesystem the embedded builder makes.
#
#   /usr /lib /lib64 /etc ...   the pinned Debian runtime (.deb data members)
#   /opt/env                    venv-style prefix on the Debian interpreter
#   /.envgen                    the lock and snapshot manifest it came from
#
# busybox unpacks the runtime .debs (sorted by package name, as the embedded
# builder does); then the tree's own Python, with the tree as / (envgen/builders/enter.sh),
# runs envgen's assembler (envgen/builders/assemble.py, the same program the
# embedded builder runs under bwrap): skeleton, every wheel installed by pypa
# installer, unchecked-hash bytecode.  No uv, no nixpkgs.
{ fetch, bootstrap, data, builtWheels }:
let
  fetchAll = map fetch;
  tools = [ data.tools.installer data.tools.pyproject_hooks ];
  plan = import ./plan.nix data {
    python_full = data.pythonFull;
    wheelhouse = "/.build/wheels";
    lock = "/.build/pylock.toml";
    manifest = "/.build/snapshot.json";
  };
in
derivation {
  name = "${data.name}-env";
  system = "x86_64-linux";
  builder = bootstrap.bb;
  args = [ "sh" "-e" ./build-env.sh ];
  busybox = bootstrap.bb;
  bootstrapCheck = bootstrap.check;   # the trust root is checked before anything runs
  enterSh = ../../builders/enter.sh;  # busybox unshare + pivot_root, shared with VERIFY.sh
  assemblePy = ../../builders/assemble.py;
  layoutPy = ../../layout.py;  # the tree layout, shared with the embedded builder
  debs = fetchAll data.debs;          # runtime .debs, sorted by package name
  wheels = fetchAll data.wheels;
  wheelFiles = map (w: w.file) data.wheels;
  inherit builtWheels;
  tools = fetchAll tools;
  toolFiles = map (t: t.file) tools;
  lockFile = fetch data.lock;
  manifestFile = fetch data.manifest;
  inherit plan;
  passAsFile = [ "plan" ];
  pythonVersion = data.python;
  SOURCE_DATE_EPOCH = toString data.epoch;
}
