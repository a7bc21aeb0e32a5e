#!/usr/bin/python3
"""Holds N idle keep-alive HTTP connections to inferd open, for bench/idle_conns.sh.

    idle_client.py HOST PORT N

Each connection sends one GET /v2/health/live, reads the 200, and then stays open and idle (a
keep-alive client between requests). When every connection is open (or failed) it prints one
line `READY {"opened": n, "failed": n, "seconds": s}`; it then holds them until it reads a line
on stdin (or stdin closes), and prints `DONE {"opened": n, "closed_by_server": n}`: how many of
the held connections the server closed while they were held.
"""
import asyncio
import json
import sys
import time

REQUEST = b"GET /v2/health/live HTTP/1.1\r\nHost: bench\r\n\r\n"


async def one(host, port, sem, state):
    async with sem:  # bounded connection setup, so the listen backlog is not overrun
        try:
            reader, writer = await asyncio.open_connection(host, port)
            writer.write(REQUEST)
            await writer.drain()
            head = await reader.readuntil(b"\r\n\r\n")
            if not head.startswith(b"HTTP/1.1 200"):
                raise ConnectionError(head[:40])
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            await reader.readexactly(length)
        except (OSError, asyncio.IncompleteReadError, ConnectionError, ValueError) as exc:
            state["failed"] += 1
            state.setdefault("first_error", repr(exc))
            return
    state["opened"] += 1
    state["open_writers"].append(writer)
    # Idle: the only thing that can arrive is the server closing the connection.
    try:
        data = await reader.read(1)
    except OSError:
        data = b""
    if not state["stopping"]:
        state["closed_by_server"] += 1 if not data else 0


async def main():
    host, port, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    state = {"opened": 0, "failed": 0, "closed_by_server": 0, "stopping": False, "open_writers": []}
    sem = asyncio.Semaphore(256)
    t0 = time.monotonic()
    tasks = [asyncio.create_task(one(host, port, sem, state)) for _ in range(n)]
    while state["opened"] + state["failed"] < n:
        await asyncio.sleep(0.05)
    ready = {"opened": state["opened"], "failed": state["failed"], "seconds": round(time.monotonic() - t0, 2)}
    if "first_error" in state:
        ready["first_error"] = state["first_error"]
    print("READY " + json.dumps(ready), flush=True)
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, sys.stdin.readline)
    closed = state["closed_by_server"]
    state["stopping"] = True
    for w in state["open_writers"]:
        w.close()
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    print("DONE " + json.dumps({"opened": state["opened"], "closed_by_server": closed}), flush=True)


if __name__ == "__main__":
    asyncio.run(main())
