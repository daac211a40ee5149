# Builder of env.nix, run by busybox sh in the Nix sandbox (no /bin/sh there).
# 1. busybox unpacks the runtime .debs into $out, in package-name order;
# 2. the inputs the assembler reads are laid out under /.build: the wheelhouse
#    (locked wheels and the wheels built from source, under their file names),
#    the assembler's own tools, the lock, the manifest, the plan;
# 3. the tree's own Python runs envgen's assembler with $out as / (envgen/builders/enter.sh),
#    exactly as the embedded builder runs it under bubblewrap.
bb=$busybox
$bb mkdir -p $out
for deb in $debs; do
  $bb dpkg-deb -x $deb $out
done
$bb chmod -R u+w $out
in=$NIX_BUILD_TOP/inputs
$bb mkdir -p $in/wheels $in/tools
set -- $wheelFiles
for w in $wheels; do $bb ln -s $w $in/wheels/$1; shift; done
for d in $builtWheels; do $bb ln -s $d/*.whl $in/wheels/; done
set -- $toolFiles
for t in $tools; do $bb ln -s $t $in/tools/$1; shift; done
$bb cp $assemblePy $in/assemble.py
$bb cp $layoutPy $in/layout.py
$bb cp $lockFile $in/pylock.toml
$bb cp $manifestFile $in/snapshot.json
$bb cp $planPath $in/plan.json
$bb sh $enterSh $bb $out --bind $in /.build --bind /nix/store /nix/store --assembler -- \
  /usr/bin/python$pythonVersion -I -B -S /.build/assemble.py assemble /.build/plan.json
# the mount points enter.sh made, and what a build leaves in /tmp and /run (as the embedded builder removes them)
$bb rm -rf $out/.build $out/.bb $out/build $out/nix
for d in tmp run dev; do $bb rm -rf $out/$d; $bb mkdir $out/$d; done
