"""open_url: a MinioBackend from an ``s3+minio://bucket/base/path?endpoint=host:port`` URL.

Registered as the ``s3+minio`` and ``minio`` entry points of the
``taquba_memo.backends`` group (plain ``s3`` belongs to taquba-memo-obstore),
so :func:`taquba_memo.open_store` finds this adapter by scheme.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from urllib.parse import parse_qsl, unquote, urlsplit

from taquba_memo.adapter_kit import parameters_with_user_info, parse_flag, redact_url
from taquba_memo.errors import InvalidArgumentError, InvalidURLError, InvalidValueTypeError

from taquba_memo_minio._backend import MinioBackend

__all__ = ["SCHEMES", "open_url"]

SCHEMES = ("s3+minio", "minio")

_PARAMETERS = frozenset({"endpoint", "secure", "region", "max_concurrency"})

# Credential pairs, in the order they are looked for.
_CREDENTIAL_VARIABLES = (
    ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"),
    ("MINIO_ACCESS_KEY", "MINIO_SECRET_KEY", None),
)
_ENDPOINT_VARIABLES = ("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL")
_REGION_VARIABLES = ("AWS_REGION", "AWS_DEFAULT_REGION")


def open_url(url: str, *, environ: Mapping[str, str] | None = None) -> MinioBackend:
    """Open ``s3+minio://BUCKET[/BASE/PATH][?endpoint=HOST:PORT&secure=BOOL&region=R]``.

    ``minio://`` means the same. Parameters:

    * ``endpoint``: the store's ``host:port``, or a URL ``http://host:port``
      (whose scheme then sets ``secure``). Default: ``$AWS_ENDPOINT_URL_S3``,
      then ``$AWS_ENDPOINT_URL``; one of them is required.
    * ``secure``: use TLS. Default: true, or what the endpoint's scheme says.
    * ``region``: the bucket's region. Default: ``$AWS_REGION``, then
      ``$AWS_DEFAULT_REGION``; without one the SDK asks the store once per bucket.
    * ``max_concurrency``: SDK calls in flight and pooled connections (default 16).

    Credentials never come from the URL (URLs end up in logs). They are read
    from ``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY`` (and
    ``AWS_SESSION_TOKEN``), else ``MINIO_ACCESS_KEY`` / ``MINIO_SECRET_KEY``;
    without either pair the URL is refused rather than sent unsigned.
    ``environ`` replaces ``os.environ`` (for tests).

    The backend builds and owns its client; ``aclose()`` closes its
    connections. A ``url`` that is not a ``str`` raises
    :class:`~taquba_memo.InvalidValueTypeError` (as :func:`taquba_memo.open_store` does); every
    problem with the URL itself raises :class:`~taquba_memo.InvalidURLError`, which never
    repeats a secret.
    """
    env = os.environ if environ is None else environ
    if not isinstance(url, str):
        raise InvalidValueTypeError(f"url must be str, not {type(url).__name__}")
    parts = urlsplit(url)
    if parts.scheme.lower() not in SCHEMES:
        raise InvalidURLError(
            f"not a MinIO URL (scheme must be one of {SCHEMES}): {redact_url(url)!r}"
        )
    if parts.username is not None or parts.password is not None:
        raise InvalidURLError(
            "credentials do not belong in the URL; set AWS_ACCESS_KEY_ID and "
            "AWS_SECRET_ACCESS_KEY (or MINIO_ACCESS_KEY and MINIO_SECRET_KEY)"
        )
    nested = parameters_with_user_info(url)
    if nested:
        raise InvalidURLError(
            f"the URL's {', '.join(nested)} carries credentials (user:password@ in a URL), "
            "which no S3 SDK uses; set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY "
            "(or MINIO_ACCESS_KEY and MINIO_SECRET_KEY) instead"
        )
    shown = redact_url(url)
    if not parts.hostname or _has_port(parts.netloc):
        raise InvalidURLError(
            f"a MinIO URL is s3+minio://BUCKET/BASE/PATH?endpoint=HOST:PORT, got {shown!r}"
        )
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    params = dict(pairs)
    if len(params) != len(pairs):
        raise InvalidURLError(f"a parameter is repeated in {shown!r}")
    unknown = sorted(set(params) - _PARAMETERS)
    if unknown:
        raise InvalidURLError(
            f"unknown MinIO URL parameter(s) {unknown}; known: {sorted(_PARAMETERS)}"
        )

    endpoint = params.get("endpoint") or _first(env, _ENDPOINT_VARIABLES)
    if not endpoint:
        raise InvalidURLError(
            f"{shown!r} names no endpoint: add ?endpoint=HOST:PORT or set AWS_ENDPOINT_URL"
        )
    host, secure_from_scheme = _split_endpoint(endpoint)
    given = params.get("secure")
    secure = None if given is None else parse_flag(given, name="secure")
    if secure is None:
        secure = True if secure_from_scheme is None else secure_from_scheme
    elif secure_from_scheme is not None and secure != secure_from_scheme:
        raise InvalidURLError(f"secure={params['secure']} contradicts the endpoint {endpoint!r}")
    region = params.get("region") or _first(env, _REGION_VARIABLES)
    access_key, secret_key, session_token = _credentials(env)
    max_concurrency = _positive_int(params.get("max_concurrency"), default=16)
    try:
        return MinioBackend.connect(
            host,
            parts.netloc,
            access_key=access_key,
            secret_key=secret_key,
            session_token=session_token,
            secure=secure,
            region=region,
            base_path=unquote(parts.path),
            max_concurrency=max_concurrency,
        )
    except InvalidArgumentError as exc:  # a bad bucket name, endpoint or base path
        raise InvalidURLError(f"cannot open {shown!r}: {exc}") from None


def _has_port(netloc: str) -> bool:
    return ":" in netloc


def _first(env: Mapping[str, str], names: tuple[str, ...]) -> str | None:
    for name in names:
        value = env.get(name)
        if value:
            return value
    return None


def _split_endpoint(endpoint: str) -> tuple[str, bool | None]:
    """``host:port`` and the TLS choice an ``http(s)://`` prefix makes, if any."""
    if "@" in endpoint:  # user info: refused before any message could repeat it
        raise InvalidURLError(
            "the endpoint must not carry credentials; set AWS_ACCESS_KEY_ID and "
            "AWS_SECRET_ACCESS_KEY (or MINIO_ACCESS_KEY and MINIO_SECRET_KEY)"
        )
    if "://" not in endpoint:
        host = endpoint.rstrip("/")
        secure = None
    else:
        parts = urlsplit(endpoint)
        if parts.scheme not in ("http", "https"):
            raise InvalidURLError(f"endpoint {endpoint!r} must be http:// or https://")
        if parts.path.strip("/") or parts.query:
            raise InvalidURLError(f"endpoint {endpoint!r} must be a host and port only")
        host, secure = parts.netloc, parts.scheme == "https"
    if not host or "/" in host:
        raise InvalidURLError(f"endpoint {endpoint!r} is not HOST[:PORT]")
    return host, secure


def _positive_int(value: str | None, *, default: int) -> int:
    if value is None:
        return default
    if not value.isdigit() or int(value) < 1:
        raise InvalidURLError(f"max_concurrency must be a positive integer, not {value!r}")
    return int(value)


def _credentials(env: Mapping[str, str]) -> tuple[str, str, str | None]:
    for access_name, secret_name, token_name in _CREDENTIAL_VARIABLES:
        access_key, secret_key = env.get(access_name), env.get(secret_name)
        if access_key and secret_key:
            return access_key, secret_key, env.get(token_name) if token_name else None
        if access_key or secret_key:
            missing = secret_name if access_key else access_name
            raise InvalidURLError(
                f"{access_name} and {secret_name} go together; {missing} is unset"
            )
    raise InvalidURLError(
        "no S3 credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY "
        "(or MINIO_ACCESS_KEY and MINIO_SECRET_KEY)"
    )
