"""MemoBackendConformance: the test class every MemoBackend must pass.

Subclass it in a test module and override the ``backend`` fixture::

    import pytest_asyncio
    from taquba_memo_conformance import MemoBackendConformance

    class TestMyBackend(MemoBackendConformance):
        @pytest_asyncio.fixture
        async def backend(self):
            async with MyBackend(...) as backend:
                yield backend

Every test then runs against that backend: the MemoBackend contract (reads,
writes, listing, deletes, conditional puts, input checks), the MemoStore
behaviour of the reference implementation over it, a Hypothesis state
machine compared with a dict, the guarantees of get_or_compute's claims
(where ``conditional_put`` is declared), and the agent primitives
(``use_memo``, ``memo.aio``, ``request_key``, occurrence keys,
``PydanticCodec``, ``get_or_stream``) through the async and the sync API.

How the suite treats a backend:

* Every test writes below a fresh ``<namespace_root>/<12 hex>/`` prefix and
  deletes what it wrote when it ends, so a shared bucket is fine.
* Capabilities are verified, not trusted: a declared ``ordered_listing`` is
  checked across page boundaries, a declared ``conditional_put`` against
  concurrent creators and by the claims of ``get_or_compute`` built on it.
  A test that needs a capability the backend does not declare is
  *skipped*, and the reason names the capability.
* Every optional member the backend offers (``list_with_metadata``,
  ``get_at_most``, ``after_fork``, ``list_after``:
  ``taquba_memo.backend.OPTIONAL_MEMBERS``)
  is checked; the checks of one it lacks are skipped, naming it.
* ``expected_failures`` turns named tests into strict xfails for one
  subclass: the documented gap of one emulator, never a general excuse.
"""

from __future__ import annotations

from taquba_memo_conformance._base import CleanupWarning, SuiteBase
from taquba_memo_conformance.agent_primitives_suite import AgentPrimitiveTests
from taquba_memo_conformance.claims_suite import ClaimTests
from taquba_memo_conformance.exact_prefix import ExactPrefixTests
from taquba_memo_conformance.list_after_suite import ListAfterTests
from taquba_memo_conformance.protocol_suite import AWKWARD_KEYS, BackendProtocolTests
from taquba_memo_conformance.statemachine import StateMachineTests
from taquba_memo_conformance.store_suite import MemoStoreTests

__all__ = ["AWKWARD_KEYS", "CleanupWarning", "MemoBackendConformance", "SuiteBase"]


class MemoBackendConformance(
    BackendProtocolTests,
    ExactPrefixTests,
    ListAfterTests,
    MemoStoreTests,
    StateMachineTests,
    AgentPrimitiveTests,
    ClaimTests,
):
    """Base class of the conformance suite; subclass it and override ``backend``.

    Class attributes tune the suite for one backend. Hooks (methods that
    raise ``NotImplementedError`` here) let a subclass provoke situations the
    suite cannot provoke through the protocol alone; a test whose hook is
    missing is skipped, with the hook's name in the reason.
    """
