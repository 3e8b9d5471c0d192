"""Object layouts shared with taquba-workflow (0.5.0, and 0.6.0 to 0.10.0), as pure functions.

This module is the only place that knows how memo entries and terminal
markers are named, so Python and Rust workers can share one bucket. The
default layout, ``"0.5"`` (taquba-workflow 0.5.0):

* memo entry: ``<prefix>/memos/<run_id>/<step_number>/<hex sha256(user_key)>``
* terminal marker: ``<prefix>/terminals/<terminal_at_ms:020>_<run_id>``,
  a zero-byte object
* claim (Python only, see :mod:`taquba_memo._claims`):
  ``<memo entry key>.claim.<generation:010>``, next to its entry and so
  below the run's prefix: a run clear (Rust's included) and a sweep delete
  it with the run's entries. Rust workers never read or write claims.

The prefix is normalised the way Rust ``object_store``'s ``Path`` does it:
split on ``/`` with empty segments dropped, so ``""``, ``"a/"`` and
``"/a//b"`` are all valid. ``Path`` would percent-encode some characters
(``%``, ``#``, ``*``, non-ASCII, ...) and the segments ``.`` and ``..``; a
prefix with any of those is rejected here instead, so that the names we
write are exactly the names Rust writes, and no input can escape the prefix.

Layout ``"0.10"`` (taquba-workflow 0.6.0 to 0.10.0, :class:`Layout`) differs in
three places:

* terminal marker: ``<prefix>/terminals/<(u64::MAX - terminal_at_ms):020>_<run_id>``,
  newest first, so the expired markers are the keys after the cutoff's
  ``<prefix>/terminals/<(u64::MAX - cutoff_ms):020>``;
* step outputs: ``<prefix>/step-outputs/<run_id>/...``, written by the Rust
  runtime and cleared with the run's memos;
* content keys: ``"content:" + hex sha256(rmp_serde::to_vec_named(input))``
  (:mod:`taquba_memo._messagepack`), then hashed as any user key.

A marker name tells its layout (:func:`detect_marker_layout`): an inverted
name for any date before year 10000 is at least ``18446490671408751615``
(it starts with ``1844674`` up to 2099), and a ``"0.5"`` name for such a
date starts with ``00000``.

Every function validates its arguments before returning a key, so a caller
that builds its key first has done no I/O when a bad argument is refused.
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass, field
from enum import Enum

from taquba_memo.errors import (
    InvalidArgumentError,
    InvalidKeyError,
    InvalidPrefixError,
    InvalidRunIdError,
    InvalidStepNumberError,
    InvalidTerminalTimeError,
    InvalidValueTypeError,
)

__all__ = [
    "MAX_RUN_ID_BYTES",
    "MAX_STEP_NUMBER",
    "MAX_TERMINAL_AT_MS",
    "LATEST_TERMINAL_AT_MS",
    "CLAIM_GENERATION_WIDTH",
    "DEFAULT_LAYOUT",
    "Layout",
    "MAX_CLAIM_GENERATION",
    "TerminalMarker",
    "claim_key",
    "claims_prefix",
    "detect_marker_layout",
    "hex_sha256",
    "listed_terminal_marker_key",
    "memo_key",
    "memos_prefix",
    "memos_run_prefix",
    "normalize_prefix",
    "parse_claim_generation",
    "parse_memo_claim_name",
    "parse_memo_entry_name",
    "parse_terminal_marker_name",
    "step_outputs_prefix",
    "step_outputs_run_prefix",
    "sweep_lease_key",
    "sweep_leases_prefix",
    "terminal_marker_key",
    "terminal_marker_name",
    "terminals_prefix",
    "validate_layout",
    "validate_run_id",
    "validate_step_number",
    "validate_terminal_at_ms",
]

logger = logging.getLogger("taquba_memo")

MAX_RUN_ID_BYTES = 128
MAX_STEP_NUMBER = 2**32 - 1
MAX_TERMINAL_AT_MS = 2**64 - 1
TIMESTAMP_WIDTH = 20
CLAIM_GENERATION_WIDTH = 10
MAX_CLAIM_GENERATION = 10**CLAIM_GENERATION_WIDTH - 1
YEAR_10000_MS = 253_402_300_800_000
"""Milliseconds from the epoch to 10000-01-01: no marker is dated later."""
LATEST_TERMINAL_AT_MS = MAX_TERMINAL_AT_MS - YEAR_10000_MS
"""The latest terminal time a marker can name in either layout without reading as the other's."""
_CLAIM_INFIX = ".claim."

