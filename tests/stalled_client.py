"""A client that stops reading: a 4 KB receive window, a request sent, the answer's first bytes read, then no more
(the router's writes to it wait as soon as the kernel's buffers fill)."""

from __future__ import annotations

import asyncio
import socket


def post(path: str, body: bytes) -> bytes:
    """An HTTP/1.1 POST of a JSON `body`."""
    return (b"POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
            % (path.encode(), len(body), body))


async def stalled(url: str, request: bytes) -> tuple[socket.socket, bytes]:
    """The connection (the caller closes it) and the answer's first bytes, after which it reads no more."""
    loop = asyncio.get_running_loop()
    host, port = url.removeprefix("http://").split(":")
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    try:
        await loop.sock_connect(sock, (host, int(port)))
        await loop.sock_sendall(sock, request)
        head = await asyncio.wait_for(loop.sock_recv(sock, 1024), 10)
    except BaseException:
        sock.close()
        raise
    return sock, head
