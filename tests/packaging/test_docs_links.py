"""The README and the docs hold together: every link resolves, and the README's promises hold.

Every relative link in README.md, CONTRIBUTING.md, docs/*.md, the kit's README and each
adapter's README names a file of the repository and, with a ``#fragment``, a heading of that
file, as GitHub renders it. The core's PyPI description is the README itself, and the
README keeps the two set-up commands CI runs.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCUMENTS = sorted(
    [
        ROOT / "README.md",
        ROOT / "CONTRIBUTING.md",
        ROOT / "conformance" / "README.md",
        *(ROOT / "docs").glob("*.md"),
        # The core's README is the root README's copy, whose links are relative to the root.
        *(path for path in ROOT.glob("packages/*/README.md") if path.parent.name != "taquba-memo"),
    ]
)
PYPI_README = ROOT / "packages" / "taquba-memo" / "README.md"

FENCE = re.compile(r"^(```|~~~)")
HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
LINK = re.compile(r"!?\[(?P<text>[^\]]*)\]\((?P<target>[^)\s]+)(?:\s+\"[^\"]*\")?\)")
SCHEME = re.compile(r"^[a-z][a-z0-9+.-]*:", re.IGNORECASE)


def prose_lines(path: Path) -> Iterator[tuple[int, str]]:
    """The numbered lines of a Markdown file outside fenced code blocks."""
    fenced = False
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if FENCE.match(line.lstrip()):
            fenced = not fenced
            continue
        if not fenced:
            yield number, line


def github_anchor(heading: str) -> str:
    """The fragment GitHub gives a heading: no markup, lowercase, no punctuation, spaces as -."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link keeps its text
    text = text.replace("`", "").replace("*", "")
    text = re.sub(r"[^\w\- ]", "", text.lower())
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """Every fragment that names a heading of ``path``, numbered as GitHub numbers repeats."""
    found: set[str] = set()
    seen: dict[str, int] = {}
    for _, line in prose_lines(path):
        match = HEADING.match(line)
        if match is None:
            continue
        anchor = github_anchor(match.group(2))
        repeat = seen.get(anchor, 0)
        seen[anchor] = repeat + 1
        found.add(anchor if repeat == 0 else f"{anchor}-{repeat}")
    return found


def relative_links(path: Path) -> Iterator[tuple[int, str]]:
    """Each link of ``path`` to a file of the repository (no scheme), with its line."""
    for number, line in prose_lines(path):
        for match in LINK.finditer(line):
            target = match.group("target")
            if not SCHEME.match(target):
                yield number, target


def broken_links(path: Path, root: Path = ROOT) -> list[str]:
    """The links of ``path`` that name no file, or no heading of the file they name."""
    broken = []
    for number, target in relative_links(path):
        file_part, _, fragment = target.partition("#")
        linked = (path.parent / file_part).resolve() if file_part else path
        where = f"{path.relative_to(root)}:{number}: {target}"
        if not linked.exists():
            broken.append(f"{where} (no such file)")
        elif fragment and linked.suffix == ".md" and fragment not in anchors(linked):
            broken.append(f"{where} (no heading with that anchor in {linked.name})")
    return broken


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda path: str(path.relative_to(ROOT)))
def test_every_relative_link_names_an_existing_file_and_heading(document: Path) -> None:
    assert broken_links(document) == []


def test_the_checker_finds_a_missing_file_and_a_missing_heading(tmp_path: Path) -> None:
    (tmp_path / "other.md").write_text("# Other page\n\n## Second: `part`\n")
    page = tmp_path / "page.md"
    page.write_text(
        "# Page\n\n"
        "[fine](other.md#second-part) [fine](#page) [web](https://example.com/x.md)\n"
        "[gone](missing.md) [bad anchor](other.md#third)\n\n"
        "```\n[inside a code block](ignored.md)\n```\n"
    )
    found = [line.split(": ", 1)[1] for line in broken_links(page, root=tmp_path)]
    assert found == [
        "missing.md (no such file)",
        "other.md#third (no heading with that anchor in other.md)",
    ]


def test_headings_get_the_anchors_github_gives_them() -> None:
    assert github_anchor("Sync API: Celery, RQ, Dramatiq and scripts") == (
        "sync-api-celery-rq-dramatiq-and-scripts"
    )
    assert github_anchor("OpenTelemetry, through `opentelemetry-api` only") == (
        "opentelemetry-through-opentelemetry-api-only"
    )
    assert github_anchor("4. List an exact prefix, never a pattern") == (
        "4-list-an-exact-prefix-never-a-pattern"
    )


def test_the_core_ships_the_readme_as_its_pypi_description() -> None:
    """hatchling reads a readme only inside the package folder, so the folder holds a copy."""
    assert PYPI_README.read_text() == (ROOT / "README.md").read_text(), (
        "packages/taquba-memo/README.md differs from README.md: "
        "cp README.md packages/taquba-memo/README.md"
    )


def test_the_readme_keeps_the_two_set_up_commands_and_ci_runs_its_test_command() -> None:
    readme = (ROOT / "README.md").read_text()
    commands = re.findall(r"^sh scripts/dev\.sh \w+", readme, flags=re.MULTILINE)
    assert commands == ["sh scripts/dev.sh demo", "sh scripts/dev.sh test"]
    ci_commands = (ROOT / ".ci" / "run").read_text().splitlines()
    assert "sh scripts/dev.sh test" in ci_commands
