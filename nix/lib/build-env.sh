# Builder of env.nix, run by busybox sh in the Nix sandbox (no /bin/sh there).
bb=$busybox
$bb mkdir -p $out
for deb in $debs; do
  $bb dpkg-deb -x $deb $out
done
$bb chmod -R u+w $out
ld=$out$($bb readlink $out/lib64/ld-linux-x86-64.so.2)
libs=$out/lib/x86_64-linux-gnu:$out/usr/lib/x86_64-linux-gnu
export ENVGEN_LD=$ld ENVGEN_LIBS=$libs
exec $ld --library-path $libs $out/usr/bin/python$pythonVersion -I -B -S $buildEnvPy
