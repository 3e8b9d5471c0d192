"""Exact-prefix tests: ``list(prefix)`` is ``key.startswith(prefix)``, whatever the store speaks.

A backend built on a database, a key-value store or a file system answers a
listing with its own query language, and each language has characters that
are not themselves: SQL ``LIKE`` reads ``_`` and ``%`` as wildcards, ``GLOB``,
``fnmatch`` and Redis ``MATCH`` read ``* ? [ ] \\``, a regular expression
reads ``. + ( | ) { } ^ $``. Collations fold case, accents and trailing
spaces; file systems and some libraries normalise Unicode; HTTP layers
percent-decode; a range scan with a made-up upper bound drops the keys above
it. Any of these makes ``MemoStore.clear_memos_for_run("job_1")`` reach into
``jobX1``, which is data loss.

Each :class:`DecoyCase` writes keys that a pattern-matching or normalising
store confuses, then asks for listings whose exact answers are known. Every
key is written with its own value, so a store that merges two keys into one
fails too. Failures name the promise that broke, in the words of the
protocol, with keys shown relative to the test's key space.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import pytest
from taquba_memo import MemoBackend, MemoStore

from taquba_memo_conformance._base import SuiteBase
from taquba_memo_conformance.keyspace import KeySpace, byte_order, put_all

__all__ = ["AZURE_BLOB_BACKSLASH_GAP", "DECOY_CASES", "DecoyCase", "ExactPrefixTests"]


@dataclass(frozen=True)
class DecoyCase:
    """Keys one dialect confuses, and the exact answer of each listing of them."""

    dialect: str
    """What a store gets wrong here, as a backend author would search for it."""
    probes: Mapping[str, tuple[str, ...]]
    """Listing prefix -> the keys that, and only that, start with it."""
    decoys: tuple[str, ...] = field(default=())
    """Keys that start with no probe, written so a pattern can wrongly match them."""

    @property
    def keys(self) -> tuple[str, ...]:
        """Every key the case writes."""
        listed = {key for keys in self.probes.values() for key in keys}
        return tuple(sorted(listed | set(self.decoys)))

    def __post_init__(self) -> None:
        for prefix, expected in self.probes.items():
            exact = tuple(key for key in self.keys if key.startswith(prefix))
            if sorted(exact) != sorted(expected):  # pragma: no cover  (a table typo)
                raise ValueError(f"probe {prefix!r} of {self.dialect!r} lists {exact}")


DECOY_CASES: dict[str, DecoyCase] = {
    "sql-like-underscore": DecoyCase(
        "SQL LIKE without escaping: '_' matches any one character",
        {"job_1/": ("job_1/k", "job_1/k2"), "job_": ("job_1/k", "job_1/k2")},
        ("jobX1/k", "jobx1/k", "job-1/k", "job11/k"),
    ),
    "sql-like-percent": DecoyCase(
        "SQL LIKE without escaping: '%' matches any run of characters",
        {"50%/": ("50%/k",), "50%": ("50%/k",)},
        ("50/k", "500/k", "50abc%/k"),
    ),
    "sql-like-escape": DecoyCase(
        "SQL LIKE whose escape character is not itself escaped ('\\' before '_')",
        {"a\\_b/": ("a\\_b/k",), "a\\_": ("a\\_b/k",)},
        ("a_b/k", "a\\Xb/k"),
    ),
    "sql-quote": DecoyCase(
        "SQL built by string formatting: a quote in the prefix",
        {"it's/": ("it's/k",), "it'": ("it's/k",)},
        ("its/k",),
    ),
    "glob-star": DecoyCase(
        "GLOB, fnmatch or Redis MATCH without escaping: '*' matches anything",
        {"s*/": ("s*/k",)},
        ("s/k", "sx/k", "sxyz/k"),
    ),
    "glob-question-mark": DecoyCase(
        "GLOB, fnmatch or Redis MATCH without escaping: '?' matches any one character",
        {"f?o/": ("f?o/k",)},
        ("fXo/k", "f-o/k"),
    ),
    "glob-brackets": DecoyCase(
        "GLOB, fnmatch, Redis MATCH or SQL Server LIKE: '[ab]' is a character class",
        {"[ab]/": ("[ab]/k",), "[": ("[ab]/k",)},
        ("a/k", "b/k"),
    ),
    "glob-backslash": DecoyCase(
        "Redis MATCH or fnmatch: '\\' escapes the next character",
        {"x\\y/": ("x\\y/k",)},
        ("xy/k",),
    ),
    "regex-dot-plus": DecoyCase(
        "a regular expression built from the prefix: '.' and '+' are operators",
        {"v1.2+/": ("v1.2+/k",)},
        ("v1x2/k", "v1.22/k", "v1.222/k"),
    ),
    "regex-group": DecoyCase(
        "a regular expression built from the prefix: '(x|y)' is an alternation",
        {"(x|y)/": ("(x|y)/k",)},
        ("x/k", "y/k"),
    ),
    "regex-class-quantifier": DecoyCase(
        "a regular expression built from the prefix: '[^c]{2}' and '$'",
        {"[^c]{2}$/": ("[^c]{2}$/k",)},
        ("ab/k", "zz/k", "[^c]{2}/k"),
    ),
    "case-insensitive": DecoyCase(
        "a case-insensitive collation or file system (MySQL's default, NTFS, APFS)",
        {"Job1/": ("Job1/k",), "job1/": ("job1/k",)},
        ("JOB1/k", "jOb1/k"),
    ),
    "case-folding": DecoyCase(
        "case folding beyond ASCII: 'ß' folds to 'ss'",
        {"Straße/": ("Straße/k",)},
        ("STRASSE/k", "strasse/k", "straße/k"),
    ),
    "accent-insensitive": DecoyCase(
        "an accent-insensitive collation ('é' = 'e')",
        {"café/": ("café/k",)},
        ("cafe/k", "CAFÉ/k"),
    ),
    "unicode-normalisation": DecoyCase(
        "Unicode normalisation: composed (NFC) and decomposed (NFD) 'é' are different keys",
        {"\u00e9t\u00e9/": ("\u00e9t\u00e9/k",), "e\u0301te\u0301/": ("e\u0301te\u0301/k",)},
    ),
    "unicode-compatibility": DecoyCase(
        "compatibility normalisation (NFKC): a ligature or full-width letter is not ASCII",
        {"\ufb01le/": ("\ufb01le/k",), "\uff21\uff22/": ("\uff21\uff22/k",)},
        ("file/k", "AB/k"),
    ),
    "trailing-space": DecoyCase(
        "a PAD SPACE collation or trimming: 'pad' and 'pad ' are different",
        {"pad/": ("pad/k",), "pad /": ("pad /k",)},
        ("pad  /k",),
    ),
    "trailing-space-ending-the-key": DecoyCase(
        "a CHAR column or trimming of the whole key: 'end', 'end ', 'end  ' and "
        "'end<no-break space>' are four keys",
        {
            "end": ("end", "end ", "end  ", "end\u00a0"),
            "end ": ("end ", "end  "),
            "end  ": ("end  ",),
            "end\u00a0": ("end\u00a0",),
        },
    ),
    "leading-space-of-a-name": DecoyCase(
        "trimming the leading spaces of a name or segment: 'x', ' x' and '  x' are three keys",
        {
            "lead/ ": ("lead/ x", "lead/  x"),
            "lead/  ": ("lead/  x",),
            "lead/x": ("lead/x",),
            " dir/": (" dir/k",),
            "dir/": ("dir/k",),
        },
    ),
    "percent-decoding": DecoyCase(
        "percent-decoding a key or prefix that was never percent-encoded",
        {"%41/": ("%41/k",), "A/": ("A/k",)},
    ),
    "range-upper-bound": DecoyCase(
        "a range scan with a made-up upper bound (prefix + 'z', prefix + U+FFFF)",
        {"hi/": ("hi/k", "hi/~", "hi/\u00ff", "hi/\U0001f600")},
        ("hi0/k", "hj/k", "h/k"),
    ),
}


AZURE_BLOB_BACKSLASH_GAP: dict[str, str] = {
    f"test_list_matches_an_exact_prefix_not_a_pattern[{case}]": (
        "Azure Blob Storage URLs treat '\\' as '/', and Azurite stores a blob named "
        "'x\\y' as 'x/y'; MemoStore never writes a '\\' (run ids are [A-Za-z0-9_-])"
    )
    for case in ("sql-like-escape", "glob-backslash")
}
"""``expected_failures`` of a backend on Azure Blob Storage: the store's own rewrite."""


