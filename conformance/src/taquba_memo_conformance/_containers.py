"""Running an emulator image through testcontainers, after a quick check that Docker answers."""

from __future__ import annotations

import contextlib
import os
import socket
import time
import urllib.parse
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal

from taquba_memo_conformance._processes import (
    ServerStartError,
    StartedServer,
    free_port,
    register_cleanup,
    tail,
    wait_until_http,
)

__all__ = ["docker_answers", "docker_network", "start_container"]

NETWORK_ENV = "TAQUBA_MEMO_DOCKER_NETWORK"
DEFAULT_DOCKER_SOCKET = "unix:///var/run/docker.sock"


def docker_answers(timeout: float = 1.0) -> bool:
    """True when the Docker engine at ``$DOCKER_HOST`` (or the default socket) answers a ping.

    One HTTP request with a short timeout, so a missing or wedged engine costs at
    most about two ``timeout`` s and never hangs. Any HTTP reply counts (a TLS port
    answers plain HTTP with a 400, and that is still an engine).
    """
    docker_host = os.environ.get("DOCKER_HOST") or DEFAULT_DOCKER_SOCKET
    parts = urllib.parse.urlsplit(docker_host)
    try:
        if parts.scheme == "unix":
            if not hasattr(socket, "AF_UNIX"):
                return False
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            address: Any = parts.path
        elif parts.scheme in ("tcp", "http", "https"):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            address = (parts.hostname or "127.0.0.1", parts.port or 2375)
        else:
            # ssh:// or a named pipe: nothing cheap to probe, so let testcontainers try.
            return True
        with sock:
            sock.settimeout(timeout)
            sock.connect(address)
            sock.sendall(b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n")
            return sock.recv(16).startswith(b"HTTP/")
    except OSError:
        return False


def docker_network() -> Literal["host", "bridge"]:
    """``$TAQUBA_MEMO_DOCKER_NETWORK`` if set, else bridge when the engine has that network.

    An engine started with ``--bridge=none`` (as on machines without iptables)
    has no bridge network; there containers share the host's network and the
    server binds 127.0.0.1 itself.
    """
    chosen = os.environ.get(NETWORK_ENV)
    if chosen == "host":
        return "host"
    if chosen == "bridge":
        return "bridge"
    if chosen:
        raise ServerStartError(f"{NETWORK_ENV} must be 'host' or 'bridge', not {chosen!r}")
    import docker

    client = docker.from_env(timeout=10)
    try:
        return "bridge" if client.networks.list(names=["bridge"]) else "host"
    finally:
        client.close()


def start_container(
    *,
    image: str,
    entrypoint: Sequence[str] | None,
    container_port: int,
    command: Callable[[str, int, int], list[str]],
    probe_path: str,
    timeout: float,
    environment: Mapping[str, str] | None = None,
) -> StartedServer:
    """Run ``image`` so that its server answers on 127.0.0.1 only, and wait for it.

    ``command(listen_host, listen_port, host_port)`` builds the server's arguments:
    with host networking the server itself binds 127.0.0.1 on a free port; with a
    bridge it binds 0.0.0.0 inside the container and the port is published on the
    host's 127.0.0.1 alone.
    """
    try:
        from testcontainers.core.container import DockerContainer
    except ImportError as error:
        raise ServerStartError(
            "testcontainers is not installed (install `taquba-memo-conformance[servers]`)"
        ) from error

    try:
        network = docker_network()
    except ServerStartError:
        raise
    except Exception as error:
        raise ServerStartError(f"the Docker engine did not list its networks: {error}") from error
    host_port = free_port()
    container = DockerContainer(image)
    for name, value in (environment or {}).items():
        container.with_env(name, value)
    run_options: dict[str, Any] = {}
    if entrypoint is not None:
        run_options["entrypoint"] = list(entrypoint)
    if network == "host":
        run_options["network_mode"] = "host"
        container.with_command(command("127.0.0.1", host_port, host_port))
    else:
        published: Any = ("127.0.0.1", host_port)  # docker-py accepts (ip, port)
        container.with_bind_ports(container_port, published)
        container.with_command(command("0.0.0.0", container_port, host_port))
    container.with_kwargs(**run_options)

    stopped = False

    def stop() -> None:
        nonlocal stopped
        if not stopped:
            stopped = True
            container.stop()

    started = time.monotonic()
    try:
        container.start()
    except Exception as error:
        with contextlib.suppress(Exception):  # the start error is the one worth reporting
            stop()
        raise ServerStartError(
            f"could not start a container from {image}: {type(error).__name__}: {error}"
        ) from error
    register_cleanup(stop)

    def exited() -> bool:
        wrapped = container.get_wrapped_container()
        wrapped.reload()
        return wrapped.status in ("exited", "dead")

    def describe() -> str:
        try:
            stdout, stderr = container.get_logs()
            logs = tail((stdout + stderr).decode(errors="replace"))
        except Exception as error:
            logs = f"(logs unavailable: {error})"
        return f"\ncontainer from {image} ({network} network) logged:\n{logs}"

    try:
        wait_until_http(
            f"http://127.0.0.1:{host_port}{probe_path}",
            timeout=timeout,
            is_dead=exited,
            describe=describe,
        )
    except BaseException:
        stop()
        raise
    return StartedServer(host_port=host_port, startup_seconds=time.monotonic() - started, stop=stop)
