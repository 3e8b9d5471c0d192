"""taquba-memo-agents costs nothing until an integration is used: no framework is imported."""

from __future__ import annotations

import subprocess
import sys

FRAMEWORKS = ("openai", "httpx", "langchain_core", "langgraph", "pydantic_ai", "agents", "litellm")


def test_importing_the_package_imports_no_framework() -> None:
    probe = (
        "import sys, taquba_memo_agents; "
        f"print(sorted(name for name in {FRAMEWORKS!r} if name in sys.modules))"
    )
    answer = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    )
    assert answer.stdout.strip() == "[]"
