"""taquba-memo-azure: a taquba-memo backend on Azure Blob Storage (azure-storage-blob, async).

>>> backend = AzureBlobBackend.from_connection_string(  # doctest: +SKIP
...     conn_str, "memos", base_path="prod"
... )
>>> store = MemoStore(backend)  # doctest: +SKIP
"""

from taquba_memo_azure._backend import (
    AzureBlobBackend,
    AzureCredential,
    AzureRequestCounts,
    default_client_options,
)
from taquba_memo_azure._url import open_url

__version__ = "0.1.0"

__all__ = [
    "AzureBlobBackend",
    "AzureCredential",
    "AzureRequestCounts",
    "__version__",
    "default_client_options",
    "open_url",
]
