"""Model metadata and model readiness, field for field as V2 clients read them."""

import pytest

from conftest import ALL_DATATYPES, assert_error


def by_name(tensors):
    out = {}
    for t in tensors:
        assert set(t) >= {"name", "datatype", "shape"}, t
        assert isinstance(t["shape"], list) and all(isinstance(d, int) for d in t["shape"]), t
        out[t["name"]] = t
    return out


def check_common(body, name):
    assert body["name"] == name
    assert body["platform"] == "onnxruntime_onnx"
    assert isinstance(body["versions"], list) and body["versions"], body
    assert all(isinstance(v, str) for v in body["versions"]), body["versions"]
    assert isinstance(body["inputs"], list) and isinstance(body["outputs"], list)


def test_add_sub_metadata(server):
    r = server.get("/v2/models/add_sub")
    assert r.status_code == 200
    assert r.headers["Content-Type"].startswith("application/json")
    body = r.json()
    check_common(body, "add_sub")
    assert body["versions"] == ["1"]
    ins, outs = by_name(body["inputs"]), by_name(body["outputs"])
    assert [t["name"] for t in body["inputs"]] == ["a", "b"]
    assert sorted(outs) == ["diff", "sum"]
    for t in list(ins.values()) + list(outs.values()):
        assert t["datatype"] == "FP32"
        assert t["shape"] == [-1, 4], t  # max_batch_size > 0: batch dim shown as -1


def test_add_sub_version_metadata_equals_unversioned(server):
    a = server.get("/v2/models/add_sub").json()
    b = server.get("/v2/models/add_sub/versions/1").json()
    assert a == b


def test_identity_all_metadata_read_from_model(server):
    body = server.get("/v2/models/identity_all").json()
    check_common(body, "identity_all")
    assert body["versions"] == ["1"]
    ins, outs = by_name(body["inputs"]), by_name(body["outputs"])
    assert sorted(ins) == sorted(f"in_{d}" for d in ALL_DATATYPES)
    assert sorted(outs) == sorted(f"out_{d}" for d in ALL_DATATYPES)
    for d in ALL_DATATYPES:
        assert ins[f"in_{d}"]["datatype"] == d
        assert ins[f"in_{d}"]["shape"] == [-1, -1]
        assert outs[f"out_{d}"]["datatype"] == d
        assert outs[f"out_{d}"]["shape"] == [-1, -1]


def test_versioned_metadata_lists_served_versions(server):
    body = server.get("/v2/models/versioned").json()
    check_common(body, "versioned")
    assert sorted(body["versions"], key=int) == ["2", "3"]
    ins, outs = by_name(body["inputs"]), by_name(body["outputs"])
    assert ins["x"]["datatype"] == "FP32" and ins["x"]["shape"] == [-1, 1]
    assert outs["y"]["datatype"] == "FP32" and outs["y"]["shape"] == [-1, 1]


@pytest.mark.parametrize("version", ["2", "3"])
def test_versioned_specific_version_metadata(server, version):
    r = server.get(f"/v2/models/versioned/versions/{version}")
    assert r.status_code == 200
    body = r.json()
    check_common(body, "versioned")
    assert by_name(body["inputs"])["x"]["shape"] == [-1, 1]


def test_zipmap_metadata(server):
    body = server.get("/v2/models/zipmap").json()
    check_common(body, "zipmap")
    ins, outs = by_name(body["inputs"]), by_name(body["outputs"])
    assert ins["x"]["datatype"] == "FP32"
    assert ins["x"]["shape"][-1] == 3 and len(ins["x"]["shape"]) == 2
    assert outs["label"]["datatype"] == "INT64"
    assert len(outs["label"]["shape"]) == 1
    # Sequences of maps are served as BYTES, one element per row.
    for name in ("probs_int", "probs_str"):
        assert outs[name]["datatype"] == "BYTES", outs[name]
        assert outs[name]["shape"] == [-1], outs[name]


@pytest.mark.parametrize("path", [
    "/v2/models/nope",
    "/v2/models/nope/versions/1",
    "/v2/models/add_sub/versions/2",
    "/v2/models/versioned/versions/1",   # on disk, but the policy serves 2 and 3 only
    "/v2/models/versioned/versions/4",
    "/v2/models/add_sub/versions/abc",
    "/v2/models/add_sub/versions/0",
    "/v2/models/add_sub/versions/-1",
    "/v2/models/add_sub/versions/99999999999999999999999",
])
def test_metadata_unknown_model_or_version_404(server, path):
    assert_error(server.get(path), 404)


def test_metadata_unknown_model_message_names_it(server):
    assert_error(server.get("/v2/models/no_such_model_xyz"), 404, "no_such_model_xyz")


@pytest.mark.parametrize("path,name", [
    ("/v2/models/add_sub/ready", "add_sub"),
    ("/v2/models/add_sub/versions/1/ready", "add_sub"),
    ("/v2/models/versioned/ready", "versioned"),
    ("/v2/models/versioned/versions/2/ready", "versioned"),
    ("/v2/models/versioned/versions/3/ready", "versioned"),
    ("/v2/models/zipmap/ready", "zipmap"),
    ("/v2/models/identity_all/ready", "identity_all"),
])
def test_model_ready(server, path, name):
    r = server.get(path)
    assert r.status_code == 200
    assert r.headers["Content-Type"].startswith("application/json")
    body = r.json()
    assert body["name"] == name
    assert body["ready"] is True


@pytest.mark.parametrize("path", [
    "/v2/models/nope/ready",
    "/v2/models/nope/versions/1/ready",
    "/v2/models/versioned/versions/1/ready",
    "/v2/models/versioned/versions/9/ready",
])
def test_model_ready_unknown_404(server, path):
    assert_error(server.get(path), 404)


@pytest.mark.parametrize("path", [
    "/v2/models/add_sub",
    "/v2/models/add_sub/versions/1",
    "/v2/models/add_sub/ready",
    "/v2/models/add_sub/versions/1/ready",
])
def test_metadata_wrong_method_405(server, path):
    for method in ("POST", "PUT", "DELETE"):
        r = server.request(method, path, data=b"{}", headers={"Content-Type": "application/json"})
        assert_error(r, 405)
        assert "GET" in r.headers.get("Allow", ""), f"{method} {path}: Allow={r.headers.get('Allow')!r}"
