"""Credentials in URLs: find them, and scrub them from every error that repeats them.

A storage URL may carry a secret by mistake (``s3://KEY:SECRET@bucket``,
``?secret_access_key=...``, an Azure SAS ``sig=``). Whatever refuses such a
URL must not repeat the secret, or it lands in every log that records the
error. :func:`redact_url` is what messages show instead of the URL;
:func:`scrub_exception` removes the secrets from an exception and from every
exception it chains, whoever wrote their messages (an adapter, an SDK).
"""

from __future__ import annotations

import contextlib
import re
import urllib.parse

__all__ = ["REDACTED", "redact_url", "scrub_exception", "secrets_in_url"]

REDACTED = "***"

# Query parameters whose values are credentials (S3 keys and session tokens,
# Azure account keys and SAS signatures, bearer tokens, passwords).
_SECRET_PARAMETER = re.compile(
    r"secret|password|passwd|token|key|sig|signature|credential|auth|sas", re.IGNORECASE
)
# Shorter values are not treated as secrets: scrubbing "1" would mangle messages.
_MIN_SECRET_CHARS = 3


def secrets_in_url(url: str) -> list[str]:
    """Every credential ``url`` carries, raw and percent-decoded, longest first."""
    try:
        parts = urllib.parse.urlsplit(url)
        found = [parts.username, parts.password]
        found += [
            value
            for name, value in urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
            if _SECRET_PARAMETER.search(name)
        ]
    except ValueError:
        # Not even splittable: treat everything after the scheme as secret.
        found = [url.partition("://")[2]]
    forms: set[str] = set()
    for secret in found:
        if secret and len(secret) >= _MIN_SECRET_CHARS:
            forms |= {
                secret,
                urllib.parse.unquote(secret),
                urllib.parse.quote(secret, safe=""),
                urllib.parse.quote_plus(secret, safe=""),
            }
    return sorted(forms, key=len, reverse=True)


def redact_url(url: str) -> str:
    """``url`` as an error message may show it: every credential replaced by ``***``."""
    text = url
    for secret in secrets_in_url(url):
        text = text.replace(secret, REDACTED)
    return text


def scrub_exception(exc: BaseException, url: str) -> BaseException:
    """Remove ``url``'s credentials from ``exc`` and every exception it chains, in place."""
    secrets = secrets_in_url(url)
    if not secrets:
        return exc
    seen: set[int] = set()
    pending = [exc]
    while pending:
        current = pending.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        current.args = tuple(_scrub(arg, secrets) for arg in current.args)
        for attribute in ("message", "msg", "reason"):
            value = getattr(current, attribute, None)
            if isinstance(value, str):
                with contextlib.suppress(AttributeError):  # a read-only property
                    setattr(current, attribute, _scrub(value, secrets))
        pending += [e for e in (current.__cause__, current.__context__) if e is not None]
    return exc


def _scrub(value: object, secrets: list[str]) -> object:
    if not isinstance(value, str):
        return value
    for secret in secrets:
        value = value.replace(secret, REDACTED)
    return value
