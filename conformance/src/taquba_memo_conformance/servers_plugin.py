"""Opt-in pytest plugin with the server fixtures: s3_server, rgw_server, gcs_server, ...

Installing the kit does not register these fixtures (the always-on plugin,
:mod:`taquba_memo_conformance.plugin`, only adds ``--memo-backend`` and
``expected_failures``). Ask for them in your top-level ``conftest.py``::

    pytest_plugins = ["taquba_memo_conformance.servers_plugin"]

or on the command line, ``pytest -p taquba_memo_conformance.servers_plugin``.
What they need to start their servers is the ``servers`` extra; importing
this module needs only pytest and the standard library.
"""

from __future__ import annotations

from taquba_memo_conformance.fixtures import (
    azure_server,
    default_s3_server,
    gcs_server,
    moto_auth_server,
    rgw_server,
    s3_server,
)

__all__ = [
    "azure_server",
    "default_s3_server",
    "gcs_server",
    "moto_auth_server",
    "rgw_server",
    "s3_server",
]
