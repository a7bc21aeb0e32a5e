"""Server memory per idle HTTPS keep-alive connection: starts BINARY with TLS (the certificate
bench/tls_instructions.sh made in bench/out/tls_cg), opens N connections that each make one
request and then stay open, and prints the growth of the server's RSS per connection.
    ulimit -n 4096; /usr/bin/python3 bench/tls_idle_memory.py build/inferd 1000
"""
import os
import socket
import ssl
import subprocess
import sys
import time

binary, n = sys.argv[1], int(sys.argv[2])
here = os.path.dirname(os.path.abspath(__file__))
d = os.path.join(here, "out", "tls_cg")
s = socket.socket()
s.bind(("127.0.0.1", 0))
port = s.getsockname()[1]
s.close()
p = subprocess.Popen([binary, "serve", "--model-repository", os.path.join(here, "..", "models"), "--host", "127.0.0.1",
                      "--http-port", str(port), "--http-threads", "1", "--grpc-port", "0",
                      "--tls-cert", os.path.join(d, "server.pem"), "--tls-key", os.path.join(d, "server.key")],
                     stderr=subprocess.DEVNULL)


def rss_kib():
    with open(f"/proc/{p.pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS"):
                return int(line.split()[1])


ctx = ssl.create_default_context(cafile=os.path.join(d, "ca.pem"))


def connect():
    c = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port)), server_hostname="localhost")
    c.sendall(b"GET /v2/health/live HTTP/1.1\r\nHost: x\r\n\r\n")
    got = b""
    while not got.endswith(b"}"):
        got += c.recv(4096)
    return c


try:
    for _ in range(100):
        try:
            warm = [connect() for _ in range(10)]
            break
        except OSError:
            time.sleep(0.1)
    time.sleep(0.5)
    r0 = rss_kib()
    conns = [connect() for _ in range(n)]
    time.sleep(1)
    r1 = rss_kib()
    print(f"{binary}: {n} idle TLS keep-alive connections: RSS {r0} -> {r1} KiB, {(r1 - r0) / n:.1f} KiB per connection")
finally:
    p.terminate()
    p.wait()
