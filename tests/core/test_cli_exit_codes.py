"""The exit codes are written once, in ExitCode: docs/cli.md's table and ``--help`` say the same.

The codes are a public contract (cron, CI and Kubernetes match on them), so the
documented table must name every code, no other code, and each code's meaning:
the doc may word a meaning at more length, but contains the enum's line.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
import taquba_memo.cli

from ._cli_support import ExitCode, run_cli

ROOT = Path(__file__).resolve().parents[2]
CLI_DOC = ROOT / "docs" / "cli.md"
RETENTION_DOC = ROOT / "docs" / "retention.md"
READMES = [ROOT / "README.md", ROOT / "packages" / "taquba-memo" / "README.md"]
CLI_PACKAGE = Path(taquba_memo.cli.__file__).resolve().parent


def exit_code_rows(path: Path, first_header: str) -> dict[int, str]:
    """Code -> meaning, from the Markdown table whose first header cell is ``first_header``."""
    rows: dict[int, str] = {}
    lines = path.read_text(encoding="utf-8").splitlines()
    for start, line in enumerate(lines):
        cells = table_cells(line)
        if cells and cells[0].lower() == first_header:
            for row in lines[start + 2 :]:  # past the header and its |---| line
                cells = table_cells(row)
                if not cells:
                    break
                assert cells[0].isdigit(), f"{path.name}: {cells[0]!r} is not an exit code"
                assert int(cells[0]) not in rows, f"{path.name}: code {cells[0]} has two rows"
                rows[int(cells[0])] = cells[1]
            return rows
    return rows


def table_cells(line: str) -> list[str]:
    line = line.strip()
    if not line.startswith("|"):
        return []
    return [cell.strip() for cell in line.strip("|").split("|")]


def plain(text: str) -> str:
    """Markdown prose as the enum words it: no code spans, single spaces, lower case."""
    return re.sub(r"\s+", " ", text.replace("`", "")).strip().lower()


def test_the_cli_doc_has_one_row_per_exit_code_and_no_other() -> None:
    documented = exit_code_rows(CLI_DOC, "exit code")
    assert sorted(documented) == sorted(code.value for code in ExitCode)


@pytest.mark.parametrize("code", list(ExitCode), ids=lambda code: code.name)
def test_the_cli_doc_row_of_each_code_says_its_meaning(code: ExitCode) -> None:
    documented = exit_code_rows(CLI_DOC, "exit code")
    assert plain(code.meaning) in plain(documented[code.value]), (code, documented[code.value])


@pytest.mark.parametrize("readme", READMES, ids=lambda path: str(path.relative_to(ROOT)))
def test_the_readme_holds_no_exit_code_table_of_its_own(readme: Path) -> None:
    """The READMEs link to docs/cli.md for the codes; a second table there would drift."""
    assert exit_code_rows(readme, "exit code") == {}
    assert exit_code_rows(readme, "code") == {}


def test_the_retention_guide_gives_retry_advice_for_every_exit_code() -> None:
    """Its table words meanings for a sweeper (done, retry?), but covers exactly the codes."""
    documented = exit_code_rows(RETENTION_DOC, "code")
    assert sorted(documented) == sorted(code.value for code in ExitCode)


def test_a_denied_listing_exits_like_a_denied_delete_and_the_docs_say_so() -> None:
    assert "denied listing or delete" in ExitCode.ACCESS_DENIED.meaning
    assert "denied listing or delete" in exit_code_rows(CLI_DOC, "exit code")[5]
    assert "denied listing or delete" in exit_code_rows(RETENTION_DOC, "code")[5]


def test_help_lists_every_exit_code_with_its_meaning_one_a_line() -> None:
    result = run_cli("--help")
    assert result.code == ExitCode.OK, result.stderr
    epilog = result.stdout[result.stdout.index("exit codes:") :].splitlines()[1:]
    listed = {int(line.split()[0]): " ".join(line.split()[1:]) for line in epilog if line.strip()}
    assert listed == {code.value: code.meaning for code in ExitCode}
    assert "denied listing or delete" in listed[ExitCode.ACCESS_DENIED]


@pytest.mark.parametrize("module", sorted(CLI_PACKAGE.glob("*.py")), ids=lambda path: path.name)
def test_the_cli_words_no_exit_code_meaning_of_its_own(module: Path) -> None:
    """``--help`` and the docs take the meanings from ExitCode: the CLI never restates one."""
    source = plain(module.read_text(encoding="utf-8"))
    restated = [code.name for code in ExitCode if plain(code.meaning) in source]
    assert restated == [], module.name


@pytest.mark.parametrize("module", sorted(CLI_PACKAGE.glob("*.py")), ids=lambda path: path.name)
def test_the_cli_returns_exit_codes_by_name_never_as_numbers(module: Path) -> None:
    tree = ast.parse(module.read_text(encoding="utf-8"))
    numbers = [
        node.lineno
        for node in ast.walk(tree)
        if isinstance(node, ast.Return)
        and isinstance(node.value, ast.Constant)
        and type(node.value.value) is int
    ]
    assert numbers == [], f"{module.name}: a bare exit code returned on lines {numbers}"
