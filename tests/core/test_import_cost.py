"""Importing taquba_memo loads only what a call needs: no asyncio, store, URLs, CLI or telemetry.

Each check runs ``import taquba_memo`` in a fresh interpreter and reads its
``sys.modules``: a module another test already imported cannot hide here.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

NOT_ON_IMPORT = (
    "asyncio",  # as costly as the rest of the package together
    "taquba_memo._store",
    "taquba_memo._memo",
    "taquba_memo._backends",
    "taquba_memo._codecs",
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


def test_importing_the_package_imports_only_it_and_its_errors() -> None:
    loaded = modules_after("import taquba_memo")
    assert {name for name in loaded if name.startswith("taquba_memo")} == {
        "taquba_memo",
        "taquba_memo.errors",
    }


def test_a_name_imports_its_module_on_first_use() -> None:
    loaded = modules_after("from taquba_memo import request_key")
    assert "taquba_memo._request_key" in loaded
    assert "taquba_memo._store" not in loaded
    loaded = modules_after("import taquba_memo\ntaquba_memo.MemoStore")
    assert {"taquba_memo._store", "asyncio"} <= loaded


def cli_modules_after(*argv: str) -> set[str]:
    """The modules loaded once the command line has handled ``argv`` (output discarded)."""
    return modules_after(
        "import contextlib, io\n"
        "from taquba_memo.cli import main\n"
        "sink = io.StringIO()\n"
        "with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):\n"
        "    try:\n"
        f"        main({list(argv)!r})\n"
        "    except SystemExit:\n"
        "        pass"
    )


@pytest.mark.parametrize(
    "argv", [["--help"], ["--version"], ["runs", "--help"], ["no-such-command"]]
)
def test_the_command_line_answers_help_and_usage_without_asyncio_or_the_store(
    argv: list[str],
) -> None:
    loaded = cli_modules_after(*argv)
    assert "asyncio" not in loaded
    assert "taquba_memo._store" not in loaded
    assert "taquba_memo.cli._command" not in loaded
    assert "taquba_memo._progress" not in loaded


def test_the_command_line_loads_the_store_to_run_a_command(tmp_path: object) -> None:
    loaded = cli_modules_after("--url", f"file://{tmp_path}", "runs")
    assert {"asyncio", "taquba_memo._store", "taquba_memo.cli._command"} <= loaded
