"""open_store(url): built-in schemes, adapters found by entry point, and the resolution rule."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest
from taquba_memo import (
    AdapterNotInstalledError,
    InMemoryBackend,
    InvalidPrefixError,
    InvalidURLError,
    InvalidValueTypeError,
    LocalFileBackend,
    MemoError,
    MemoStore,
    open_backend,
    open_store,
)
from taquba_memo._urls import ENTRY_POINT_GROUP, resolve_scheme

from ._installed import requires


def install_fake_adapter(
    site: Path, distribution: str, names: list[str], body: str | None = None
) -> str:
    """Write an importable package with ``taquba_memo.backends`` entry points under ``site``.

    It is a real distribution as far as ``importlib.metadata`` is concerned:
    a ``.dist-info`` directory on ``sys.path``.
    """
    module = distribution.replace("-", "_")
    (site / f"{module}.py").write_text(
        body
        or textwrap.dedent(
            """
            from taquba_memo import InMemoryBackend

            opened = []

            def open_url(url):
                opened.append(url)
                return InMemoryBackend()
            """
        )
    )
    dist_info = site / f"{module}-1.0.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {distribution}\nVersion: 1.0\n"
    )
    entries = "".join(f"{name} = {module}:open_url\n" for name in names)
    (dist_info / "entry_points.txt").write_text(f"[{ENTRY_POINT_GROUP}]\n{entries}")
    return module


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    directory = tmp_path / "site"
    directory.mkdir()
    monkeypatch.syspath_prepend(str(directory))
    return directory


class TestBuiltInSchemes:
    def test_memory_opens_a_fresh_in_memory_store_each_time(self) -> None:
        first, second = open_backend("memory://"), open_backend("memory://")
        assert isinstance(first, InMemoryBackend)
        assert first is not second

    @pytest.mark.parametrize("url", ["memory://name", "memory:///path", "memory://?x=1"])
    def test_memory_takes_nothing_else(self, url: str) -> None:
        with pytest.raises(InvalidURLError):
            open_backend(url)

    def test_file_opens_a_local_directory(self, tmp_path: Path) -> None:
        backend = open_backend(tmp_path.as_uri())
        assert isinstance(backend, LocalFileBackend)
        assert backend.root == tmp_path

    def test_file_paths_are_percent_decoded_and_localhost_is_accepted(self, tmp_path: Path) -> None:
        backend = open_backend(f"file://localhost{tmp_path}/with%20space")
        assert isinstance(backend, LocalFileBackend)
        assert backend.root == tmp_path / "with space"

    @pytest.mark.parametrize(
        "url",
        ["file://server/share", "file:relative/path", "file:///tmp/x?durable=no", "file://"],
    )
    def test_file_urls_must_name_an_absolute_local_path(self, url: str) -> None:
        with pytest.raises(InvalidURLError):
            open_backend(url)

    async def test_open_store_applies_prefix_and_options(self, tmp_path: Path) -> None:
        async with open_store(tmp_path.as_uri(), prefix="/agents//", max_value_bytes=10) as store:
            assert isinstance(store, MemoStore)
            assert store.prefix == "agents"
            await store.new_memo("run", 0).put("k", b"v")
        assert (tmp_path / "agents" / "memos" / "run" / "0").is_dir()


class TestBadUrls:
    @pytest.mark.parametrize("url", ["", "just-a-path", "/tmp/x", "bucket/base"])
    def test_a_url_without_a_scheme_is_refused(self, url: str) -> None:
        with pytest.raises(InvalidURLError, match="scheme"):
            open_backend(url)

    def test_bad_url_errors_are_value_errors_and_memo_errors(self) -> None:
        with pytest.raises(ValueError, match="no scheme") as caught:
            open_backend("nope")
        assert isinstance(caught.value, MemoError)

    def test_an_unknown_scheme_lists_the_known_ones(self) -> None:
        with pytest.raises(InvalidURLError, match=r"unknown URL scheme 'ftp'.*file.*memory"):
            open_backend("ftp://host/path")

    def test_a_non_str_url_is_a_type_error(self) -> None:
        with pytest.raises(InvalidValueTypeError):
            open_backend(Path("/tmp"))  # type: ignore[arg-type]

    def test_bad_store_arguments_fail_before_the_adapter_opens_anything(self, site: Path) -> None:
        module = install_fake_adapter(site, "taquba-memo-counting", ["counting"])
        with pytest.raises(InvalidPrefixError):
            open_store("counting://bucket", prefix="a/../b")
        assert sys.modules.get(module) is None or not sys.modules[module].opened


class TestInstalledAdapters:
    """The adapters of this workspace register their schemes; resolution is deterministic."""

    @pytest.mark.parametrize(
        ("scheme", "distribution"),
        [
            pytest.param(scheme, distribution, marks=requires(distribution))
            for scheme, distribution in [
                ("s3", "taquba-memo-obstore"),
                ("s3+obstore", "taquba-memo-obstore"),
                ("s3+minio", "taquba-memo-minio"),
                ("minio", "taquba-memo-minio"),
                ("gs", "taquba-memo-obstore"),  # also provided by taquba-memo-gcs
                ("gs+gcs", "taquba-memo-gcs"),
                ("az", "taquba-memo-obstore"),  # also provided by taquba-memo-azure
                ("az+azure", "taquba-memo-azure"),
            ]
        ],
    )
    def test_scheme_resolution(self, scheme: str, distribution: str) -> None:
        assert resolve_scheme(scheme).distribution == distribution

    @requires("taquba-memo-obstore")
    async def test_an_s3_url_opens_the_obstore_backend_without_any_request(self) -> None:
        backend = open_backend(
            "s3://bucket/base?endpoint=http://127.0.0.1:9&region=us-east-1&allow_http=true"
        )
        assert type(backend).__module__.startswith("taquba_memo_obstore")
        await backend.aclose()

    @requires("taquba-memo-obstore")
    def test_an_adapter_refusing_the_url_is_a_bad_url(self) -> None:
        with pytest.raises(InvalidURLError, match="taquba-memo-obstore refused") as caught:
            open_backend("s3:///no-bucket")
        assert caught.value.__cause__ is not None


class TestResolutionRule:
    def test_an_explicit_adapter_wins(self, site: Path) -> None:
        install_fake_adapter(site, "taquba-memo-one", ["fake", "fake+one"])
        install_fake_adapter(site, "taquba-memo-two", ["fake", "fake+two"])
        assert resolve_scheme("fake+two").distribution == "taquba-memo-two"
        assert isinstance(open_backend("fake+one://bucket/base"), InMemoryBackend)

    def test_the_adapter_receives_the_url_as_given(self, site: Path) -> None:
        module = install_fake_adapter(site, "taquba-memo-echo", ["echo", "echo+echo"])
        open_backend("echo+echo://bucket/base/path?region=x")
        assert sys.modules[module].opened == ["echo+echo://bucket/base/path?region=x"]

    def test_a_single_provider_of_a_plain_scheme_is_used(self, site: Path) -> None:
        install_fake_adapter(site, "taquba-memo-solo", ["solo", "solo+solo"])
        assert resolve_scheme("solo").distribution == "taquba-memo-solo"

    def test_several_providers_without_obstore_are_an_error_listing_the_choices(
        self, site: Path
    ) -> None:
        install_fake_adapter(site, "taquba-memo-one", ["fake", "fake+one"])
        install_fake_adapter(site, "taquba-memo-two", ["fake", "fake+two"])
        with pytest.raises(InvalidURLError) as caught:
            open_backend("fake://bucket")
        message = str(caught.value)
        assert "taquba-memo-one, taquba-memo-two" in message
        assert "fake+one://, fake+two://" in message

    def test_a_missing_explicit_adapter_names_the_package_to_install(self) -> None:
        with pytest.raises(AdapterNotInstalledError, match="pip install taquba-memo-nothere") as c:
            open_backend("s3+nothere://bucket")
        assert c.value.packages == ("taquba-memo-nothere",)
        assert isinstance(c.value, ValueError)

    def test_an_adapter_that_fails_to_import_says_to_reinstall(self, site: Path) -> None:
        install_fake_adapter(site, "taquba-memo-broken", ["broken"], "import no_such_sdk\n")
        with pytest.raises(AdapterNotInstalledError, match=r"failed to import.*reinstall"):
            open_backend("broken://bucket")

    def test_an_adapter_returning_something_else_is_a_type_error(self, site: Path) -> None:
        install_fake_adapter(
            site, "taquba-memo-wrong", ["wrong"], "def open_url(url):\n    return object()\n"
        )
        with pytest.raises(InvalidValueTypeError, match="not a MemoBackend"):
            open_backend("wrong://bucket")
