"""The tested recipes of docs/agents.md, extracted from the page and run as written."""

from __future__ import annotations

import sys
import types
from pathlib import Path

import pytest

from .fake_openai import FakeOpenAI

DOC = Path(__file__).resolve().parents[2] / "docs" / "agents.md"
PLACEHOLDER_URL = "http://127.0.0.1:8000/v1"


def recipe(heading: str) -> str:
    """The python code block under the ``## heading`` of the page."""
    section = DOC.read_text().split(f"\n## {heading}\n", 1)[1].split("\n## ", 1)[0]
    return section.split("\n```python\n", 1)[1].split("\n```\n", 1)[0]


#: Each tested recipe's heading, and what its step pays (once: its retry pays nothing).
PAID = {
    "openai (tested)": 2,
    "httpx, for any httpx-based SDK (tested)": 1,
    "LangGraph (tested)": 2,
    "pydantic-ai (tested)": 2,  # a tool call, then the answer
    "openai-agents (tested)": 2,
}


@pytest.mark.parametrize("heading", PAID)
def test_the_recipe_pays_each_call_once(
    heading: str, fake_openai: FakeOpenAI, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    code = recipe(heading).replace(PLACEHOLDER_URL, fake_openai.base_url)
    code = code.replace("/tmp/memos", str(tmp_path / "memos"))
    module = types.ModuleType("agents_recipe")  # a module: typing resolves its annotations
    monkeypatch.setitem(sys.modules, module.__name__, module)
    exec(compile(code, str(DOC), "exec"), module.__dict__)
    assert fake_openai.total_paid == PAID[heading]
    module.store.close()
