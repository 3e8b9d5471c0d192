"""taquba-memo-obstore: a taquba-memo backend for S3, GCS, Azure, local files and memory.

Wrap any obstore store in :class:`ObstoreBackend`, or open one from a URL
with :func:`open_url` (also registered as the ``s3``, ``gs`` and ``az``
entry points of the ``taquba_memo.backends`` group).
"""

from taquba_memo_obstore import _shutdown  # noqa: F401  (registers the exit guard)
from taquba_memo_obstore._backend import ObstoreBackend, capabilities_for
from taquba_memo_obstore._url import open_url

__version__ = "0.1.0"

__all__ = ["ObstoreBackend", "__version__", "capabilities_for", "open_url"]
