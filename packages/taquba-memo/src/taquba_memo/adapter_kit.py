"""Building blocks for adapter packages, so each adapter stays thin: one import, six concerns.

Input checks before any I/O (:func:`check_key`, :func:`check_value`,
:func:`object_name`, :func:`normalize_base_path`, :func:`is_staging_name`,
:func:`check_endpoint_url`, :func:`check_flag` for ``put``'s ``if_absent``,
:func:`parse_flag` for a URL's true/false parameters, :func:`parameters_with_user_info`
and :func:`redact_url` for the credentials a URL must not carry or show); base classes
for object names below a base path (:class:`UnderBasePath`), for adapters on object stores
(:class:`ObjectStoreBackendBase`: names, capabilities, ``async with``) and on blocking SDKs
(:class:`BlockingBackendBase`); bounded reads for ``get_at_most``
(:func:`check_max_bytes`, :func:`entry_too_large`, :class:`BoundedBuffer`,
:func:`read_at_most`); bounded concurrency (:func:`chunked`,
:func:`delete_each`, :class:`TaskWindow`, :class:`BlockingRunner`); the one
HTTP status table (:func:`error_for_status`); fork helpers; and
:class:`ForwardingBackend`, the base of a wrapper around another backend. Each concern
lives in a private module of its own; this module is the public face.

Adapters for synchronous SDKs (google-cloud-storage, minio) derive from
:class:`BlockingBackendBase`, which runs SDK calls on a bounded thread pool
with :class:`BlockingRunner`; backends without a batch
delete API use :func:`delete_each`; every adapter maps HTTP statuses with
:func:`error_for_status` inside its single error-mapping function.

Optional members (``list_with_metadata``, ``get_at_most``, ``after_fork``,
``list_after``) follow one rule: each is a Protocol in
:data:`taquba_memo.backend.OPTIONAL_MEMBERS`, and an adapter offers one by
having the method, never by a flag in ``Capabilities``. The bounded-read
helpers above build ``get_at_most``; an ``after_fork()`` hands what a forked
child inherited to :func:`keep_inherited` and :func:`detach_inherited_loop`
instead of closing it. A ``list_after`` checks its start key with
:func:`check_start_after` and keeps the keys :func:`is_after` accepts (a
store's start offset may be inclusive, or only a lower bound).
"""

from __future__ import annotations

from taquba_memo._backends.forwarding import ForwardingBackend
from taquba_memo._blocking import BlockingBackendBase, ObjectStoreBackendBase
from taquba_memo._bounded_read import (
    READ_CHUNK_BYTES,
    BoundedBuffer,
    check_max_bytes,
    entry_too_large,
    read_at_most,
)
from taquba_memo._checks import (
    FALSE_WORDS,
    TRUE_WORDS,
    UnderBasePath,
    check_endpoint_url,
    check_flag,
    check_key,
    check_value,
    is_staging_name,
    normalize_base_path,
    object_name,
    parse_flag,
)
from taquba_memo._concurrency import (
    DEFAULT_CONCURRENCY,
    BlockingRunner,
    TaskWindow,
    chunked,
    delete_each,
)
from taquba_memo._fork import detach_inherited_loop, keep_inherited
from taquba_memo._http_status import error_for_status
from taquba_memo._list_after import check_start_after, is_after
from taquba_memo._redact import parameters_with_user_info, redact_url

__all__ = [
    "DEFAULT_CONCURRENCY",
    "FALSE_WORDS",
    "READ_CHUNK_BYTES",
    "TRUE_WORDS",
    "BlockingBackendBase",
    "ForwardingBackend",
    "BlockingRunner",
    "BoundedBuffer",
    "ObjectStoreBackendBase",
    "TaskWindow",
    "UnderBasePath",
    "check_endpoint_url",
    "check_flag",
    "check_key",
    "check_max_bytes",
    "check_start_after",
    "check_value",
    "chunked",
    "delete_each",
    "detach_inherited_loop",
    "entry_too_large",
    "error_for_status",
    "is_after",
    "is_staging_name",
    "keep_inherited",
    "normalize_base_path",
    "object_name",
    "parameters_with_user_info",
    "parse_flag",
    "read_at_most",
    "redact_url",
]
