"""A fault-injecting HTTP proxy on 127.0.0.1: server errors, throttling, resets and stalls.

:class:`FaultProxy` is a :class:`~taquba_memo_conformance.proxies.CountingProxy`
that, for a configured share of the requests passing through it, injects one
fault drawn from a weighted menu. The draws come from a seeded RNG: the same
seed gives the same sequence of decisions (and, one request at a time, the
same faults on the same requests)::

    with FaultProxy(server.endpoint_url, seed=7, rate=0.2) as proxy:
        backend = make_backend(endpoint=proxy.url)  # short timeouts, a few retries
        ...
        proxy.injected  # Counter({'reset': 12, '503': 9, ...})

The faults (:data:`FAULTS`):

* ``500`` -- answered ``500 InternalError`` by the proxy; the server never sees it.
* ``503`` -- answered ``503`` *slow down* (S3 ``SlowDown``, Azure ``ServerBusy``).
* ``429`` -- answered ``429 Too Many Requests``.
* ``reset`` -- the connection is reset (TCP RST) before anything is forwarded.
* ``stall`` -- held for ``stall_seconds`` (set it past the client's timeout),
  then closed; never forwarded.
* ``lost-reset`` -- forwarded, so the server applies it; the answer is replaced
  by a reset. The client cannot tell whether its request took effect.
* ``lost-stall`` -- forwarded and applied; the answer is held for
  ``stall_seconds``, then the connection is closed.

For both, the proxy reads the server's whole answer before failing the
client: a server may send its status before it has done the work (Ceph RGW's
DeleteObjects streams its per-key results), and a request must not take effect
after its caller was told it failed.
* ``401``, ``403`` -- answered as a refused credential or permission (not in
  the default menu: for error-mapping tests against emulators that accept
  any credential).

Error answers speak the dialect of the API a request belongs to, so an SDK
reads the error code as it would from the real service: Azure Blob
(``x-ms-error-code`` and an XML body, recognised by the ``x-ms-version``
header), the GCS JSON API (a JSON ``error`` object, recognised by its paths),
and otherwise S3 XML (``<Error><Code>``), which is also what GCS's XML API
speaks. A ``HEAD`` request's answer has no body.

:meth:`FaultProxy.fault_next` queues faults for the next requests, ahead of
the random draws, for tests that need one fault at one place (a throttling
test answers every request ``503``).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import json
import random
import threading
from collections import Counter, deque
from collections.abc import Callable, Iterator, Mapping
from typing import Final

from taquba_memo_conformance.proxies.counting import (
    Classifier,
    CountingProxy,
    DropConnection,
    Reply,
    RequestHead,
    ResetConnection,
    classify_request,
)

__all__ = ["DEFAULT_FAULT_WEIGHTS", "FAULTS", "FaultProxy", "error_reply"]

FAULTS: Final = (
    "500",
    "503",
    "429",
    "reset",
    "stall",
    "lost-reset",
    "lost-stall",
    "401",
    "403",
)
"""Every fault :class:`FaultProxy` can inject (see the module documentation)."""

DEFAULT_FAULT_WEIGHTS: Final[Mapping[str, float]] = {
    "500": 2,
    "503": 2,
    "429": 1,
    "reset": 2,
    "stall": 1,
    "lost-reset": 2,
    "lost-stall": 1,
}
"""The menu by default: every transient fault, stalls (which cost time) less often."""

_GCS_JSON_PATHS = ("/storage/v1/", "/upload/storage/v1/", "/download/storage/v1/", "/batch/")

# (S3 / Azure error code, message, GCS JSON reason) per injected status.
_ERRORS: Final[dict[int, tuple[str, str, str, str]]] = {
    500: ("InternalError", "InternalError", "We encountered an internal error.", "backendError"),
    503: ("SlowDown", "ServerBusy", "Please reduce your request rate.", "backendError"),
    429: ("TooManyRequests", "TooManyRequests", "Too many requests.", "rateLimitExceeded"),
    401: ("AccessDenied", "NoAuthenticationInformation", "Authentication required.", "required"),
    403: ("AccessDenied", "AuthorizationFailure", "Access denied.", "forbidden"),
}

# The fault chosen for the request being served, for intercept_answer (same task).
_answer_fault: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "taquba_memo_answer_fault", default=None
)


def error_reply(request: RequestHead, status: int, request_id: str = "fault") -> Reply:
    """The error answer a real service would give ``request`` for ``status`` (see FAULTS)."""
    s3_code, azure_code, message, gcs_reason = _ERRORS[status]
    path = request.target.split("?", 1)[0]
    headers: list[tuple[str, str]] = []
    if request.header("x-ms-version") is not None:
        headers += [("x-ms-error-code", azure_code), ("x-ms-request-id", request_id)]
        headers.append(("Content-Type", "application/xml"))
        body = (
            '<?xml version="1.0" encoding="utf-8"?>'
            f"<Error><Code>{azure_code}</Code><Message>{message}</Message></Error>"
        ).encode()
    elif path.startswith(_GCS_JSON_PATHS):
        headers.append(("Content-Type", "application/json; charset=UTF-8"))
        error = {"domain": "global", "reason": gcs_reason, "message": message}
        document = {"error": {"code": status, "message": message, "errors": [error]}}
        body = json.dumps(document).encode()
    else:
        headers.append(("Content-Type", "application/xml"))
        body = (
            '<?xml version="1.0" encoding="UTF-8"?>'
            f"<Error><Code>{s3_code}</Code><Message>{message}</Message>"
            f"<RequestId>{request_id}</RequestId></Error>"
        ).encode()
    if request.method == "HEAD":
        body = b""
    if status in (429, 503):
        headers.append(("Retry-After", "0"))
    return Reply(status=status, body=body, headers=headers)


class FaultProxy(CountingProxy):
    """Forwards HTTP to ``upstream_url``, injecting faults into a share ``rate`` of requests.

    ``faults`` weighs the faults drawn (default :data:`DEFAULT_FAULT_WEIGHTS`);
    ``stall_seconds`` is how long a stall holds a request or an answer;
    ``eligible`` (default: every request) says which requests may be faulted.
    :attr:`injected` counts the faults injected by name; everything
    :class:`CountingProxy` counts is there too. Thread-safe.
    """

    def __init__(
        self,
        upstream_url: str,
        *,
        seed: int = 0,
        rate: float = 0.0,
        faults: Mapping[str, float] = DEFAULT_FAULT_WEIGHTS,
        stall_seconds: float = 2.0,
        eligible: Callable[[RequestHead], bool] | None = None,
        classify: Classifier = classify_request,
    ) -> None:
        super().__init__(upstream_url, classify=classify)
        self._fault_lock = threading.Lock()
        self._rng = random.Random(seed)
        self._eligible = eligible
        self._injected: Counter[str] = Counter()
        self._forced: deque[str] = deque()
        self._decisions = 0
        self._rate = 0.0
        self._menu: tuple[tuple[str, ...], tuple[float, ...]] = ((), ())
        self._stall_seconds = 0.0
        self.configure(rate=rate, faults=faults, stall_seconds=stall_seconds)

    # -- configuration -------------------------------------------------------------

    def configure(
        self,
        *,
        rate: float | None = None,
        faults: Mapping[str, float] | None = None,
        stall_seconds: float | None = None,
    ) -> None:
        """Change the share of faulted requests, the menu, or the stall length."""
        with self._fault_lock:
            if rate is not None:
                if not 0.0 <= rate <= 1.0:
                    raise ValueError(f"rate must be in 0..1, not {rate}")
                self._rate = rate
            if faults is not None:
                unknown = set(faults) - set(FAULTS)
                if unknown or not faults or any(weight < 0 for weight in faults.values()):
                    raise ValueError(f"faults must weigh some of {FAULTS}, got {dict(faults)}")
                names = tuple(faults)
                self._menu = (names, tuple(float(faults[name]) for name in names))
            if stall_seconds is not None:
                if stall_seconds < 0:
                    raise ValueError("stall_seconds must not be negative")
                self._stall_seconds = stall_seconds

    def set_eligible(self, eligible: Callable[[RequestHead], bool] | None) -> None:
        """Which requests may be faulted from now on (None: every request)."""
        with self._fault_lock:
            self._eligible = eligible

    @property
    def rate(self) -> float:
        with self._fault_lock:
            return self._rate

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        """No random faults inside the block (queued ones still apply)."""
        with self._fault_lock:
            rate, self._rate = self._rate, 0.0
        try:
            yield
        finally:
            with self._fault_lock:
                self._rate = rate

    def fault_next(self, fault: str, times: int = 1) -> None:
        """Inject ``fault`` into the next ``times`` eligible requests, before any random draw."""
        if fault not in FAULTS:
            raise ValueError(f"unknown fault {fault!r}; one of {FAULTS}")
        with self._fault_lock:
            self._forced.extend([fault] * times)

    def clear_queued_faults(self) -> None:
        with self._fault_lock:
            self._forced.clear()

    # -- what happened -------------------------------------------------------------

    @property
    def injected(self) -> Counter[str]:
        """Faults injected so far, by name (a snapshot)."""
        with self._fault_lock:
            return Counter(self._injected)

    @property
    def decisions(self) -> int:
        """Eligible requests seen so far (each got one draw)."""
        with self._fault_lock:
            return self._decisions

    # -- injection -----------------------------------------------------------------

    def _draw(self, request: RequestHead) -> str | None:
        with self._fault_lock:
            if self._eligible is not None and not self._eligible(request):
                return None
            self._decisions += 1
            if self._forced:
                fault: str | None = self._forced.popleft()
            elif self._rate and self._rng.random() < self._rate:
                names, weights = self._menu
                fault = self._rng.choices(names, weights)[0]
            else:
                fault = None
            if fault is not None:
                self._injected[fault] += 1
            return fault

    async def intercept(self, request: RequestHead) -> Reply | None:
        fault = self._draw(request)
        _answer_fault.set(fault if fault in ("lost-reset", "lost-stall") else None)
        if fault is None or fault.startswith("lost-"):
            return None
        if fault == "reset":
            raise ResetConnection
        if fault == "stall":
            await asyncio.sleep(self._stall_seconds)
            raise DropConnection
        return error_reply(request, int(fault), request_id=f"fault-{self.decisions}")

    async def intercept_answer(self, request: RequestHead, status: int) -> None:
        fault = _answer_fault.get()
        _answer_fault.set(None)
        if fault == "lost-reset":
            raise ResetConnection
        if fault == "lost-stall":
            await asyncio.sleep(self._stall_seconds)
            raise DropConnection
