"""Sending one webhook request: to an address that was checked, within one deadline, following
no redirect. It runs outside every database transaction: a receiver that takes its time holds
no lock and no connection of the database, only this attempt, which the deadline ends."""

from __future__ import annotations

import http.client
import socket
import ssl
import threading
import time

from app.webhooks import targets
from app.webhooks.targets import AllowList, IPAddress, Target


class DeliveryFailed(RuntimeError):
    """The attempt did not end with a 2xx answer; the job retries it with back-off."""


def post(url: str, *, body: bytes, headers: dict[str, str], allow: AllowList,
         require_https: bool, timeout: float) -> int:
    """POST `body` to `url`; returns the 2xx status, raises targets.Refused or
    DeliveryFailed."""
    # checked again here: the rules may have tightened since the URL was registered
    target = targets.parse(url, require_https=require_https)
    deadline = time.monotonic() + timeout
    addresses = targets.resolve(target, allow=allow, timeout=timeout)
    status = _post_once(target, addresses, body=body, headers=headers, deadline=deadline,
                        timeout=timeout)
    if 300 <= status < 400:
        raise DeliveryFailed(f"the receiver answered {status}: redirects are not followed")
    if not 200 <= status < 300:
        raise DeliveryFailed(f"the receiver answered {status}")
    return status


def _connect(target: Target, addresses: list[IPAddress], deadline: float) -> socket.socket:
    """A connection to the first of the checked addresses that answers."""
    error: OSError | None = None
    for address in addresses:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        try:
            return socket.create_connection((str(address), target.port), timeout=remaining)
        except OSError as exc:
            error = exc
    raise DeliveryFailed(f"could not connect to {target.host}: "
                         f"{type(error).__name__ if error else 'timed out'}")


def _post_once(target: Target, addresses: list[IPAddress], *, body: bytes,
               headers: dict[str, str], deadline: float, timeout: float) -> int:
    sock = _connect(target, addresses, deadline)
    # Socket timeouts bound each read, not the whole exchange (a receiver could send a byte
    # every few seconds): at the deadline the socket is shut down under the reader.
    expired = threading.Event()
    live = [sock]  # wrapping for TLS detaches the plain socket: shut down whichever is in use

    def expire() -> None:
        expired.set()
        try:
            live[-1].shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    watchdog = threading.Timer(max(0.0, deadline - time.monotonic()), expire)
    watchdog.daemon = True
    watchdog.start()
    connection: http.client.HTTPConnection | None = None
    try:
        if target.scheme == "https":
            connection = http.client.HTTPSConnection(target.host, target.port, timeout=timeout)
            connection.sock = ssl.create_default_context().wrap_socket(
                sock, server_hostname=target.host)
            live.append(connection.sock)
        else:
            connection = http.client.HTTPConnection(target.host, target.port, timeout=timeout)
            connection.sock = sock
        connection.request("POST", target.path, body=body, headers=headers)
        return connection.getresponse().status
    except (OSError, http.client.HTTPException) as exc:
        if expired.is_set():
            raise DeliveryFailed(f"the receiver did not answer within {timeout:g} s") from None
        raise DeliveryFailed(f"delivery failed: {type(exc).__name__}") from None
    finally:
        watchdog.cancel()
        if connection is not None:
            connection.close()
        sock.close()