_RUN_ID = re.compile(r"[A-Za-z0-9_-]{1,128}")
# A step number as Rust's u32 Display writes it: no sign, no leading zeros.
_DECIMAL = re.compile(r"0|[1-9][0-9]{0,9}")
_HEX_SHA256 = re.compile(r"[0-9a-f]{64}")
_CLAIM_GENERATION = re.compile(rf"[0-9]{{{CLAIM_GENERATION_WIDTH}}}")
# Characters object_store's PathPart percent-encodes (its INVALID set).
_ESCAPED_BY_OBJECT_STORE = frozenset('/\\{^}%`]">[~<#|*?\r\n')


@dataclass(frozen=True, order=True)
class TerminalMarker:
    """A run's terminal marker: the run finished at ``terminal_at_ms``.

    Ordering compares ``terminal_at_ms`` first, so ``sorted(markers)`` is
    chronological.
    """

    terminal_at_ms: int
    run_id: str
    listed_name: str | None = field(default=None, compare=False, repr=False)
    """The name it was listed under, when that is not the canonical one (a Rust
    writer's ``+`` sign): deleting it must delete that object, not a reformatted name."""

    def __init__(self, run_id: str, terminal_at_ms: int) -> None:
        object.__setattr__(self, "run_id", validate_run_id(run_id))
        object.__setattr__(self, "terminal_at_ms", validate_terminal_at_ms(terminal_at_ms))
        object.__setattr__(self, "listed_name", None)

    @property
    def name(self) -> str:
        """Its object name below ``terminals/``: as listed, else the canonical one."""
        return self.listed_name or terminal_marker_name(self.run_id, self.terminal_at_ms)

    def __repr__(self) -> str:
        return f"TerminalMarker(run_id={self.run_id!r}, terminal_at_ms={self.terminal_at_ms})"


def validate_run_id(run_id: object) -> str:
    """Return ``run_id`` if it is 1-128 characters of ``[A-Za-z0-9_-]``.

    An empty run id would make ``memos/<run_id>/`` the prefix of every run's
    entries, so a retention sweep would delete them all; a ``/`` or ``..``
    would escape the run's namespace.
    """
    if not isinstance(run_id, str):
        raise InvalidValueTypeError(f"run_id must be str, not {type(run_id).__name__}")
    if _RUN_ID.fullmatch(run_id) is None:
        raise InvalidRunIdError(
            f"run_id must be 1-{MAX_RUN_ID_BYTES} characters of [A-Za-z0-9_-], got {run_id!r:.200}"
        )
    return run_id


def _validate_int(value: object, name: str, maximum: int, error: type[Exception]) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidValueTypeError(f"{name} must be int, not {type(value).__name__}")
    if not 0 <= value <= maximum:
        raise error(f"{name} must be in 0..{maximum}, got {value}")
    return int(value)


def validate_step_number(step_number: object) -> int:
    """Return ``step_number`` if it is an int in ``0..2**32-1`` (Rust ``u32``)."""
    return _validate_int(step_number, "step_number", MAX_STEP_NUMBER, InvalidStepNumberError)


def validate_terminal_at_ms(terminal_at_ms: object) -> int:
    """Return ``terminal_at_ms`` if it is an int in ``0..2**64-1`` (Rust ``u64``)."""
    return _validate_int(
        terminal_at_ms, "terminal_at_ms", MAX_TERMINAL_AT_MS, InvalidTerminalTimeError
    )


def normalize_prefix(prefix: object) -> str:
    """Return ``prefix`` with empty segments dropped: ``"/a//b/"`` -> ``"a/b"``."""
    if not isinstance(prefix, str):
        raise InvalidValueTypeError(f"prefix must be str, not {type(prefix).__name__}")
    segments = [segment for segment in prefix.split("/") if segment]
    for segment in segments:
        if segment in (".", ".."):
            raise InvalidPrefixError(f"prefix segment {segment!r} is not allowed")
        bad = [ch for ch in segment if ch in _ESCAPED_BY_OBJECT_STORE or not " " <= ch <= "~"]
        if bad:
            raise InvalidPrefixError(
                f"prefix segment {segment!r} has characters object stores escape: {''.join(bad)!r}"
            )
    return "/".join(segments)


