"""Skip marks for core tests that need a package the core does not depend on.

The core's tests also run in plain installs of the core and the kit on every
supported Python (``scripts/other_pythons.py``), where the adapters may be
absent (the obstore adapter needs Python 3.11) and the kit's servers extra is.
"""

from __future__ import annotations

import importlib.metadata
import os

import pytest

SERVERS_REQUIRED = os.environ.get("TAQUBA_MEMO_REQUIRE_SERVERS") == "1"


def installed(distribution: str) -> bool:
    try:
        importlib.metadata.distribution(distribution)
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


def requires(*distributions: str, server: bool = False) -> pytest.MarkDecorator:
    """Skip unless every distribution is installed.

    ``server=True`` marks a test server's packages: with ``TAQUBA_MEMO_REQUIRE_SERVERS=1``
    (as CI sets it) their absence fails the test instead of skipping it.
    """
    missing = [name for name in distributions if not installed(name)]
    return pytest.mark.skipif(
        bool(missing) and not (server and SERVERS_REQUIRED),
        reason=f"not installed in this environment: {', '.join(missing)}",
    )
