"""Times as ISO 8601 UTC text, for everything the core prints.

The CLI and the demo show terminal-marker times and sweep cutoffs this way
(``2026-12-01T10:20:30.123Z``) instead of raw milliseconds.
"""

from __future__ import annotations

import datetime

__all__ = ["iso_utc", "iso_utc_moment"]


def iso_utc(ms: int) -> str | None:
    """``ms`` as ``YYYY-MM-DDTHH:MM:SS.mmmZ``; None past year 9999 (show the raw number then)."""
    try:
        moment = datetime.datetime.fromtimestamp(ms / 1000, tz=datetime.timezone.utc)
    except (OverflowError, ValueError, OSError):
        return None
    return iso_utc_moment(moment)


def iso_utc_moment(moment: datetime.datetime) -> str:
    """An aware ``moment`` (a listing's last-modified time) as ``YYYY-MM-DDTHH:MM:SS.mmmZ``."""
    utc = moment.astimezone(datetime.timezone.utc)
    return utc.isoformat(timespec="milliseconds").replace("+00:00", "Z")
