"""taquba-memo-gcs: a taquba-memo backend on Google Cloud Storage (google-cloud-storage).

:class:`GCSBackend` wraps a ``storage.Client`` and a bucket (plus an optional
base path); :func:`open_url` opens ``gs://bucket/base/path`` URLs.
"""

from taquba_memo_gcs._backend import DEFAULT_GCS_RETRY, GCSBackend
from taquba_memo_gcs._url import open_url

__version__ = "0.1.0"

__all__ = ["DEFAULT_GCS_RETRY", "GCSBackend", "__version__", "open_url"]
