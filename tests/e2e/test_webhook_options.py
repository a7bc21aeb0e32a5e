"""The webhook flags of `inferd serve` (docs/jobs.md, "Webhooks"): a secret file that is missing or
not a Standard Webhooks secret stops the start with a message that never shows the secret; a
good one starts signed; the delivery counters are on /metrics. The deliveries themselves are
tested in tests/unit/test_webhook.c against a receiver on loopback."""

import os
import subprocess

import pytest

from conftest import INFERD_BIN, timeout

T = timeout(30)


def run_serve(repo, args, env=None):
    return subprocess.run([INFERD_BIN, "serve", "--model-repository", repo, "--host", "127.0.0.1",
                           "--http-port", "0", "--grpc-port", "0"] + args,
                          capture_output=True, text=True, timeout=T, env=env)


@pytest.mark.parametrize("content, needle", [
    (None, "--webhook-secret-file"),
    ("whsec_c2VjcmV0\n", "decodes to 6 bytes"),
    ("whsec_not*base64*at*all*xxxxxxxxxxxxxxx\n", "not base64"),
])
def test_bad_secret_file_stops_the_start(test_models_dir, tmp_path, content, needle):
    path = tmp_path / "secret"
    if content is not None:
        path.write_text(content)
    p = run_serve(test_models_dir, ["--webhook-secret-file", str(path)])
    assert p.returncode == 2, (p.returncode, p.stderr[-2000:])
    assert needle in p.stderr, p.stderr[-2000:]
    if content is not None:
        assert content.strip()[6:] not in p.stderr  # never the secret itself


@pytest.mark.parametrize("args, needle", [
    (["--webhook-retry-seconds", "0"], "--webhook-retry-seconds must be an integer"),
    (["--webhook-timeout-ms", "x"], "--webhook-timeout-ms must be an integer"),
])
def test_bad_numbers_stop_the_start(test_models_dir, args, needle):
    p = run_serve(test_models_dir, args)
    assert p.returncode == 2, (p.returncode, p.stderr[-2000:])
    assert needle in p.stderr, p.stderr[-2000:]


def test_signed_server_has_webhook_metrics(test_models_dir, tmp_path, server_factory):
    path = tmp_path / "secret"
    path.write_text("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\n")
    srv = server_factory(test_models_dir, env={"INFERD_WEBHOOK_SECRET_FILE": str(path),
                                               "INFERD_WEBHOOK_RETRY_SECONDS": "60",
                                               "INFERD_WEBHOOK_TIMEOUT_MS": "2000"})
    text = srv.get("/metrics", timeout=T).text
    assert 'inferd_webhook_deliveries_total{result="delivered"} 0' in text
    assert "inferd_webhook_queued 0" in text
    assert "deliveries are not signed" not in srv.stderr()
    assert "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw" not in srv.stderr()


def test_unsigned_server_says_so(test_models_dir, server_factory):
    srv = server_factory(test_models_dir)
    assert "inferd_webhook_retries_total 0" in srv.get("/metrics", timeout=T).text
    assert "deliveries are not signed" in srv.stderr()


def _thread_names(srv):
    task = f"/proc/{srv.proc.pid}/task"
    names = set()
    for tid in os.listdir(task):
        try:
            with open(f"{task}/{tid}/comm") as f:
                names.add(f.read().strip())
        except FileNotFoundError:  # a thread that ended meanwhile
            pass
    return names


def test_the_webhook_thread_runs_only_with_jobs(test_models_dir, server_factory):
    """Webhooks send batch jobs' callbacks and nothing else: --jobs off starts no webhook thread
    (and has no webhook metrics); with jobs on (the default) the thread is there."""
    on = server_factory(test_models_dir)
    assert "webhooks" in _thread_names(on)
    off = server_factory(test_models_dir, args=["--jobs", "off"])
    assert "webhooks" not in _thread_names(off)
    assert "inferd_webhook_" not in off.get("/metrics", timeout=T).text
    assert "deliveries are not signed" not in off.stderr()
