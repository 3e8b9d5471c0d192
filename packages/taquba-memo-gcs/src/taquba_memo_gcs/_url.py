"""open_url: a GCSBackend from a ``gs://bucket/base/path?endpoint=...`` URL.

Registered as the ``gs`` and ``gs+gcs`` entry points of the
``taquba_memo.backends`` group, so a URL opener can find this adapter by scheme.
"""

from __future__ import annotations

from urllib.parse import parse_qsl, unquote, urlsplit

from google.auth.credentials import AnonymousCredentials, Credentials
from taquba_memo.adapter_kit import parameters_with_user_info, parse_flag, redact_url
from taquba_memo.errors import InvalidArgumentError, InvalidURLError, InvalidValueTypeError

from taquba_memo_gcs._backend import GCSBackend

__all__ = ["SCHEMES", "open_url"]

SCHEMES = ("gs", "gs+gcs")


def open_url(url: str) -> GCSBackend:
    """Open ``gs://BUCKET[/BASE/PATH][?endpoint=URL&project=ID&anonymous=BOOL]``.

    * ``endpoint``: the API address, for example an emulator's
      ``http://127.0.0.1:4443``. Default: Google Cloud Storage.
    * ``project``: the project id. Default: the one the credentials name.
    * ``anonymous``: send no credentials. Default: true when ``endpoint`` is
      given (as for an emulator), false otherwise. Without it the SDK uses
      ``google.auth.default()``.

    The base path is percent-decoded (``gs://b/team%20a`` is ``team a``), as
    the other adapters' URLs are. The backend builds and owns its client;
    ``aclose()`` closes it. For any
    other authentication, build a ``storage.Client`` and pass it to
    :class:`GCSBackend`.
    """
    if not isinstance(url, str):
        raise InvalidValueTypeError(f"url must be str, not {type(url).__name__}")
    parts = urlsplit(url)
    if parts.scheme not in SCHEMES:
        raise InvalidArgumentError(
            f"not a GCS URL (scheme must be one of {SCHEMES}): {redact_url(url)!r}"
        )
    if not parts.hostname or parts.username or parts.password or parts.port:
        raise InvalidArgumentError(f"a GCS URL is gs://BUCKET/BASE/PATH, got {redact_url(url)!r}")
    nested = parameters_with_user_info(url)
    if nested:
        raise InvalidURLError(
            f"the URL's {', '.join(nested)} carries credentials (user:password@ in a URL), "
            "which the GCS client never sends; use application-default credentials "
            "(GOOGLE_APPLICATION_CREDENTIALS), or pass a storage.Client to GCSBackend"
        )
    params = dict(parse_qsl(parts.query, keep_blank_values=True))
    unknown = sorted(set(params) - {"endpoint", "project", "anonymous"})
    if unknown:
        raise InvalidArgumentError(f"unknown GCS URL parameter(s) {unknown} in {redact_url(url)!r}")
    endpoint = params.get("endpoint") or None
    given = params.get("anonymous")
    anonymous = endpoint is not None if given is None else parse_flag(given, name="anonymous")
    credentials: Credentials | None = None
    if anonymous:
        credentials = AnonymousCredentials()  # type: ignore[no-untyped-call]
    return GCSBackend.connect(
        parts.netloc,
        base_path=unquote(parts.path),
        project=params.get("project") or None,
        credentials=credentials,
        endpoint=endpoint,
    )