def _join(prefix: str, *segments: str) -> str:
    return "/".join((prefix, *segments)) if prefix else "/".join(segments)


def hex_sha256(user_key: object) -> str:
    """Return the lowercase hex SHA-256 of ``user_key`` encoded as UTF-8."""
    if not isinstance(user_key, str):
        raise InvalidValueTypeError(f"memo key must be str, not {type(user_key).__name__}")
    try:
        encoded = user_key.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidKeyError(f"memo key is not valid Unicode text: {exc}") from None
    return hashlib.sha256(encoded).hexdigest()


def memo_key(prefix: str, run_id: str, step_number: int, user_key: str) -> str:
    """``<prefix>/memos/<run_id>/<step_number>/<hex sha256(user_key)>``."""
    return _join(
        normalize_prefix(prefix),
        "memos",
        validate_run_id(run_id),
        str(validate_step_number(step_number)),
        hex_sha256(user_key),
    )


def memos_prefix(prefix: str) -> str:
    """``<prefix>/memos/``: the raw listing prefix of every run's entries."""
    return _join(normalize_prefix(prefix), "memos", "")


def memos_run_prefix(prefix: str, run_id: str) -> str:
    """``<prefix>/memos/<run_id>/``, with the trailing slash.

    The slash is what keeps run ``run`` from matching ``run-suffix``.
    """
    return _join(normalize_prefix(prefix), "memos", validate_run_id(run_id), "")


def _parse_run_and_step(name: object) -> tuple[str, int, str] | None:
    """Split ``<run_id>/<step_number>/<last>``; None unless run and step are valid."""
    if not isinstance(name, str):
        return None
    parts = name.split("/")
    if len(parts) != 3:
        return None
    run_id, step, last = parts
    if _RUN_ID.fullmatch(run_id) is None or _DECIMAL.fullmatch(step) is None:
        return None
    step_number = int(step)
    if step_number > MAX_STEP_NUMBER:
        return None
    return run_id, step_number, last


def parse_memo_entry_name(name: str) -> tuple[str, int] | None:
    """Parse ``<run_id>/<step_number>/<64 hex>`` (relative to ``memos/``); None otherwise.

    Returns ``(run_id, step_number)``. Never raises: a stray object below
    ``memos/`` is reported as unrecognised, never attributed to a run.
    """
    parsed = _parse_run_and_step(name)
    if parsed is None or _HEX_SHA256.fullmatch(parsed[2]) is None:
        return None
    return parsed[0], parsed[1]


def claim_key(entry_key: str, generation: int) -> str:
    """``<entry key>.claim.<generation:010>``: generation ``generation`` of the entry's claim.

    ``entry_key`` is a key :func:`memo_key` built. Generations start at 1; a
    takeover creates the next one.
    """
    generation = _validate_int(generation, "generation", MAX_CLAIM_GENERATION, InvalidArgumentError)
    if generation < 1:
        raise InvalidArgumentError("a claim generation starts at 1")
    return f"{claims_prefix(entry_key)}{generation:0{CLAIM_GENERATION_WIDTH}d}"


def claims_prefix(entry_key: str) -> str:
    """``<entry key>.claim.``: the raw listing prefix of every generation of the entry's claim.

    No entry key starts with it (an entry's last segment is exactly 64 hex
    digits), so listing it finds claims only.
    """
    if not isinstance(entry_key, str):
        raise InvalidValueTypeError(f"entry key must be str, not {type(entry_key).__name__}")
    if _HEX_SHA256.fullmatch(entry_key.rsplit("/", 1)[-1]) is None:
        raise InvalidKeyError(f"{entry_key!r:.200} is not a memo entry key")
    return entry_key + _CLAIM_INFIX


def parse_claim_generation(entry_key: str, key: str) -> int | None:
    """The generation of ``key`` if it is a claim of ``entry_key``; None otherwise. Never raises."""
    prefix = entry_key + _CLAIM_INFIX
    if not isinstance(key, str) or not key.startswith(prefix):
        return None
    digits = key[len(prefix) :]
    if _CLAIM_GENERATION.fullmatch(digits) is None or int(digits) < 1:
        return None
    return int(digits)


