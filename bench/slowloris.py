#!/usr/bin/python3
"""Slowloris against inferd on loopback: N connections each send a request line, then one
header line every --interval seconds, never finishing the head. Meanwhile a normal client
asks GET /v2/health/live on a fresh connection every 0.5 s. Prints, every 5 s, how many
slow connections the server still holds and how the normal client fared; bounded by
--duration (at most 60 s) and --connections (at most 5,000).

  /usr/bin/python3 bench/slowloris.py --inferd build/inferd [--connections 2000]
      [--interval 10] [--duration 45] [-- extra inferd serve flags]

It starts the server itself (example models, a free port, the descriptor limit raised for
both sides) and stops it at the end."""

import argparse
import asyncio
import os
import resource
import socket
import subprocess
import sys
import time

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))


def raise_nofile():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Stats:
    def __init__(self):
        self.open = 0            # slow connections the server still holds
        self.connected = 0
        self.failed_connect = 0
        self.answered = {}       # status line the server sent before closing -> count
        self.closed_at = []      # seconds after start when the server closed one
        self.normal_ok = 0
        self.normal_fail = 0
        self.normal_lat = []


async def slow_client(i, port, interval, stop_at, st, t0):
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        st.failed_connect += 1
        return
    st.connected += 1
    st.open += 1
    try:
        writer.write(b"GET /v2/health/live HTTP/1.1\r\nHost: x\r\n")
        await writer.drain()
        n = 0
        while time.monotonic() < stop_at:
            try:
                data = await asyncio.wait_for(reader.read(4096), timeout=min(interval, max(0.01, stop_at - time.monotonic())))
            except asyncio.TimeoutError:
                writer.write(f"X-Slow-{n}: {i}\r\n".encode())
                n += 1
                await writer.drain()
                continue
            # the server answered (408) or closed: it let the connection go
            if data:
                line = data.split(b"\r\n", 1)[0].decode("latin-1")
                st.answered[line] = st.answered.get(line, 0) + 1
            st.closed_at.append(time.monotonic() - t0)
            return
    except (ConnectionError, OSError):
        st.closed_at.append(time.monotonic() - t0)
        return
    finally:
        st.open -= 1
        writer.close()


async def normal_client(port, stop_at, st):
    while time.monotonic() < stop_at:
        t = time.monotonic()
        try:
            reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 5)
            writer.write(b"GET /v2/health/live HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            data = await asyncio.wait_for(reader.read(), 5)
            writer.close()
            if data.startswith(b"HTTP/1.1 200"):
                st.normal_ok += 1
                st.normal_lat.append(time.monotonic() - t)
            else:
                st.normal_fail += 1
        except (OSError, asyncio.TimeoutError):
            st.normal_fail += 1
        await asyncio.sleep(0.5)


async def report(stop_at, st, t0):
    while time.monotonic() < stop_at:
        await asyncio.sleep(5)
        lat = sorted(st.normal_lat)
        p50 = lat[len(lat) // 2] * 1000 if lat else float("nan")
        print(f"t={time.monotonic() - t0:5.1f}s  slow connections held: {st.open:5d}  "
              f"normal client: {st.normal_ok} ok, {st.normal_fail} failed, p50 {p50:.1f} ms", flush=True)


async def main_async(args, port):
    st = Stats()
    t0 = time.monotonic()
    stop_at = t0 + args.duration
    tasks = []
    for i in range(args.connections):
        tasks.append(asyncio.create_task(slow_client(i, port, args.interval, stop_at, st, t0)))
        if i % 200 == 199:
            await asyncio.sleep(0.05)  # do not overflow the listen backlog
    tasks.append(asyncio.create_task(normal_client(port, stop_at, st)))
    tasks.append(asyncio.create_task(report(stop_at, st, t0)))
    await asyncio.gather(*tasks)
    closed = sorted(st.closed_at)
    print(f"connected {st.connected}/{args.connections} (failed {st.failed_connect}); "
          f"closed by the server: {len(closed)}"
          + (f", first at {closed[0]:.1f}s, last at {closed[-1]:.1f}s" if closed else "")
          + f"; still held at the end: {st.connected - len(closed)}")
    print(f"answers before closing: {st.answered or 'none'}")
    lat = sorted(st.normal_lat)
    if lat:
        print(f"normal client: {st.normal_ok} ok, {st.normal_fail} failed; latency p50 {lat[len(lat) // 2] * 1000:.1f} ms, "
              f"max {lat[-1] * 1000:.1f} ms")
    else:
        print(f"normal client: 0 ok, {st.normal_fail} failed")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--inferd", default=os.path.join(REPO, "build", "inferd"))
    ap.add_argument("--models", default=os.path.join(REPO, "models"))
    ap.add_argument("--connections", type=int, default=2000)
    ap.add_argument("--interval", type=float, default=10.0)
    ap.add_argument("--duration", type=float, default=45.0)
    ap.add_argument("--server-nofile", type=int, default=0,
                    help="run the server with this descriptor limit (soft and hard), to see it at the limit")
    ap.add_argument("server_args", nargs="*")
    args = ap.parse_args()
    args.duration = min(args.duration, 60.0)
    args.connections = min(args.connections, 5000)
    if raise_nofile() < args.connections + 100:
        sys.exit(f"the descriptor hard limit is below {args.connections + 100}")
    port = free_port()
    log = open(f"/tmp/slowloris-inferd-{port}.log", "wb")
    cmd = [args.inferd, "serve", "--model-repository", args.models, "--host", "127.0.0.1", "--http-port", str(port),
           "--grpc-port", "0"] + args.server_args
    # the child inherits the raised limit: the server before the fix did not raise its own
    limit = args.server_nofile
    pre = (lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit))) if limit else None
    srv = subprocess.Popen(cmd, stdout=log, stderr=log, stdin=subprocess.DEVNULL, preexec_fn=pre)
    try:
        for _ in range(200):
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                    s.sendall(b"GET /v2/health/live HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                    if s.recv(64).startswith(b"HTTP/1.1 200"):
                        break
            except OSError:
                time.sleep(0.1)
        else:
            sys.exit("inferd did not come up")
        print(f"{' '.join(cmd[:1] + cmd[1:2])} {' '.join(args.server_args)}"
              + (f" (descriptor limit {limit})" if limit else "") + f": {args.connections} connections, "
              f"a header line every {args.interval:g} s, for {args.duration:g} s", flush=True)
        cpu0 = cpu_seconds(srv.pid)
        asyncio.run(main_async(args, port))
        log.flush()
        size = os.path.getsize(log.name)
        with open(log.name, "rb") as f:
            lines = sum(1 for _ in f)
        print(f"server CPU during the run: {cpu_seconds(srv.pid) - cpu0:.2f} s; its log: {lines} lines, {size} bytes")
    finally:
        srv.terminate()
        try:
            srv.wait(20)
        except subprocess.TimeoutExpired:
            srv.kill()
            srv.wait()
        log.close()


if __name__ == "__main__":
    main()
