"""Loopback HTTP proxies for storage tests: counting, faults, protocol translation (opt-in).

Nothing in the suite or the pytest plugin imports this package; import it
where a test needs to see or disturb the requests an adapter sends. Every
proxy here is a :class:`CountingProxy`, one forwarding core that passes the
``Host`` header and every signed header upstream unchanged, with hooks
(:meth:`CountingProxy.intercept`, :meth:`CountingProxy.intercept_answer`,
:meth:`CountingProxy.reads_body`) that the others build on:

* :class:`CountingProxy` counts requests by kind and method;
* :class:`FaultProxy` faults a seeded share of them in the API's own dialect;
* :class:`GcsXmlProxy` turns obstore's GCS XML uploads into JSON-API uploads
  that fake-gcs-server understands.

Underneath: ``classify`` says which operation a request is, ``records`` keeps
the counts and records, ``framing`` reads and copies HTTP/1.1 messages.
"""

from taquba_memo_conformance.proxies.classify import Classifier, classify_request
from taquba_memo_conformance.proxies.counting import CountingProxy
from taquba_memo_conformance.proxies.faults import (
    DEFAULT_FAULT_WEIGHTS,
    FAULTS,
    FaultProxy,
    error_reply,
)
from taquba_memo_conformance.proxies.framing import (
    DropConnection,
    Reply,
    RequestHead,
    ResetConnection,
)
from taquba_memo_conformance.proxies.gcs_xml import GcsXmlProxy
from taquba_memo_conformance.proxies.records import RequestCounts, RequestRecord

__all__ = [
    "DEFAULT_FAULT_WEIGHTS",
    "FAULTS",
    "Classifier",
    "CountingProxy",
    "DropConnection",
    "FaultProxy",
    "GcsXmlProxy",
    "Reply",
    "RequestCounts",
    "RequestHead",
    "RequestRecord",
    "ResetConnection",
    "classify_request",
    "error_reply",
]
