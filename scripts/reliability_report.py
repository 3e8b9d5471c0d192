"""Render the reliability figures of the last test run (.reliability/figures.json) as Markdown.

    python scripts/reliability_report.py                 # print the tables
    python scripts/reliability_report.py --write         # also put them into RELIABILITY.md
    python scripts/reliability_report.py --soak --write  # the figures of `just soak`

The tests under tests/faults, tests/crash, tests/hostile and tests/errors
record their figures through the ``reliability`` fixture (tests/conftest.py);
each section keeps the figures of the last run that executed it. ``just soak``
writes to .reliability/soak/ instead. ``--write`` replaces what lies between
the ``figures`` (or ``soak-figures``) markers of RELIABILITY.md.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def figures_path(soak: bool) -> Path:
    configured = os.environ.get("TAQUBA_MEMO_RELIABILITY_DIR")
    directory = Path(configured) if configured else ROOT / ".reliability"
    return (directory / "soak" if soak and not configured else directory) / "figures.json"


def total(sections: dict[str, Any], prefix: str, *names: str) -> int | None:
    """The sum of ``names`` over the sections titled ``prefix...``; None if none ran."""
    matching = [section for title, section in sections.items() if title.startswith(prefix)]
    if not matching:
        return None
    return sum(int(section["figures"].get(name, 0)) for section in matching for name in names)


def headline(sections: dict[str, Any]) -> list[tuple[str, int | None]]:
    return [
        ("faults injected into adapter requests", total(sections, "faults:", "faults_injected")),
        (
            "acknowledged writes read back identical under faults",
            total(sections, "faults:", "acknowledged_writes_read_back_identical"),
        ),
        (
            "operations that ran out of retries and failed transiently (never a hang)",
            total(
                sections,
                "faults:",
                "retries_exhausted_then_transient_error",
                "operations_failed_transient",
                "listings_failed_transient",
            ),
        ),
        (
            "processes killed with SIGKILL (writers, readers)",
            total(sections, "crash:", "processes_killed"),
        ),
        (
            "puts, overwrites and creates acknowledged by killed writers, none lost or torn",
            total(
                sections,
                "crash:",
                "puts_acknowledged",
                "overwrites_acknowledged",
                "creates_acknowledged",
            ),
        ),
        ("sweeps killed and finished by a later pass", total(sections, "crash:", "sweeps_killed")),
        (
            "hostile inputs tried (store calls, marker names)",
            total(
                sections,
                "hostile",
                "store_inputs_tried",
                "store_inputs_tried_on_local_files",
                "stray_marker_names_tried",
            ),
        ),
        (
            "MemoStore operations checked against the dict model",
            total(sections, "hostile", "state_machine_store_operations"),
        ),
        (
            "failing operations searched for credentials",
            total(sections, "secrets", "failing_operations_checked"),
        ),
    ]


FAULT_ROWS = (
    ("requests through the proxy", "requests_through_proxy"),
    ("faults injected", "faults_injected"),
    ("... during the mixed workload", "faults_injected_during_workload"),
    ("acknowledged writes read back identical", "acknowledged_writes_read_back_identical"),
    ("gets answered correctly", "gets_answered_correctly"),
    ("creates that found their own replayed write", "creates_that_found_their_own_replayed_write"),
    ("workload operations failed transiently", "operations_failed_transient"),
    ("listings answered correctly", "listings_answered_correctly"),
    ("retries exhausted, then a transient error", "retries_exhausted_then_transient_error"),
)


def render_faults(faults: dict[str, Any]) -> list[str]:
    """One table, an adapter per column: the fault sections side by side."""
    names = [title.removeprefix("faults: ") for title in faults]
    lines = [
        "| Fault profile | " + " | ".join(names) + " |",
        "|---|" + "---:|" * len(names),
    ]
    for label, key in FAULT_ROWS:
        values = [f"{section['figures'].get(key, 0):,}" for section in faults.values()]
        lines.append(f"| {label} | " + " | ".join(values) + " |")
    settings = next(iter(faults.values()))["notes"].get("settings", {})
    shown = {k: v for k, v in settings.items() if k not in ("seed", "server")}
    lines += ["", f"Settings: {json.dumps(shown)}; faults injected by kind per adapter:", ""]
    for title, section in faults.items():
        kinds = {
            name.removeprefix("injected "): count
            for name, count in section["figures"].items()
            if name.startswith("injected ")
        }
        failed = section["notes"].get("tests_failed_in_that_run")
        warning = f" (**{failed} test(s) failed in that run**)" if failed else ""
        lines.append(f"* {title.removeprefix('faults: ')}: {json.dumps(kinds)}{warning}")
    return lines


def render(sections: dict[str, Any]) -> str:
    times = sorted(section["recorded_at"] for section in sections.values())
    hosts = sorted({section["host"] for section in sections.values()})
    lines = [
        f"Recorded {times[0]}{'' if times[0] == times[-1] else f' to {times[-1]}'} (UTC), "
        f"on {'; '.join(hosts)}.",
        "",
        "| What | Count |",
        "|---|---:|",
    ]
    lines += [
        f"| {what} | {'not run' if count is None else f'{count:,}'} |"
        for what, count in headline(sections)
    ]
    faults = {title: section for title, section in sections.items() if title.startswith("faults:")}
    if faults:
        lines += ["", *render_faults(faults)]
    for title, section in sections.items():
        if title in faults:
            continue
        lines += ["", f"| {title} | |", "|---|---:|"]
        lines += [f"| {name} | {value:,} |" for name, value in section["figures"].items()]
        for name, value in section["notes"].items():
            if name in section["figures"]:
                continue  # older runs noted some counts twice
            shown = value if isinstance(value, str) else json.dumps(value)
            lines.append(f"| {name} | {shown} |")
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help="update RELIABILITY.md")
    parser.add_argument("--soak", action="store_true", help="the figures of `just soak`")
    arguments = parser.parse_args()
    path = figures_path(arguments.soak)
    if not path.exists():
        print(f"{path} does not exist: run the tests first (just test, or just soak)")
        return 1
    text = render(json.loads(path.read_text()))
    print(text)
    if arguments.write:
        marker = "soak-figures" if arguments.soak else "figures"
        start, end = f"<!-- {marker}:start -->", f"<!-- {marker}:end -->"
        document = ROOT / "RELIABILITY.md"
        current = document.read_text()
        if start not in current or end not in current:
            print(f"RELIABILITY.md has no {start} ... {end} block")
            return 1
        before, _, rest = current.partition(start)
        _, _, after = rest.partition(end)
        document.write_text(f"{before}{start}\n{text}{end}{after}")
        print(f"updated {document}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
