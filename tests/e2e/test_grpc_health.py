"""grpc.health.v1.Health: Check and Watch, for the server and per model (service = model name)."""

import signal
import threading
import time

import grpc

from conftest import timeout, wait_models_settled
from grpc_stubs import (NOT_SERVING, SERVICE_UNKNOWN, SERVING, assert_rpc_error, grpc_server,  # noqa: F401
                        grpc_server_factory, hpb)

T = timeout(30)


def check(g, service):
    return g.health.Check(hpb.HealthCheckRequest(service=service), timeout=T).status


def test_check_server_and_models(grpc_server):
    for service in ("", "inference.GRPCInferenceService", "grpc.health.v1.Health"):
        assert check(grpc_server, service) == SERVING
    for model in ("add_sub", "identity_all", "versioned", "versioned/2"):
        assert check(grpc_server, model) == SERVING


def test_check_unknown_service_is_not_found(grpc_server):
    for service in ("nope", "versioned/1", "add_sub/9"):
        assert_rpc_error(grpc_server.health.Check, hpb.HealthCheckRequest(service=service), grpc.StatusCode.NOT_FOUND,
                         "unknown service")


def test_check_with_a_broken_model(grpc_server_factory, broken_models_dir):
    g = grpc_server_factory(broken_models_dir, wait_ready=False)
    wait_models_settled(g.srv)
    assert check(g, "") == NOT_SERVING
    assert check(g, "broken") == NOT_SERVING
    assert check(g, "add_sub") == SERVING


def test_watch_sends_the_status_and_stays_open(grpc_server):
    call = grpc_server.health.Watch(hpb.HealthCheckRequest(service="add_sub"), timeout=T)
    assert next(call).status == SERVING
    got = []

    def read():
        try:
            got.extend(r.status for r in call)
        except grpc.RpcError as exc:
            assert exc.code() == grpc.StatusCode.CANCELLED

    t = threading.Thread(target=read, daemon=True)
    t.start()
    time.sleep(0.3)
    assert got == [] and t.is_alive(), "Watch stays open while nothing changes"
    call.cancel()
    t.join(T)
    unknown = grpc_server.health.Watch(hpb.HealthCheckRequest(service="nope"), timeout=T)
    assert next(unknown).status == SERVICE_UNKNOWN
    unknown.cancel()
    assert check(grpc_server, "") == SERVING


def test_watch_sees_draining(grpc_server_factory, test_models_dir):
    """On SIGTERM, watchers hear NOT_SERVING and their stream ends (UNAVAILABLE)."""
    g = grpc_server_factory(test_models_dir)
    calls = [g.health.Watch(hpb.HealthCheckRequest(service=s), timeout=T) for s in ("", "add_sub")]
    for c in calls:
        assert next(c).status == SERVING
    g.srv.send_signal(signal.SIGTERM)
    for c in calls:
        statuses = []
        try:
            for r in c:
                statuses.append(r.status)
        except grpc.RpcError as exc:
            assert exc.code() == grpc.StatusCode.UNAVAILABLE, exc
        assert statuses == [NOT_SERVING]
    assert g.srv.wait_exit() == 0
