"""Occurrence keys: the n-th identical request of one attempt gets an entry of its own.

A content or request key merges identical requests, but an agent that
samples the same request twice in one attempt wants two answers, and its
retry wants the same two again, in the same order. :meth:`Memo.occurrence_key
<taquba_memo.Memo.occurrence_key>` gives each call its own entry key:

* the n-th call (counting from 0) with the same ``key`` on one memo object
  returns ``f"{key}#{n}"``: ``"k#0"``, ``"k#1"``, ... Every result ends in
  ``#`` and a decimal, so two different keys never share an occurrence key
  (``"a#0"`` gives ``"a#0#0"``); keys used directly with ``get``/``put``
  should not end that way;
* counting happens when the call starts, in the caller: take the key
  before awaiting the call. Concurrent calls with different keys each get
  ``#0`` of their own key, whatever order they finish in; concurrent calls
  with the same key are numbered in the order they asked;
* the counts live in the memo object, not in storage: one memo object is
  one attempt of one step, and the retry's new memo (``store.new_memo``)
  counts from 0 again, so it replays the first attempt's entries in order.
  Build one memo per attempt and share it (``use_memo`` where available),
  not one per call, or every call is occurrence 0.

Thread-safe: the sync API's memo may be shared by a worker's threads.
"""

from __future__ import annotations

import threading

from taquba_memo.errors import InvalidValueTypeError

__all__ = ["Occurrences"]

SEPARATOR = "#"


class Occurrences:
    """How many times each key was asked for on one memo object (one attempt)."""

    __slots__ = ("_counts", "_lock")

    def __init__(self) -> None:
        self._counts: dict[str, int] = {}
        self._lock = threading.Lock()

    def next_key(self, key: object) -> str:
        """``f"{key}#{n}"`` for the n-th call with ``key`` (from 0), counted now."""
        if not isinstance(key, str):
            raise InvalidValueTypeError(f"memo key must be str, not {type(key).__name__}")
        with self._lock:
            n = self._counts.get(key, 0)
            self._counts[key] = n + 1
        return f"{key}{SEPARATOR}{n}"