class ExactPrefixTests(SuiteBase):
    """Listing is an exact raw string prefix; mixed into ``MemoBackendConformance``.

    The tests use the ``backend`` and ``space`` fixtures of the suite.
    """

    @pytest.mark.parametrize("case", list(DECOY_CASES))
    async def test_list_matches_an_exact_prefix_not_a_pattern(
        self, backend: MemoBackend, space: KeySpace, case: str
    ) -> None:
        decoy = DECOY_CASES[case]
        root = space.key(case, "")
        written = {root + key: f"{case}:{key}".encode() for key in decoy.keys}
        await put_all(backend, written, concurrency=8)

        for key, value in written.items():
            stored = await backend.get(key)
            assert stored == value, (
                f"get({space.show(key)!r}) returned {stored!r}, the value of another key: "
                f"keys must be stored exactly as written, never folded or normalised "
                f"({decoy.dialect})"
            )
        everything = await space.listed(backend, root)
        assert sorted(everything) == sorted(written), (
            f"list({space.show(root)!r}) did not give back the keys as written: "
            f"{[space.show(k) for k in byte_order(set(everything) ^ set(written))]} "
            f"({decoy.dialect})"
        )
        for prefix, expected in decoy.probes.items():
            listed = await space.listed(backend, root + prefix, dialect=decoy.dialect)
            missing = [key for key in expected if root + key not in listed]
            assert not missing, (
                f"list({space.show(root + prefix)!r}) left out "
                f"{[space.show(root + key) for key in missing]}, which start with it: "
                f"list must match a raw string prefix, not a pattern ({decoy.dialect})"
            )
            assert len(listed) == len(expected), (
                f"list({space.show(root + prefix)!r}) repeated keys: {listed}"
            )

    async def test_store_clears_only_the_named_run_when_run_ids_look_like_patterns(
        self, backend: MemoBackend, space: KeySpace
    ) -> None:
        # Run ids may hold '_' and '-', and letters in both cases: each of
        # these matches "job_1" under SQL LIKE or a case-insensitive collation.
        store = MemoStore(backend, space.root)
        target, others = "job_1", ("jobX1", "job-1", "job11", "Job_1", "JOB_1", "job_10")
        for run_id in (target, *others):
            await store.new_memo(run_id, 0).put("k", run_id.encode())

        deleted = await store.clear_memos_for_run(target)

        for run_id in others:
            kept = await store.new_memo(run_id, 0).get("k")
            assert kept == run_id.encode(), (
                f"clear_memos_for_run({target!r}) deleted or changed the entry of run "
                f"{run_id!r}: list must match a raw string prefix, not a pattern"
            )
        assert await store.new_memo(target, 0).get("k") is None
        assert deleted == 1

    async def test_store_sweeps_only_the_expired_run_when_run_ids_look_like_patterns(
        self, backend: MemoBackend, space: KeySpace
    ) -> None:
        store = MemoStore(backend, space.root)
        target, others = "job_1", ("jobX1", "job-1", "Job_1")
        for run_id in (target, *others):
            await store.new_memo(run_id, 0).put("k", run_id.encode())
            await store.write_terminal_marker(run_id, 1_000 if run_id == target else 9_000)

        report = await store.sweep(5_000)

        assert report.runs_cleared == [target]
        assert report.entries_deleted == 1
        for run_id in others:
            assert await store.new_memo(run_id, 0).get("k") == run_id.encode(), (
                f"sweeping run {target!r} deleted the entry of run {run_id!r}"
            )
        assert sorted(m.run_id for m in await store.list_terminal_markers()) == sorted(others)

    async def test_store_prefixes_that_look_like_patterns_stay_apart(
        self, backend: MemoBackend, space: KeySpace
    ) -> None:
        # Two tenants whose store prefixes match each other under LIKE or a
        # case-insensitive collation share one bucket.
        mine = MemoStore(backend, space.key("team_1"))
        theirs = [MemoStore(backend, space.key(name)) for name in ("teamX1", "Team_1")]
        for store in (mine, *theirs):
            await store.new_memo("run-1", 0).put("k", store.prefix.encode())
            await store.write_terminal_marker("run-1", 1_000)

        report = await mine.sweep(5_000)

        assert (report.runs_cleared, report.entries_deleted) == (["run-1"], 1)
        for store in theirs:
            assert await store.new_memo("run-1", 0).get("k") == store.prefix.encode(), (
                f"a sweep of prefix {space.show(mine.prefix)!r} deleted an entry of "
                f"prefix {space.show(store.prefix)!r}"
            )
            assert len(await store.list_terminal_markers()) == 1
