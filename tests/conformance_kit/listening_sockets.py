"""Listening TCP sockets read from Linux /proc, to prove that servers bind loopback only."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

LOOPBACK_V4 = "0100007F"  # 127.0.0.1 as /proc/net/tcp writes it


def listening_sockets() -> Iterator[tuple[str, int, str]]:
    """``(address, port, inode)`` of each listening TCP socket, from /proc/net/tcp{,6}."""
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(FileNotFoundError):
            for line in Path(table).read_text().splitlines()[1:]:
                fields = line.split()
                address, port_hex = fields[1].rsplit(":", 1)
                if fields[3] == "0A":  # 0A = LISTEN
                    yield address, int(port_hex, 16), fields[9]


def listening_addresses(port: int) -> set[str]:
    """Local addresses with a TCP socket listening on ``port``."""
    return {address for address, listening_port, _ in listening_sockets() if listening_port == port}


def listening_addresses_of(pids: set[int]) -> set[str]:
    """The local addresses of the TCP sockets these processes listen on."""
    inodes: set[str] = set()
    for pid in pids:
        fd_dir = Path(f"/proc/{pid}/fd")
        for fd in fd_dir.iterdir() if fd_dir.exists() else []:
            try:
                target = os.readlink(fd)
            except OSError:
                continue
            if target.startswith("socket:["):
                inodes.add(target[len("socket:[") : -1])
    return {address for address, _, inode in listening_sockets() if inode in inodes}
