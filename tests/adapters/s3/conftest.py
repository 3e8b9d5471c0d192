"""Tests that hold for every S3 adapter: each runs on moto and on Ceph RGW."""

from __future__ import annotations

import pytest

from ...conftest import parametrize_s3_servers


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    parametrize_s3_servers(metafunc)