def parse_memo_claim_name(name: str) -> tuple[str, int, int] | None:
    """Parse ``<run_id>/<step_number>/<64 hex>.claim.<10 digits>`` (relative to ``memos/``).

    Returns ``(run_id, step_number, generation)``, or None for anything
    else. Never raises.
    """
    parsed = _parse_run_and_step(name)
    if parsed is None:
        return None
    digest, infix, digits = parsed[2].partition(_CLAIM_INFIX)
    if not infix or _HEX_SHA256.fullmatch(digest) is None:
        return None
    if _CLAIM_GENERATION.fullmatch(digits) is None or int(digits) < 1:
        return None
    return parsed[0], parsed[1], int(digits)


def terminal_marker_name(run_id: str, terminal_at_ms: int) -> str:
    """``<terminal_at_ms:020>_<run_id>``: sorts chronologically by name."""
    return (
        f"{validate_terminal_at_ms(terminal_at_ms):0{TIMESTAMP_WIDTH}d}_{validate_run_id(run_id)}"
    )


def terminal_marker_key(prefix: str, run_id: str, terminal_at_ms: int) -> str:
    """``<prefix>/terminals/<terminal_at_ms:020>_<run_id>``."""
    return _join(
        normalize_prefix(prefix), "terminals", terminal_marker_name(run_id, terminal_at_ms)
    )


def listed_terminal_marker_key(prefix: str, marker: TerminalMarker) -> str:
    """``<prefix>/terminals/<marker.name>``: the key ``marker`` was listed under."""
    return _join(normalize_prefix(prefix), "terminals", marker.name)


def terminals_prefix(prefix: str) -> str:
    """``<prefix>/terminals/``: the raw listing prefix of every marker."""
    return _join(normalize_prefix(prefix), "terminals", "")


def sweep_leases_prefix(prefix: str) -> str:
    """``<prefix>/sweeps/lease.``: the listing prefix of every generation of the sweep lease.

    Outside ``memos/`` and ``terminals/``: no sweep, clear or Rust worker touches it.
    """
    return _join(normalize_prefix(prefix), "sweeps", "lease.")


def sweep_lease_key(prefix: str, generation: int) -> str:
    """``<prefix>/sweeps/lease.<generation:010>``."""
    return f"{sweep_leases_prefix(prefix)}{generation:0{CLAIM_GENERATION_WIDTH}d}"


def _split_marker_name(name: object) -> tuple[int, str] | None:
    """``(the 20-digit field as a u64, run_id)`` of ``<20 digits>_<run_id>``, or None."""
    if not isinstance(name, str) or len(name) <= TIMESTAMP_WIDTH:
        return None
    digits, separator, run_id = (
        name[:TIMESTAMP_WIDTH],
        name[TIMESTAMP_WIDTH],
        name[TIMESTAMP_WIDTH + 1 :],
    )
    unsigned = digits[1:] if digits.startswith("+") else digits
    if separator != "_" or not unsigned or not unsigned.isascii() or not unsigned.isdigit():
        return None
    value = int(unsigned)
    if value > MAX_TERMINAL_AT_MS or _RUN_ID.fullmatch(run_id) is None:
        return None
    return value, run_id


def parse_terminal_marker_name(name: str) -> TerminalMarker | None:
    """Parse ``<ts:020>_<run_id>`` (layout ``"0.5"``); return None for anything else. Never raises.

    Mirrors the reference parser (the first 20 characters are a base-10
    ``u64``, Rust's optional ``+`` included, then ``_``), and also refuses a
    run id that :func:`validate_run_id` would refuse, so a stray object can
    never make a sweep clear the wrong run.
    """
    return Layout.V0_5.parse_marker_name(name)


def detect_marker_layout(name: str) -> Layout | None:
    """The layout a marker name is written in, or None when its date says neither.

    A ``"0.5"`` name of a date before year 10000 is below ``YEAR_10000_MS``;
    an inverted (``"0.10"``) one is above ``u64::MAX - YEAR_10000_MS``. Never raises.
    """
    split = _split_marker_name(name)
    if split is None:
        return None
    if split[0] < YEAR_10000_MS:
        return Layout.V0_5
    if split[0] > MAX_TERMINAL_AT_MS - YEAR_10000_MS:
        return Layout.V0_10
    return None


def step_outputs_prefix(prefix: str) -> str:
    """``<prefix>/step-outputs/``: every run's step outputs (layout ``"0.10"``)."""
    return _join(normalize_prefix(prefix), "step-outputs", "")


def step_outputs_run_prefix(prefix: str, run_id: str) -> str:
    """``<prefix>/step-outputs/<run_id>/``: one run's step-output replay entries (``"0.10"``)."""
    return _join(normalize_prefix(prefix), "step-outputs", validate_run_id(run_id), "")


