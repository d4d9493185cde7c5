"""Loaded by the interpreter at start (via PYTHONPATH): refuses every outbound connection and
name lookup that does not stay on loopback, and notes each attempt in PGW_NETGUARD_LOG."""

import ipaddress
import os
import socket
from typing import Any

_LOG = os.environ.get("PGW_NETGUARD_LOG")
_connect = socket.socket.connect
_connect_ex = socket.socket.connect_ex
_getaddrinfo = socket.getaddrinfo


def _note(what: str) -> None:
    if _LOG:
        with open(_LOG, "a") as log:
            log.write(what + "\n")


def _local(address: object) -> bool:
    if isinstance(address, str):  # AF_UNIX path
        return True
    host = address[0] if isinstance(address, tuple) else address
    try:
        return ipaddress.ip_address(host).is_loopback  # type: ignore[arg-type]
    except ValueError:
        return host == "localhost"


def _guarded_connect(self: socket.socket, address: Any) -> None:
    if self.family in (socket.AF_INET, socket.AF_INET6) and not _local(address):
        _note(f"connect {address!r}")
        raise ConnectionRefusedError(f"outbound connection refused by test guard: {address!r}")
    return _connect(self, address)


def _guarded_connect_ex(self: socket.socket, address: Any) -> int:
    if self.family in (socket.AF_INET, socket.AF_INET6) and not _local(address):
        _note(f"connect {address!r}")
        return 111
    return _connect_ex(self, address)


def _guarded_getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
    if host is not None and not _local(host.decode() if isinstance(host, bytes) else host):
        _note(f"resolve {host!r}")
        raise socket.gaierror(socket.EAI_NONAME, "name lookup refused by test guard")
    return _getaddrinfo(host, *args, **kwargs)


socket.socket.connect = _guarded_connect  # type: ignore[method-assign,assignment]
socket.socket.connect_ex = _guarded_connect_ex  # type: ignore[method-assign,assignment]
socket.getaddrinfo = _guarded_getaddrinfo
