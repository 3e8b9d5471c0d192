"""Credentials in URLs: find them, and scrub them from every error that repeats them.

A storage URL may carry a secret by mistake (``s3://KEY:SECRET@bucket``,
``?secret_access_key=...``, an Azure SAS ``sig=``), also inside a URL given
as a parameter (``?endpoint=http://user:password@host``, percent-encoded or
not). Whatever refuses such a URL must not repeat the secret, or it lands in
every log that records the error; :func:`parameters_with_user_info` names the
parameters an adapter refuses for carrying one. :func:`redact_url` is what
messages show instead of the URL; :func:`scrub_exception` removes the secrets
from an exception and from every exception it chains, whoever wrote their
messages (an adapter, an SDK).
"""

from __future__ import annotations

import contextlib
import re
import urllib.parse

__all__ = [
    "REDACTED",
    "parameters_with_user_info",
    "redact_url",
    "scrub_exception",
    "secrets_in_url",
]

REDACTED = "***"

# Query parameters whose values are credentials (S3 keys and session tokens,
# Azure account keys and SAS signatures, bearer tokens, passwords).
_SECRET_PARAMETER = re.compile(
    r"secret|password|passwd|token|key|sig|signature|credential|auth|sas", re.IGNORECASE
)
# Shorter values are not treated as secrets: scrubbing "1" would mangle messages.
_MIN_SECRET_CHARS = 3
# The user info of a URL anywhere in a parameter's value: ``scheme://USER:PASSWORD@``.
_NESTED_USER_INFO = re.compile(r"[a-z][a-z0-9+.-]*://([^/?#\s]*)@", re.IGNORECASE)
_NESTED_URL = re.compile(r"[a-z][a-z0-9+.-]*://\S*", re.IGNORECASE)
# How many times a parameter's value is percent-decoded in search of a nested URL,
# and how deep URLs inside URLs are followed.
_DECODINGS = 3
_NESTING = 3


def parameters_with_user_info(url: str) -> list[str]:
    """The names of ``url``'s query parameters whose value holds a URL with user info.

    ``?endpoint=http://user:password@host`` names ``endpoint``, percent-encoded
    (``http%3A%2F%2Fuser%3Apassword%40host``) or not, and wherever in the value
    the URL stands. Such a value would be shown wherever the setting is.
    """
    try:
        query = urllib.parse.parse_qsl(urllib.parse.urlsplit(url).query, keep_blank_values=True)
    except ValueError:
        return []
    return sorted({name for name, value in query if any(_nested_user_info(value))})


def _decoded(value: str) -> list[str]:
    """``value`` and its successive percent-decodings, until one changes nothing."""
    forms = [value]
    for _ in range(_DECODINGS):
        decoded = urllib.parse.unquote(forms[-1])
        if decoded == forms[-1]:
            break
        forms.append(decoded)
    return forms


def _nested_user_info(value: str) -> list[str]:
    return [m.group(1) for form in _decoded(value) for m in _NESTED_USER_INFO.finditer(form)]


def _nested_secrets(value: str, depth: int) -> list[str]:
    """The user info of every URL inside ``value``, whole and split, and their own secrets."""
    found: list[str] = []
    for user_info in _nested_user_info(value):
        user, _, password = user_info.partition(":")
        found += [user_info, user, password]
    if depth < _NESTING:
        for form in _decoded(value):
            for nested in _NESTED_URL.finditer(form):
                found += secrets_in_url(nested.group(), depth + 1)
    return found


def secrets_in_url(url: str, _depth: int = 0) -> list[str]:
    """Every credential ``url`` carries, raw and percent-encoded or decoded, longest first.

    That is its user info, the values of its secret parameters, and the same
    of every URL given as a parameter's value.
    """
    try:
        parts = urllib.parse.urlsplit(url)
        found = [parts.username, parts.password]
        for name, value in urllib.parse.parse_qsl(parts.query, keep_blank_values=True):
            if _SECRET_PARAMETER.search(name):
                found.append(value)
            found += _nested_secrets(value, _depth)
    except ValueError:
        # Not even splittable: treat everything after the scheme as secret.
        found = [url.partition("://")[2]]
    forms: set[str] = set()
    for secret in found:
        if secret and len(secret) >= _MIN_SECRET_CHARS:
            forms |= _spellings(secret)
    return sorted(forms, key=len, reverse=True)


def _spellings(secret: str) -> set[str]:
    """``secret`` as a URL may spell it: raw, percent-decoded, encoded once or twice."""
    forms = {secret}
    for _ in range(2):
        forms |= {
            spelled
            for form in forms
            for spelled in (
                urllib.parse.unquote(form),
                urllib.parse.quote(form, safe=""),
                urllib.parse.quote_plus(form, safe=""),
            )
        }
    return {form for form in forms if len(form) >= _MIN_SECRET_CHARS}


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
