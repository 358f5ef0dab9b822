"""Loopback addresses for the distributed scenarios: free ports from the kernel, a port refused before anything
starts when it is taken, and a dispatcher address checked for reachability with a deadline (TensorFlow's own
client would retry for an hour)."""

from __future__ import annotations

import socket

from .children import ClusterError


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("localhost", 0))
        return int(s.getsockname()[1])


def check_port_free(port: int, what: str) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("localhost", port))
        except OSError as exc:
            raise ClusterError(f"{what}: port {port} is already in use ({exc.strerror}); choose another or leave it "
                               "out for a free one") from None


def parse_address(address: str) -> tuple[str, str, int]:
    """grpc://HOST:PORT -> (protocol, host, port); one line if it is not such an address."""
    proto, sep, rest = address.partition("://")
    if not sep:
        proto, rest = "grpc", address
    host, _, port = rest.rpartition(":")
    if proto != "grpc" or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ClusterError(f"tf.data service address {address!r} is not grpc://HOST:PORT")
    return proto, host, int(port)


def check_reachable(address: str, timeout_s: float = 5.0) -> None:
    """A TCP connection to the dispatcher within `timeout_s`, else one line (TensorFlow's own client would retry
    for an hour)."""
    _, host, port = parse_address(address)
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            pass
    except OSError as exc:
        why = "timed out" if isinstance(exc, TimeoutError | socket.timeout) else (exc.strerror or str(exc))
        raise ClusterError(f"tf.data service dispatcher {address} is not reachable within {timeout_s:.0f} s "
                           f"({why})") from None
