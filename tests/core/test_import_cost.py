"""Importing taquba_memo loads only what a call needs: nothing for URLs, the CLI or telemetry.

Each check runs ``import taquba_memo`` in a fresh interpreter and reads its
``sys.modules``: a module another test already imported cannot hide here.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

NOT_ON_IMPORT = (
    "urllib.request",  # http.client, email, ...: url2pathname is an unquote on POSIX
    "importlib.metadata",  # adapters are looked up when a URL is opened
    "opentelemetry",
    "taquba_memo.cli",
    "uuid",  # a claim's token
)


def modules_after(code: str) -> set[str]:
    script = f"import json, sys\n{code}\nprint(json.dumps(sorted(sys.modules)))"
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    )
    return set(json.loads(result.stdout))


@pytest.mark.parametrize("module", NOT_ON_IMPORT)
def test_importing_the_package_does_not_import(module: str) -> None:
    loaded = modules_after("import taquba_memo")
    assert module not in loaded


def test_opening_a_file_url_needs_no_urllib_request(tmp_path: object) -> None:
    loaded = modules_after(
        f"import taquba_memo\ntaquba_memo.open_backend({'file://' + str(tmp_path)!r})"
    )
    assert "urllib.request" not in loaded
