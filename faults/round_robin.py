#!/usr/bin/env python3
"""A small round-robin TCP load balancer for the fault scripts.

    faults/round_robin.py LISTEN_PORT BACKEND_PORT [BACKEND_PORT...]

Listens on 127.0.0.1:LISTEN_PORT and hands each incoming connection to the next backend on
127.0.0.1 in turn, as a load balancer in front of several `enlace serve` processes does. When a
backend refuses the connection (its process is gone), the connection goes to the next one, so
clients only see the failures of requests a backend was in the middle of. Bytes are relayed as
they are, so one client connection stays with one backend: a client that wants each request
balanced opens a connection per request.

On SIGTERM or SIGINT it stops and prints one line of counts to standard output:
"backend PORT connected N refused M" for each backend, then "unserved N" (connections no
backend took).
"""

import asyncio
import collections
import itertools
import signal
import sys

CHUNK = 64 * 1024


async def relay(reader, writer):
    """Copies one direction until its end, then passes the end on (a half close)."""
    try:
        while data := await reader.read(CHUNK):
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
    except OSError:
        pass


async def main():
    listen_port = int(sys.argv[1])
    backends = [int(p) for p in sys.argv[2:]]
    turn = itertools.cycle(range(len(backends)))
    connected, refused = collections.Counter(), collections.Counter()
    unserved = 0

    async def handle(client_reader, client_writer):
        nonlocal unserved
        # The next backend in turn; the ones after it if it refuses.
        first = next(turn)
        for port in backends[first:] + backends[:first]:
            try:
                backend_reader, backend_writer = await asyncio.open_connection("127.0.0.1", port)
                break
            except OSError:
                refused[port] += 1
        else:
            unserved += 1
            client_writer.close()
            return
        connected[port] += 1
        await asyncio.gather(
            relay(client_reader, backend_writer), relay(backend_reader, client_writer)
        )
        for writer in (backend_writer, client_writer):
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", listen_port, backlog=1024)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(sig, stop.set)
    async with server:
        await stop.wait()
    for port in backends:
        print(f"backend {port} connected {connected[port]} refused {refused[port]}")
    print(f"unserved {unserved}", flush=True)


if __name__ == "__main__":
    asyncio.run(main())
