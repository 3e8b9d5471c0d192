"""taquba-memo-azure: a taquba-memo backend on Azure Blob Storage (azure-storage-blob, async).

>>> backend = AzureBlobBackend.from_connection_string(conn_str, "memos", "prod")  # doctest: +SKIP
>>> store = MemoStore(backend)  # doctest: +SKIP
"""

from taquba_memo_azure._backend import (
    AzureBlobBackend,
    AzureCredential,
    RequestCounts,
    default_client_options,
)
from taquba_memo_azure._errors import map_azure_error
from taquba_memo_azure._url import open_url

__version__ = "0.1.0"

__all__ = [
    "AzureBlobBackend",
    "AzureCredential",
    "RequestCounts",
    "default_client_options",
    "map_azure_error",
    "open_url",
]
