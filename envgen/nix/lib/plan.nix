# What every run of envgen's assembler (envgen/builders/assemble.py) is told,
# whether it builds a wheel (wheel.nix) or the env (env.nix): the interpreter,
# the clock, the layout module and its own pinned tools, all under /.build.
# The embedded builder writes the same keys (envgen/builders/embedded.py, _plan).
data: extra: builtins.toJSON ({
  python = data.python;
  python_cmd = [ "/usr/bin/python${data.python}" ];
  epoch = data.epoch;
  layout = "/.build/layout.py";
  tools = {
    installer = "/.build/tools/${data.tools.installer.file}";
    pyproject_hooks = "/.build/tools/${data.tools.pyproject_hooks.file}";
  };
} // extra)
