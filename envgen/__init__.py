"""envgen: source-pinned, reproducible research environments with a Python core."""

__version__ = "0.1.0"

# The format version of each kind of file envgen writes lives in envgen.formats.
