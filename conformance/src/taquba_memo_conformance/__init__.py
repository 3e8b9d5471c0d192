"""taquba-memo-conformance: one pytest suite that every MemoBackend must pass.

Subclass :class:`MemoBackendConformance` and override its ``backend``
fixture, or run ``pytest --memo-backend=package.module:factory`` without
writing a test file. See the README for both, with complete examples.
"""

import pytest

# Plain asserts in the suite get pytest's detailed messages only if the
# modules are rewritten, which must be arranged before they are imported.
pytest.register_assert_rewrite(
    "taquba_memo_conformance.suite",
    "taquba_memo_conformance.exact_prefix",
    "taquba_memo_conformance.protocol_suite",
    "taquba_memo_conformance.store_suite",
    "taquba_memo_conformance._base",
    "taquba_memo_conformance.statemachine",
    "taquba_memo_conformance.keyspace",
    "taquba_memo_conformance.claims_suite",
    "taquba_memo_conformance.agent_primitives_suite",
)

from taquba_memo_conformance.exact_prefix import DECOY_CASES, DecoyCase  # noqa: E402
from taquba_memo_conformance.keyspace import KeySpace  # noqa: E402
from taquba_memo_conformance.recording import RecordingBackend  # noqa: E402
from taquba_memo_conformance.statemachine import BackendStateMachine  # noqa: E402
from taquba_memo_conformance.suite import (  # noqa: E402
    AWKWARD_KEYS,
    CleanupWarning,
    MemoBackendConformance,
)

__version__ = "0.1.0"

__all__ = [
    "AWKWARD_KEYS",
    "BackendStateMachine",
    "DECOY_CASES",
    "DecoyCase",
    "CleanupWarning",
    "KeySpace",
    "MemoBackendConformance",
    "RecordingBackend",
    "__version__",
]
