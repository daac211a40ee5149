# The environment tree: the same root filesystem the embedded builder makes.
#
#   /usr /lib /lib64 /etc ...   the pinned Debian runtime (.deb data members)
#   /opt/env                    venv-style prefix on the Debian interpreter
#   /.envgen                    the lock and snapshot manifest it came from
#
# busybox unpacks the runtime .debs (sorted by package name, as the embedded
# builder does); then the tree's own Python, started through the tree's own
# ld.so, runs build_env.py: skeleton, wheels (PEP 427), local projects built
# by their pinned flit_core, unchecked-hash bytecode.  No uv, no nixpkgs.
{ fetch, bootstrap, data }:
let
  fetchAll = map fetch;
in
derivation {
  name = "${data.name}-env";
  system = "x86_64-linux";
  builder = bootstrap.bb;
  args = [ "sh" "-e" ./build-env.sh ];
  busybox = bootstrap.bb;
  bootstrapCheck = bootstrap.check;   # the trust root is checked before anything runs
  buildEnvPy = ./build_env.py;
  layoutPy = ../../envgen/layout.py;  # the tree layout, shared with the embedded builder
  debs = fetchAll data.debs;          # runtime .debs, sorted by package name
  wheels = fetchAll data.wheels;
  buildWheels = fetchAll data.buildWheels;
  localSources = fetchAll data.locals;
  localNames = map (l: l.project) data.locals;
  lockFile = fetch data.lock;
  manifestFile = fetch data.manifest;
  pythonVersion = data.python;
  pythonFull = data.pythonFull;
  SOURCE_DATE_EPOCH = toString data.epoch;
  PYTHONHASHSEED = "0";
  PYTHONDONTWRITEBYTECODE = "1";
}
