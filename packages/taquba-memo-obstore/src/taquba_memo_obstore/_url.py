"""open_url: an ObstoreBackend from a storage URL (the ``taquba_memo.backends`` entry point).

Accepted URLs (``s3+obstore://``, ``gs+obstore://`` and ``az+obstore://``
name this adapter explicitly and mean the same):

* ``s3://bucket/base/path?region=eu-west-1&endpoint=http://127.0.0.1:9000``
* ``gs://bucket/base/path``
* ``az://container/base/path?account_name=myaccount``
* ``memory://`` (a fresh, empty in-memory store)

``file://`` is refused: obstore's LocalStore follows symbolic links below its
root, so a clear could delete outside it; ``taquba_memo.open_store("file://...")``
opens the core's LocalFileBackend, which never follows one.

Query parameters configure the store: obstore's client options
(``timeout=30s``, ``connect_timeout=5s``, ``allow_http=true``, ...), its
retries (``max_retries=3``, ``retry_timeout=60`` in seconds), and any
non-secret store setting (``region``, ``endpoint``,
``virtual_hosted_style_request``, ``account_name``, ``use_emulator``, ...).
Credentials are never read from the URL (URLs end up in logs): the store
finds them where the cloud's SDKs do, in the environment (``AWS_*``,
``GOOGLE_*``/application-default credentials, ``AZURE_STORAGE_*``).
A URL that carries one raises :class:`~taquba_memo.InvalidArgumentError`; so
does a URL-valued setting with user info (``endpoint=http://user:password@host``,
:class:`~taquba_memo.InvalidURLError`): no S3, GCS or Azure SDK reads credentials
from there, and the setting is shown wherever the store is.
"""

from __future__ import annotations

import urllib.parse
from datetime import timedelta
from typing import TYPE_CHECKING, Any, cast

import obstore.exceptions as obstore_errors
from obstore.store import AzureStore, GCSStore, MemoryStore, S3Store
from taquba_memo.adapter_kit import parameters_with_user_info
from taquba_memo.errors import (
    InvalidArgumentError,
    InvalidConfigurationError,
    InvalidURLError,
    InvalidValueTypeError,
)

from taquba_memo_obstore._backend import ObstoreBackend
from taquba_memo_obstore._errors import redact

if TYPE_CHECKING:
    from obstore.store import (
        AzureConfig,
        ClientConfig,
        GCSConfig,
        ObjectStore,
        RetryConfig,
        S3Config,
    )

__all__ = ["open_url"]

_CLIENT_OPTIONS = frozenset(
    {
        "allow_http",
        "allow_invalid_certificates",
        "connect_timeout",
        "default_content_type",
        "http1_only",
        "http2_keep_alive_interval",
        "http2_keep_alive_timeout",
        "http2_keep_alive_while_idle",
        "http2_only",
        "pool_idle_timeout",
        "pool_max_idle_per_host",
        "proxy_url",
        "proxy_excludes",
        "randomize_addresses",
        "read_timeout",
        "timeout",
        "user_agent",
    }
)
_SECRETS = frozenset(
    {
        "access_key_id",
        "secret_access_key",
        "session_token",
        "token",
        "sse_customer_key_base64",
        "service_account_key",
        "bearer_token",
        "account_key",
        "access_key",
        "master_key",
        "client_secret",
        "sas_key",
        "sas_token",
        "fabric_session_token",
        "encryption_key",
    }
)
_SCHEMES = {"s3": "s3", "gs": "gs", "az": "az", "memory": "memory"}


def _is_secret(name: str) -> bool:
    bare = name.lower().removeprefix("aws_").removeprefix("google_").removeprefix("azure_")
    return bare in _SECRETS or "secret" in bare or "password" in bare


def open_url(url: str) -> ObstoreBackend:
    """Open the store that ``url`` names; see the module documentation for the forms."""
    if not isinstance(url, str):
        raise InvalidValueTypeError(f"url must be str, not {type(url).__name__}")
    parts = urllib.parse.urlsplit(url)
    scheme = parts.scheme.lower().removesuffix("+obstore")
    if scheme == "file":
        raise InvalidConfigurationError(
            "taquba-memo-obstore does not open file:// URLs: obstore's LocalStore follows "
            "symbolic links below its root, so a clear could delete outside it; use "
            "taquba_memo.LocalFileBackend (taquba_memo.open_store('file://...') opens it)"
        )
    if scheme not in _SCHEMES:
        raise InvalidArgumentError(
            f"unsupported URL scheme {parts.scheme!r}: use s3, gs, az or memory"
        )
    if parts.username or parts.password:
        raise InvalidArgumentError(
            "credentials do not belong in the URL; set them in the environment"
        )
    query = urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
    leaked = sorted({name for name, _ in query if _is_secret(name)})
    if leaked:
        raise InvalidArgumentError(
            f"the URL carries credentials ({', '.join(leaked)}); set them in the environment"
        )
    nested = parameters_with_user_info(url)
    if nested:
        raise InvalidURLError(
            f"the URL's {', '.join(nested)} carries credentials (user:password@ in a URL), "
            "which no store SDK uses; set the access key options in the environment instead "
            "(AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, GOOGLE_SERVICE_ACCOUNT, "
            "AZURE_STORAGE_ACCOUNT_KEY)"
        )
    settings = dict(query)
    base_path = urllib.parse.unquote(parts.path)
    try:
        if scheme == "memory":
            return ObstoreBackend(MemoryStore(), base_path=base_path)
        if not parts.hostname:
            raise InvalidArgumentError(f"the URL names no bucket or container: {redact(url)}")
        store = _cloud_store(scheme, parts.netloc, settings)
    except obstore_errors.BaseError as exc:
        # UnknownConfigurationKeyError, unparseable values, ...: a store obstore cannot build.
        raise InvalidConfigurationError(
            f"cannot open {redact(url)}: {redact(str(exc))}; remove or correct that query "
            "parameter (obstore's store settings and client options, such as region, "
            "endpoint, allow_http, timeout)"
        ) from exc
    return ObstoreBackend(store, base_path=base_path)


def _cloud_store(scheme: str, name: str, settings: dict[str, str]) -> ObjectStore:
    client_options: ClientConfig = {}
    for option in _CLIENT_OPTIONS & settings.keys():
        client_options[option] = settings.pop(option)  # type: ignore[literal-required]
    retry_config: RetryConfig = {}
    if "max_retries" in settings:
        retry_config["max_retries"] = _number(settings.pop("max_retries"), "max_retries", int)
    if "retry_timeout" in settings:
        seconds = _number(settings.pop("retry_timeout"), "retry_timeout", float)
        retry_config["retry_timeout"] = timedelta(seconds=seconds)
    config: dict[str, Any] = dict(settings)
    options: dict[str, Any] = {
        "client_options": client_options or None,
        "retry_config": retry_config or None,
    }
    # obstore checks the setting names and values itself (UnknownConfigurationKeyError).
    if scheme == "s3":
        return S3Store(name, config=cast("S3Config", config), **options)
    if scheme == "gs":
        return GCSStore(name, config=cast("GCSConfig", config), **options)
    return AzureStore(name, config=cast("AzureConfig", config), **options)


def _number(value: str, name: str, kind: type[int] | type[float]) -> Any:
    try:
        number = kind(value)
    except ValueError:
        raise InvalidArgumentError(f"{name} must be a number, not {value!r}") from None
    if number < 0:
        raise InvalidArgumentError(f"{name} must not be negative")
    return number
