"""A real redis-server (Debian's) for end-to-end tests: started on a free loopback port with no
persistence, stopped (or killed, paused, restarted on the same port) by the test.

Reusable by any test module (the scale-out tests use it too):

    from redis_server import RedisServer, redis_server  # noqa: F401  (the fixture)

    def test_x(redis_server):                # a fresh, empty Redis per test
        url = redis_server.url               # redis://127.0.0.1:PORT/0 for --redis-url
        redis_server.cli("DBSIZE")           # redis-cli against it, output as str
        redis_server.kill()                  # SIGKILL (a crash); .restart() brings it back, same port
        redis_server.pause() / .resume()     # SIGSTOP / SIGCONT: a Redis that holds connections, answers nothing

With a password: RedisServer(tmpdir, password="s3cret").start(); url is then
redis://:s3cret@127.0.0.1:PORT/0.
"""
import os
import shutil
import signal
import socket
import subprocess
import time

import pytest

from conftest import free_port, timeout, wait_until

REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"
REDIS_CLI = shutil.which("redis-cli") or "/usr/bin/redis-cli"


class RedisServer:
    def __init__(self, workdir, password=None, port=None):
        self.workdir = str(workdir)
        os.makedirs(self.workdir, exist_ok=True)
        self.password = password
        self.port = port
        self.proc = None
        self.log_path = None

    @property
    def url(self):
        cred = f":{self.password}@" if self.password else ""
        return f"redis://{cred}127.0.0.1:{self.port}/0"

    def start(self):
        assert os.path.exists(REDIS_SERVER), "redis-server is not installed (apt-get install redis-server)"
        for _ in range(3):  # a free port may be taken between probe and bind
            if self.port is None:
                self.port = free_port()
            self.log_path = os.path.join(self.workdir, f"redis-{self.port}.log")
            args = [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                    "--appendonly", "no", "--dir", self.workdir, "--daemonize", "no",
                    "--logfile", self.log_path, "--protected-mode", "yes"]
            if self.password:
                args += ["--requirepass", self.password]
            self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                         stderr=subprocess.DEVNULL)
            try:
                wait_until(self._answers, timeout(10), interval=0.05, what=f"redis-server on port {self.port}")
                return self
            except AssertionError:
                self._reap(signal.SIGKILL)
                log = open(self.log_path).read() if os.path.exists(self.log_path) else ""
                if "in use" not in log:
                    raise
                self.port = None
        raise AssertionError("could not start redis-server")

    def _answers(self):
        if self.proc.poll() is not None:
            raise AssertionError(f"redis-server exited with {self.proc.returncode}")
        return self.cli("PING").strip() == "PONG"

    def cli(self, *args):
        cmd = [REDIS_CLI, "-h", "127.0.0.1", "-p", str(self.port)]
        if self.password:
            cmd += ["--no-auth-warning", "-a", self.password]
        res = subprocess.run(cmd + [str(a) for a in args], capture_output=True, text=True, timeout=timeout(10))
        return res.stdout

    def _reap(self, sig):
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)  # a paused server must be able to act on sig
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=timeout(10))
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=timeout(10))
        self.proc = None

    def stop(self):
        """SIGTERM and wait."""
        self._reap(signal.SIGTERM)

    def kill(self):
        """SIGKILL: Redis gone at once, as a crash or a lost node."""
        self._reap(signal.SIGKILL)

    def restart(self):
        """A new, empty redis-server on the same port (nothing was persisted)."""
        self.kill()
        deadline = time.monotonic() + timeout(10)
        while True:  # the port may sit in TIME_WAIT for a moment
            with socket.socket() as s:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                try:
                    s.bind(("127.0.0.1", self.port))
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.05)
        return self.start()

    def pause(self):
        """SIGSTOP: Redis keeps its connections open but answers nothing (a hung or swapping node)."""
        self.proc.send_signal(signal.SIGSTOP)

    def resume(self):
        """SIGCONT after pause()."""
        self.proc.send_signal(signal.SIGCONT)

    def alive(self):
        return self.proc is not None and self.proc.poll() is None


@pytest.fixture
def redis_server(tmp_path):
    """A fresh redis-server for one test, stopped after it."""
    srv = RedisServer(tmp_path / "redis").start()
    try:
        yield srv
    finally:
        srv.kill()
