"""Refusing, when the backend is opened, an obstore store whose HTTP client cannot work.

obstore builds a store without checking its endpoint: an ``http://`` endpoint
without ``allow_http`` fails only at the first request ("HTTP error: builder
error", which looks transient), and an endpoint that is not a URL makes the
first request panic. Both are configuration mistakes that no retry fixes, so
:func:`check_client_config` raises :class:`~taquba_memo.InvalidConfigurationError`
naming the fix before any I/O.
"""

from __future__ import annotations

from typing import Any

from obstore.store import AzureStore, S3Store
from taquba_memo.adapter_kit import TRUE_WORDS, check_endpoint_url

__all__ = ["check_client_config"]

# Where each store's configuration keeps its endpoint (obstore normalises the
# aliases it accepts to these names).
_ENDPOINT_KEYS = ("endpoint", "aws_endpoint", "azure_storage_endpoint", "azure_endpoint")


def _is_true(value: Any) -> bool:
    return value is True or (isinstance(value, str) and value.strip().lower() in TRUE_WORDS)


def check_client_config(store: object) -> None:
    """Raise InvalidConfigurationError if ``store``'s endpoint cannot be reached as configured."""
    if not isinstance(store, (S3Store, AzureStore)):
        return  # GCS reads its URL from the credentials; local and memory stores have none
    config: dict[str, Any] = dict(store.config or {})
    client_options: dict[str, Any] = dict(store.client_options or {})
    endpoint = next((config[key] for key in _ENDPOINT_KEYS if config.get(key)), None)
    if endpoint is None:
        return
    allowed = _is_true(client_options.get("allow_http")) or _is_true(config.get("use_emulator"))
    check_endpoint_url(
        str(endpoint),
        what=f"{type(store).__name__} endpoint",
        http_allowed=allowed,
        http_fix="obstore refuses it unless told otherwise; add allow_http=true "
        "(client_options={'allow_http': True}, or ?allow_http=true in the store URL), "
        "or use https://",
    )
