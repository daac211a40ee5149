"""The one policy for missing tools: skip here, fail on CI."""

from __future__ import annotations

import pytest

from helpers import missing_tools, require_tool

NOT_A_TOOL = "envgen-no-such-tool-xyz"


def test_missing_tool_skips_without_ci(monkeypatch):
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match=NOT_A_TOOL):
        require_tool("sh", NOT_A_TOOL)


def test_missing_tool_fails_on_ci(monkeypatch):
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match=f"{NOT_A_TOOL}.*CI is set"):
        require_tool(NOT_A_TOOL, why="apt-get install it")


def test_present_tools_pass(monkeypatch):
    monkeypatch.setenv("CI", "true")
    require_tool("sh")
    assert missing_tools("sh", NOT_A_TOOL) == [NOT_A_TOOL]

