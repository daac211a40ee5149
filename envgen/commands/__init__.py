"""One module per command; see :data:`envgen.cli.COMMANDS`."""


def variant_option(p) -> None:
    """``--variant NAME``: the spec's ``[variants.NAME]`` env instead of the default one."""
    p.add_argument("--variant", metavar="NAME", default=None,
                   help="use the spec's [variants.NAME] env (its lock pylock.SPECNAME.NAME.toml), "
                        "e.g. cuda12; default: the spec's default env")
