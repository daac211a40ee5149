"""Output: human text and progress on stderr, or one JSON document on stdout.

Commands never print directly; they return a result object and a function
that renders it for people.  ``--json`` swaps the renderer for
``json.dumps``, and keeps stderr quiet apart from errors.
"""

from __future__ import annotations

import json
import sys
from contextlib import contextmanager
from typing import Any, Callable

from rich.console import Console
from rich.markup import escape


class UI:
    def __init__(self, json_mode: bool = False, quiet: bool = False):
        self.json = json_mode
        self.quiet = quiet or json_mode
        self.err = Console(stderr=True, highlight=False, soft_wrap=True)
        self.out = Console(highlight=False, soft_wrap=True, markup=False, emoji=False)

    @property
    def interactive(self) -> bool:
        return not self.quiet and self.err.is_terminal

    def info(self, msg: str) -> None:
        if not self.quiet:
            self.err.print(escape(msg))

    def warn(self, msg: str) -> None:
        if not self.json:
            self.err.print(f"[yellow]warning:[/yellow] {escape(msg)}")

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
        elif human is not None:
            human(self.out)
