"""A portable multipart boundary for the async client's blob batch requests.

``azure.storage.blob.aio``'s ``delete_blobs`` leaves the boundary of its
``multipart/mixed`` body to Python's :mod:`email` package, which makes
boundaries such as ``===============5306085128869334238==``. The Azure
service accepts them, but Azurite 3.35 (the newest release that runs on
Node 20) reads the boundary with ``content_type.split("=")[1]``, gets an
empty string and answers the whole batch with 400 ``InvalidInput`` (Azurite
issue 2413, labelled for 3.37). The synchronous client is unaffected because
it passes its own ``batch_<uuid>`` boundary.

:func:`use_portable_boundary` is passed to ``delete_blobs`` as the SDK's
per-call ``raw_request_hook``. That hook runs after the body is built and
before the request is signed, so swapping the boundary in the
``Content-Type`` header and in the body's delimiter lines keeps the
signature valid. The new boundary has the sync client's form, which the
service accepts too, so the same request goes to Azure and to Azurite.
"""

from __future__ import annotations

import re
import uuid
from typing import Any

__all__ = ["PORTABLE_BOUNDARY_PREFIX", "use_portable_boundary"]

PORTABLE_BOUNDARY_PREFIX = "batch_"

_MULTIPART = re.compile(r'^\s*multipart/mixed\s*;\s*boundary="?([^";]+)"?\s*$', re.IGNORECASE)


def use_portable_boundary(pipeline_request: Any) -> None:
    """Rewrite a batch request's boundary to ``batch_<uuid4>`` (a no-op otherwise).

    Idempotent: a request that already carries a portable boundary, or that is
    not a ``multipart/mixed`` request with a bytes body, is left untouched.
    """
    request = pipeline_request.http_request
    match = _MULTIPART.match(request.headers.get("Content-Type", ""))
    body = getattr(request, "data", None)
    if match is None or not isinstance(body, bytes):
        return
    old = match.group(1)
    if old.startswith(PORTABLE_BOUNDARY_PREFIX):
        return
    new = f"{PORTABLE_BOUNDARY_PREFIX}{uuid.uuid4()}"
    # Delimiter lines are "--<boundary>" (and "--<boundary>--" at the end); no
    # sub-request line can contain "--=====...==", so a plain replace is exact.
    request.set_bytes_body(body.replace(b"--" + old.encode("ascii"), b"--" + new.encode("ascii")))
    request.headers["Content-Type"] = f"multipart/mixed; boundary={new}"
