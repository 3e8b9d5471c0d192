"""Which operation a storage request is, from its method and target, for S3, GCS and Azure Blob."""

from __future__ import annotations

import urllib.parse
from collections.abc import Callable

__all__ = ["Classifier", "classify_request"]

#: Maps ``(method, target)`` to a kind of request.
Classifier = Callable[[str, str], str]

# GCS JSON API: ``/storage/v1/b/<bucket>/o`` lists, ``.../o/<object>`` is one object.
_GCS_OBJECTS = "/storage/v1/b/"


def classify_request(method: str, target: str) -> str:
    """The kind of a storage request, from its method and request target.

    Understands the S3 REST API (path-style), the GCS JSON and XML APIs and
    the Azure Blob REST API:

    * ``batch``: S3 ``POST ?delete`` (DeleteObjects), Azure ``POST ?comp=batch``
      (Blob Batch), GCS ``POST /batch/storage/v1``;
    * ``list``: S3/GCS-XML ``GET ?list-type=2`` or a bucket-level ``GET``,
      Azure ``GET ?comp=list``, GCS JSON ``GET /storage/v1/b/<bucket>/o``;
    * ``get``: reading an object's bytes (``GET`` of an object, GCS ``alt=media``);
    * ``head``: reading metadata only (``HEAD``, a GCS JSON object ``GET``
      without ``alt=media``);
    * ``put``: ``PUT`` of an object or block, GCS ``POST /upload/...``;
    * ``delete``: ``DELETE``;
    * ``other``: anything else (S3 ``?location``, GCS bucket metadata, bucket creation ...).
    """
    path, _, query = target.partition("?")
    params = urllib.parse.parse_qs(query, keep_blank_values=True)
    comp = params.get("comp", [""])[0]
    if method == "POST":
        if "delete" in params or comp == "batch" or path.startswith("/batch/"):
            return "batch"
        if path.startswith("/upload/"):
            return "put"
        return "other"
    if method == "GET":
        if "location" in params:
            return "other"
        if "list-type" in params or comp == "list":
            return "list"
        if _GCS_OBJECTS in path:
            after_bucket = path.split(_GCS_OBJECTS, 1)[1].split("/", 2)
            if len(after_bucket) == 1:
                return "other"  # bucket metadata
            if len(after_bucket) == 2 and after_bucket[1] == "o":
                return "list"
            if len(after_bucket) == 3 and params.get("alt") != ["media"]:
                return "head"
            return "get"
        if len([segment for segment in path.split("/") if segment]) <= 1:
            return "list"  # path-style bucket GET (ListObjects v1)
        return "get"
    if method == "HEAD":
        return "head"
    if method == "PUT":
        return "put"
    if method == "DELETE":
        return "delete"
    return "other"
