"""The output layer: its annotations resolve, without importing rich at start-up."""

from __future__ import annotations

import subprocess
import sys
import typing

from envgen.ui import UI


def test_emit_annotations_resolve():
    hints = typing.get_type_hints(UI.emit)
    assert set(hints) == {"result", "human", "return"}


def test_ui_does_not_import_rich_at_start_up():
    code = "import sys, envgen.ui; print('rich' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout == "False\n"
