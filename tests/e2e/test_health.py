"""Server metadata, liveness, readiness and /health on a repository where every model loads."""

import re

import pytest

from conftest import assert_error

TEST_MODELS = ["add_sub", "identity_all", "nan_ok", "slow", "versioned", "zipmap"]


def test_server_metadata(server):
    r = server.get("/v2")
    assert r.status_code == 200
    assert r.headers["Content-Type"].startswith("application/json")
    body = r.json()
    assert body["name"] == "inferd"
    assert isinstance(body["version"], str) and body["version"].strip()
    assert isinstance(body["extensions"], list)
    assert all(isinstance(e, str) for e in body["extensions"])
    # The binary tensor data extension is implemented, so it is advertised.
    assert "binary_tensor_data" in body["extensions"], body["extensions"]


def test_live(server):
    r = server.get("/v2/health/live")
    assert r.status_code == 200
    assert r.headers["Content-Type"].startswith("application/json")
    assert r.json() == {"live": True}


def test_ready(server):
    r = server.get("/v2/health/ready")
    assert r.status_code == 200
    assert r.headers["Content-Type"].startswith("application/json")
    body = r.json()
    assert body["ready"] is True
    assert "error" not in body


def test_health_document(server):
    r = server.get("/health")
    assert r.status_code == 200
    body = r.json()
    assert body["status"] == "ready"
    assert body["live"] is True
    assert body["ready"] is True
    models = body["models"]
    assert isinstance(models, list)
    for m in models:
        assert set(m) >= {"name", "version", "state"}, m
    # Each version a policy names appears, READY. `versioned` serves 2 and 3 only.
    seen = {(m["name"], str(m["version"])): m for m in models}
    expected = [(name, "1") for name in TEST_MODELS if name != "versioned"]
    expected += [("versioned", "2"), ("versioned", "3")]
    for key in expected:
        assert key in seen, f"{key} missing from /health models: {sorted(seen)}"
        assert seen[key]["state"] == "READY", seen[key]
    assert ("versioned", "1") not in seen or seen[("versioned", "1")]["state"] != "READY"


def test_health_models_carry_reason_field(server):
    """docs/http-api.md: each entry of `models` is {"name", "version", "state", "reason"}."""
    for m in server.get("/health").json()["models"]:
        assert "reason" in m, f"no 'reason' field in {m}"
        # `reason` is null unless the state is UNAVAILABLE.
        assert m["reason"] is None, m


@pytest.mark.parametrize("path", ["/v2", "/v2/health/live", "/v2/health/ready", "/health",
                                  "/v2/models/add_sub", "/v2/models/add_sub/ready",
                                  "/v2/models/nope"])
def test_every_response_has_request_id(server, path):
    r = server.get(path)
    rid = r.headers.get("X-Request-ID")
    assert rid and rid.strip(), f"{path}: no X-Request-ID header"
    r2 = server.get(path, headers={"X-Request-ID": "health-check-42"})
    assert r2.headers.get("X-Request-ID") == "health-check-42"


def test_generated_request_ids_differ(server):
    ids = {server.get("/v2/health/live").headers.get("X-Request-ID") for _ in range(20)}
    assert None not in ids and "" not in ids
    assert len(ids) == 20, ids


@pytest.mark.parametrize("path", ["/v2/health/live", "/v2/health/ready", "/health", "/v2"])
def test_health_wrong_method(server, path):
    r = server.request("POST", path, data=b"{}", headers={"Content-Type": "application/json"})
    assert_error(r, 405)
    allow = r.headers.get("Allow", "")
    assert "GET" in re.split(r"[,\s]+", allow), f"Allow header is {allow!r}"
