"""The output layer: its annotations resolve, without importing rich at start-up."""

from __future__ import annotations

import json
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


def test_json_error_document(capsys):
    from envgen.errors import FetchError

    ui = UI(json_mode=True)
    ui.error(FetchError("cannot fetch a.deb: gone", hint="h", artifacts=[{"name": "a.deb", "role": "deb"}]))
    out, err = capsys.readouterr()
    assert err == "envgen: error: cannot fetch a.deb: gone (hint: h)\n"
    assert json.loads(out) == {"error": {"type": "FetchError", "message": "cannot fetch a.deb: gone", "hint": "h",
                                         "artifacts": [{"name": "a.deb", "role": "deb"}]}}


def test_an_error_after_the_result_keeps_one_json_document(capsys):
    from envgen.errors import EnvgenError

    ui = UI(json_mode=True)
    ui.emit({"level": None})
    ui.error(EnvgenError("nothing could be verified"))
    out, err = capsys.readouterr()
    assert json.loads(out) == {"level": None} and err.count("\n") == 1
    UI().error(EnvgenError("plain"))  # without --json: the line only
    assert capsys.readouterr() == ("", "envgen: error: plain\n")
