"""Equality and repr by attributes, for the small record classes on ``envgen run``'s path.

Those classes (:class:`~envgen.sandbox.Bind`, :class:`~envgen.runtimes.base.Env`,
:class:`~envgen.run.records.Record`, …) are written out by hand instead of as
dataclasses: importing :mod:`dataclasses` (it imports :mod:`inspect`, which
imports :mod:`ast`, :mod:`dis` and :mod:`tokenize`) and generating their
methods cost every run several milliseconds of a start-up budget of a few
tens (docs/benchmarks.md, run start-up).  Everything else uses dataclasses.
"""

from __future__ import annotations


class Value:
    """Equal when of the same class with equal attributes; repr lists the attributes; unhashable."""

    __hash__ = None  # type: ignore[assignment]  # mutable, compared by value: like a dataclass with eq

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        return self.__dict__ == other.__dict__

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in self.__dict__.items())})"
