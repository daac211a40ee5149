# Entry points that run the tree straight from /nix/store, without bwrap:
# the tree's own ld.so with the tree's library directories, the tree's
# interpreter presented as /opt/env/bin/python (so the venv prefix applies),
# and PYTHONHOME set to the tree's /usr (so the standard library is the
# tree's, never the host's); no host locale files.  The tree itself is not patched, so it stays
# identical to the embedded builder's.
{ bootstrap, env, data }:
let
  bb = bootstrap.bb;
  run = argv: ''
    #!${bb} sh
    export PYTHONHOME=${env}/usr PYTHONNOUSERSITE=1 PYTHONDONTWRITEBYTECODE=1
    # the C locale (UTF-8 for Python) and the tree's gconv: glibc would otherwise map the host's
    # /usr/lib/locale/C.utf8 and gconv-modules.cache
    export LC_ALL=C PYTHONUTF8=1 GCONV_PATH=${env}/usr/lib/x86_64-linux-gnu/gconv
    exec ${env}/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2 \
      --library-path ${env}/lib/x86_64-linux-gnu:${env}/usr/lib/x86_64-linux-gnu \
      --argv0 ${env}/opt/env/bin/python ${env}/usr/bin/python${data.python} ${argv} "$@"
  '';
  # a console script is a Python file: run it with the env's interpreter
  command = builtins.head data.command;
  script = if builtins.substring 0 1 command == "/" then command else "/opt/env/bin/${command}";
  extra = builtins.concatStringsSep " " (map (a: "'${a}'") (builtins.tail data.command));
in
derivation {
  name = "${data.name}-app";
  system = "x86_64-linux";
  builder = bb;
  pythonWrapper = run "";
  commandWrapper = if data.commandIsPython then run "${env}${script} ${extra}" else "";
  commandName = baseNameOf command;
  passAsFile = [ "pythonWrapper" "commandWrapper" ];
  args = [ "sh" "-ec" ''
    ${bb} mkdir -p $out/bin
    ${bb} cp $pythonWrapperPath $out/bin/python
    if [ -s $commandWrapperPath ]; then ${bb} cp $commandWrapperPath $out/bin/$commandName; fi
    ${bb} chmod 555 $out/bin/*
  '' ];
}
