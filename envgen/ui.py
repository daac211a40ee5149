"""Output: human text and progress on stderr, or one JSON document on stdout.

Commands never print directly; they return a result object and a function
that renders it for people.  ``--json`` swaps the renderer for
``json.dumps``, and keeps stderr quiet apart from errors.  An error is one
line on stderr, and with ``--json`` also ``{"error": {"type": …, "message": …,
"hint": …, …}}`` on stdout (:meth:`UI.error`).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from contextlib import contextmanager

TYPE_CHECKING = False  # not typing's: `envgen run` does without importing typing (mypy knows the name)
if TYPE_CHECKING:
    from typing import Any

    from rich.console import Console

    from .errors import EnvgenError
else:
    # rich is imported on first use (see UI.err/UI.out), not at start-up, and typing
    # not at all; at run time the annotations resolve (typing.get_type_hints) with
    # Console and Any as object.
    Any = Console = object


class UI:
    def __init__(self, json_mode: bool = False, quiet: bool = False):
        self.json = json_mode
        self.quiet = quiet or json_mode
        self._err = None
        self._out = None
        self._emitted = False  # stdout holds one JSON document at most

    # rich is imported on first use: commands that print little start faster
    @property
    def err(self):
        if self._err is None:
            from rich.console import Console

            self._err = Console(stderr=True, highlight=False, soft_wrap=True)
        return self._err

    @property
    def out(self):
        if self._out is None:
            from rich.console import Console

            self._out = Console(highlight=False, soft_wrap=True, markup=False, emoji=False)
        return self._out

    @property
    def interactive(self) -> bool:
        return not self.quiet and sys.stderr.isatty()

    def info(self, msg: str) -> None:
        if not self.quiet:
            if self.interactive:
                from rich.markup import escape

                self.err.print(escape(msg))
            else:
                sys.stderr.write(msg + "\n")

    def warn(self, msg: str) -> None:
        if self.json:
            return
        if sys.stderr.isatty():
            from rich.markup import escape

            self.err.print(f"[yellow]warning:[/yellow] {escape(msg)}")
        else:
            sys.stderr.write(f"warning: {msg}\n")

    @contextmanager
    def status(self, msg: str):
        """A spinner on a terminal; nothing otherwise. Yields a function to update it."""
        if self.interactive:
            with self.err.status(msg) as st:
                yield lambda m: st.update(m)
        else:
            yield lambda m: None

    def emit(self, result: dict[str, Any], human: Callable[[Console], None] | None = None) -> None:
        if self.json:
            sys.stdout.write(json.dumps(result, sort_keys=True, indent=2, default=str) + "\n")
            self._emitted = True
        elif human is not None:
            human(self.out)

    def error(self, exc: EnvgenError) -> None:
        """An error: one line on stderr; with ``--json`` also ``{"error": exc.to_json()}`` on stdout.

        The document's ``error.type`` is the class name from :mod:`envgen.errors`
        (``FetchError``, ``ToolMissing``, …), so scripts branch on it and on the
        type's fields (``FetchError.artifacts``), never on the message text.
        A command that already printed its result (``verify`` with nothing
        verifiable) keeps that one document.
        """
        print(f"envgen: error: {exc}", file=sys.stderr)
        if self.json and not self._emitted:
            self.emit({"error": exc.to_json()})
