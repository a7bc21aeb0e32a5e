"""examples/client.py, the standard-library Python client, against a running server."""
import os
import subprocess
import sys

from conftest import EXAMPLE_REPO, REPO_ROOT, running_server, timeout

CLIENT = os.path.join(REPO_ROOT, "examples", "client.py")


def test_client_example_runs(logs_dir):
    with running_server(EXAMPLE_REPO, workdir=logs_dir) as srv:
        # any python3 will do: the client imports nothing outside the standard library
        res = subprocess.run([sys.executable, "-I", CLIENT, "--url", srv.url("")], capture_output=True, text=True,
                             timeout=timeout(60))
        assert res.returncode == 0, res.stderr
        assert "churn" in res.stdout and "READY" in res.stdout
        assert '"label": "stay"' in res.stdout
        assert "rejected (400)" in res.stdout and "$.inputs[0].no_such_feature" in res.stdout


def test_client_as_a_library(logs_dir):
    sys.path.insert(0, os.path.dirname(CLIENT))
    try:
        import client
    finally:
        sys.path.pop(0)
    with running_server(EXAMPLE_REPO, workdir=logs_dir) as srv:
        c = client.InferdClient(srv.url(""))
        assert {m["id"] for m in c.models()} == {"churn", "mlp", "sentiment", "tinyembed", "tinylm"}
        out = c.predict("sentiment", {"text": "awful, never again"}, top_k=1)
        assert out["results"][0]["label"] == "negative"
        assert list(out["results"][0]["probabilities"]) == ["negative"]
        assert c.tf_predict("sentiment", instances=["great"])["predictions"][0]["label"] == "positive"
        try:
            c.predict("churn", {"age": "x"})
        except client.InferdError as err:
            assert err.status == 400
            assert {e["path"] for e in err.errors} >= {"$.inputs[0].age", "$.inputs[0].contract"}
        else:
            raise AssertionError("a bad record was accepted")
