#!/usr/bin/env python3
"""A TCP proxy on 127.0.0.1 that adds latency, for benchmarks on a kernel without sch_netem.

Every connection accepted is forwarded to TARGET. Each chunk of data read from one side is
written to the other RTT/2 ms after it was read, in order per direction, so one request and its
response cost RTT ms more; a chunk waits only for its own delay, never for the chunks before it
to be written, so bandwidth is not reduced. A new connection costs one round trip more before
its first chunk reaches TARGET (as the TCP handshake would). The proxy writes the port it listens
on to PORT_FILE once it is listening, appends a line to LOG for each connection, and exits on SIGTERM, SIGINT or when its parent exits.

Usage: latency_proxy.py --target PORT --rtt MS --port-file PORT_FILE [--log LOG]
"""
import argparse
import asyncio
import ctypes
import os
import signal
import sys

CHUNK = 256 * 1024


async def pump(reader, writer, delay, opened_at):
    """Copies reader to writer, each chunk `delay` seconds after it was read, not before
    `opened_at`; closes the writer's sending side on EOF."""
    loop = asyncio.get_running_loop()
    queue = asyncio.Queue()

    async def read():
        try:
            while data := await reader.read(CHUNK):
                queue.put_nowait((max(loop.time(), opened_at) + delay, data))
        except (ConnectionError, OSError):
            pass
        queue.put_nowait((max(loop.time(), opened_at) + delay, b""))

    reading = asyncio.create_task(read())
    try:
        while True:
            due, data = await queue.get()
            if (wait := due - loop.time()) > 0:
                await asyncio.sleep(wait)
            if not data:
                if writer.can_write_eof():
                    writer.write_eof()
                return
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        reading.cancel()


async def serve(target, rtt, log):
    async def handle(client_reader, client_writer):
        if log:
            with open(log, "a") as out:
                out.write("connection\n")
        opened_at = asyncio.get_running_loop().time() + rtt
        try:
            server_reader, server_writer = await asyncio.open_connection("127.0.0.1", target)
        except OSError:
            client_writer.close()
            return
        await asyncio.gather(
            pump(client_reader, server_writer, rtt / 2, opened_at),
            pump(server_reader, client_writer, rtt / 2, 0),
        )
        for writer in (server_writer, client_writer):
            writer.close()

    return await asyncio.start_server(handle, "127.0.0.1", 0)


async def main():
    parser = argparse.ArgumentParser(description="TCP proxy on 127.0.0.1 adding latency")
    parser.add_argument("--target", type=int, required=True, help="port to forward to")
    parser.add_argument("--rtt", type=float, required=True, help="ms added per round trip")
    parser.add_argument("--port-file", required=True, help="where to write the port")
    parser.add_argument("--log", help="a file to append a line to for each connection")
    args = parser.parse_args()

    parent = os.getppid()
    loop = asyncio.get_running_loop()
    stop = loop.create_future()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, lambda: stop.done() or stop.set_result(None))
    # SIGTERM when the parent exits (Linux); the poll below covers a parent already gone.
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG

    server = await serve(args.target, args.rtt / 1000, args.log)
    port = server.sockets[0].getsockname()[1]
    with open(args.port_file + ".tmp", "w") as out:
        out.write(f"{port}\n")
    os.rename(args.port_file + ".tmp", args.port_file)
    while not stop.done() and os.getppid() == parent:
        await asyncio.wait([stop], timeout=0.5)
    server.close()


if __name__ == "__main__":
    asyncio.run(main())
    sys.exit(0)
