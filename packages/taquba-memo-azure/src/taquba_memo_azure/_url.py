"""open_url: an AzureBlobBackend from an ``az://container/base/path`` URL.

Registered as the ``az`` and ``az+azure`` entry points of the
``taquba_memo.backends`` group, so a generic opener can dispatch on the scheme.

Credentials, in this order:

1. ``?account_url=https://<account>.blob.core.windows.net`` in the URL: the
   account is reached with azure-identity's ``DefaultAzureCredential``
   (install ``taquba-memo-azure[identity]``); the backend closes it on ``aclose``.
2. Otherwise the ``AZURE_STORAGE_CONNECTION_STRING`` environment variable.

Nothing else is guessed: with neither, :func:`open_url` raises
:class:`~taquba_memo.InvalidURLError` (a ``ValueError``).
"""

from __future__ import annotations

import importlib
import os
import urllib.parse
from typing import Any

from taquba_memo.adapter_kit import parameters_with_user_info, redact_url
from taquba_memo.errors import InvalidURLError, InvalidValueTypeError

from taquba_memo_azure._backend import AzureBlobBackend

__all__ = ["CONNECTION_STRING_VARIABLE", "SCHEMES", "open_url"]

SCHEMES = ("az", "az+azure")
CONNECTION_STRING_VARIABLE = "AZURE_STORAGE_CONNECTION_STRING"
_QUERY_PARAMETERS = frozenset({"account_url"})


def _default_azure_credential() -> Any:
    try:
        identity = importlib.import_module("azure.identity.aio")
    except ImportError as exc:
        raise ImportError(
            "an az:// URL with account_url authenticates with azure-identity's "
            "DefaultAzureCredential; install the extra: taquba-memo-azure[identity]"
        ) from exc
    return identity.DefaultAzureCredential()


def open_url(url: str) -> AzureBlobBackend:
    """Open ``az://<container>[/<base path>][?account_url=https://...]``.

    The base path is percent-decoded; empty segments are dropped. Unknown query
    parameters are refused rather than ignored.
    """
    if not isinstance(url, str):
        raise InvalidValueTypeError(f"url must be str, not {type(url).__name__}")
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in SCHEMES:
        raise InvalidURLError(
            f"not an Azure Blob URL (expected az:// or az+azure://): {redact_url(url)!r}"
        )
    nested = parameters_with_user_info(url)
    if nested:
        raise InvalidURLError(
            f"the URL's {', '.join(nested)} carries credentials (user:password@ in a URL), "
            "which Azure never reads from there; give account_url without them "
            f"(DefaultAzureCredential signs in), or set {CONNECTION_STRING_VARIABLE}"
        )
    container = parts.netloc
    if not container:
        raise InvalidURLError(f"the URL names no container: {redact_url(url)!r}")
    base_path = urllib.parse.unquote(parts.path)
    query = urllib.parse.parse_qs(parts.query, keep_blank_values=True)
    unknown = sorted(set(query) - _QUERY_PARAMETERS)
    if unknown:
        raise InvalidURLError(f"unknown query parameter(s) in az:// URL: {', '.join(unknown)}")
    if "account_url" in query:
        account_url = query["account_url"][-1]
        if not account_url.lower().startswith("https://"):
            raise InvalidURLError(
                "account_url must be an https:// URL (a token is never sent in clear)"
            )
        return AzureBlobBackend.from_account_url(
            account_url,
            _default_azure_credential(),
            container,
            base_path=base_path,
            close_credential=True,
        )
    connection_string = os.environ.get(CONNECTION_STRING_VARIABLE)
    if connection_string:
        return AzureBlobBackend.from_connection_string(
            connection_string, container, base_path=base_path
        )
    raise InvalidURLError(
        f"no credentials for {parts.scheme}://{container}: set {CONNECTION_STRING_VARIABLE} "
        "or add ?account_url=https://<account>.blob.core.windows.net (DefaultAzureCredential)"
    )