class Layout(Enum):
    """How a store names what it writes: ``"0.5"`` (the default) or ``"0.10"``.

    ``Layout("0.10")`` is the layout of taquba-workflow 0.6.0 to 0.10.0;
    ``Layout("0.5")`` that of 0.5.0. The store's ``layout`` argument takes
    the value string; :func:`validate_layout` turns it into a member.
    """

    V0_5 = "0.5"
    V0_10 = "0.10"

    @property
    def inverted(self) -> bool:
        """True when marker names lead with ``u64::MAX - terminal_at_ms`` (newest first)."""
        return self is Layout.V0_10

    def marker_name(self, run_id: str, terminal_at_ms: int) -> str:
        """The marker's object name below ``terminals/`` in this layout.

        A time past ``LATEST_TERMINAL_AT_MS`` (about year 584 million) is refused:
        its name would read as the other layout's, in this process and in the crate.
        """
        terminal_at_ms = validate_terminal_at_ms(terminal_at_ms)
        if terminal_at_ms > LATEST_TERMINAL_AT_MS:
            raise InvalidTerminalTimeError(
                f"terminal_at_ms {terminal_at_ms} is past {LATEST_TERMINAL_AT_MS}: a marker that "
                "late is named like a marker of the other layout and would be read as one"
            )
        field_value = MAX_TERMINAL_AT_MS - terminal_at_ms if self.inverted else terminal_at_ms
        return f"{field_value:0{TIMESTAMP_WIDTH}d}_{validate_run_id(run_id)}"

    def marker_key(self, prefix: str, run_id: str, terminal_at_ms: int) -> str:
        """``<prefix>/terminals/<marker name>`` in this layout."""
        return _join(
            normalize_prefix(prefix), "terminals", self.marker_name(run_id, terminal_at_ms)
        )

    def listed_marker_key(self, prefix: str, marker: TerminalMarker) -> str:
        """The key ``marker`` was listed under, else its key in this layout."""
        name = marker.listed_name or self.marker_name(marker.run_id, marker.terminal_at_ms)
        return _join(normalize_prefix(prefix), "terminals", name)

    def parse_marker_name(self, name: str) -> TerminalMarker | None:
        """Parse a marker name written in this layout; None for anything else. Never raises.

        The marker keeps the name it was listed under whenever that is not
        the ``"0.5"`` canonical one, so deleting it deletes that object.
        """
        split = _split_marker_name(name)
        if split is None:
            return None
        value, run_id = split
        marker = TerminalMarker(run_id, MAX_TERMINAL_AT_MS - value if self.inverted else value)
        if name != terminal_marker_name(run_id, marker.terminal_at_ms):
            object.__setattr__(marker, "listed_name", name)
        return marker

    def expired_listing_start(self, prefix: str, cutoff_ms: int) -> str | None:
        """The key after which every marker older than ``cutoff_ms`` lies; None for ``"0.5"``.

        Under ``"0.10"`` it is ``<prefix>/terminals/<(u64::MAX - cutoff_ms):020>``,
        the crate's offset: a marker at exactly the cutoff sorts after it too
        and is dropped by the strict ``terminal_at_ms < cutoff_ms`` test.
        """
        cutoff_ms = validate_terminal_at_ms(cutoff_ms)
        if not self.inverted:
            return None
        return terminals_prefix(prefix) + f"{MAX_TERMINAL_AT_MS - cutoff_ms:0{TIMESTAMP_WIDTH}d}"

    def run_prefixes(self, prefix: str, run_id: str) -> tuple[str, ...]:
        """The prefixes a run clear empties: its memos, and under ``"0.10"`` its step outputs."""
        memos = memos_run_prefix(prefix, run_id)
        if not self.inverted:
            return (memos,)
        return memos, step_outputs_run_prefix(prefix, run_id)


DEFAULT_LAYOUT = Layout.V0_5


def validate_layout(value: object) -> Layout:
    """Return the :class:`Layout` named ``value``: ``"0.5"`` or ``"0.10"``."""
    if not isinstance(value, str):
        raise InvalidValueTypeError(f"layout must be str, not {type(value).__name__}")
    try:
        return Layout(value)
    except ValueError:
        raise InvalidArgumentError(
            f"layout must be one of {[member.value for member in Layout]}, not {value!r:.50}"
        ) from None
