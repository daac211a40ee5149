# Builder of wheel.nix: a build root from the runtime and build .debs, the
# source and its build tools under /.build, the assembler's build-wheel step.
bb=$busybox
root=$NIX_BUILD_TOP/root
$bb mkdir -p $root
for deb in $debs; do
  $bb dpkg-deb -x $deb $root
done
$bb chmod -R u+w $root
in=$NIX_BUILD_TOP/inputs
$bb mkdir -p $in/tools $in/source $in/out
set -- $toolFiles
for t in $tools; do $bb ln -sf $t $in/tools/$1; shift; done
$bb ln -s $sourceFile $in/source/$sourceName
$bb cp $assemblePy $in/assemble.py
$bb cp $layoutPy $in/layout.py
$bb cp $planPath $in/plan.json
$bb sh $enterSh $bb $root --bind $in /.build --bind /nix/store /nix/store --assembler -- \
  /usr/bin/python$pythonVersion -I -B -S /.build/assemble.py build-wheel /.build/plan.json
$bb mkdir -p $out
$bb cp $in/out/*.whl $out/
