"""/openapi.json (generated from the route table and the loaded models' feature schemas), the
Swagger UI and ReDoc pages served from local npm assets, and the real-browser test
(tests/browser/docs_ui.mjs: Debian's chromium driven by playwright-core)."""
import json
import os
import shutil
import subprocess

import pytest
from jsonschema import Draft202012Validator

from app_repo import CHURN_RECORD, write_repo
from conftest import REPO_ROOT, Server, timeout, wait_models_settled

WEB = os.path.join(REPO_ROOT, "web", "node_modules")
BROWSER_TEST = os.path.join(REPO_ROOT, "tests", "browser", "docs_ui.mjs")


@pytest.fixture(scope="module")
def doc_server(tmp_path_factory, logs_dir):
    repo = write_repo(str(tmp_path_factory.mktemp("doc_repo")))
    srv = Server(repo, args=["--default-model", "churn"], workdir=logs_dir)
    srv.start(wait_ready=False)
    wait_models_settled(srv, expect=("churn", "reg", "sentiment", "plain", "badapp"))
    yield srv
    srv.stop()
    srv.check_clean_exit()


@pytest.fixture(scope="module")
def spec(doc_server):
    r = doc_server.get("/openapi.json")
    assert r.status_code == 200
    assert r.headers["Content-Type"].startswith("application/json")
    return r.json()


def resolve(spec, ref):
    assert ref.startswith("#/components/schemas/"), ref
    return spec["components"]["schemas"][ref.split("/")[-1]]


def all_refs(node):
    if isinstance(node, dict):
        for k, v in node.items():
            if k == "$ref":
                yield v
            else:
                yield from all_refs(v)
    elif isinstance(node, list):
        for v in node:
            yield from all_refs(v)


def test_document_lists_every_route(spec):
    assert spec["openapi"] == "3.1.0"
    assert spec["info"]["title"] == "inferd" and spec["info"]["version"]
    paths = spec["paths"]
    expected = {
        "/v1/models": ["get"], "/v1/models/{model}": ["get"], "/v1/models/{model}/versions/{version}": ["get"],
        "/v1/models/{model}/predict": ["post"], "/v1/models/{model}/versions/{version}/predict": ["post"],
        "/v1/models/{model}:predict": ["post"], "/v1/models/{model}/versions/{version}:predict": ["post"],
        "/invocations": ["post"], "/ping": ["get"], "/v2/models/{model}/infer": ["post"], "/health": ["get"],
        "/openapi.json": ["get"], "/docs": ["get"], "/redoc": ["get"],
    }
    for path, methods in expected.items():
        assert path in paths, path
        for m in methods:
            assert m in paths[path], (path, m)
    # static assets of the docs pages are served but not documented
    assert not any(p.startswith("/docs/") or p.startswith("/redoc/") for p in paths)
    # path parameters are declared
    params = {p["name"] for p in paths["/v1/models/{model}/versions/{version}/predict"]["post"]["parameters"]}
    assert {"model", "version"} <= params
    assert "X-Model-Version" in {p["name"] for p in paths["/v1/models/{model}/predict"]["post"]["parameters"]}
    # unique operation ids, and every $ref resolves
    ids = [op["operationId"] for item in paths.values() for op in item.values()]
    assert len(ids) == len(set(ids))
    for ref in all_refs(spec):
        resolve(spec, ref)


def test_models_with_a_schema_get_their_own_path(spec):
    paths = spec["paths"]
    assert "/v1/models/churn/predict" in paths and "/v1/models/sentiment/predict" in paths
    assert "/v1/models/reg/predict" in paths
    assert "/v1/models/plain/predict" not in paths  # no feature schema
    assert "/v1/models/badapp/predict" not in paths  # not loaded
    schemas = spec["components"]["schemas"]
    record = schemas["churn.Record"]
    assert record["required"] == list(CHURN_RECORD)
    assert record["properties"]["contract"]["enum"] == ["month-to-month", "one-year", "two-year"]
    assert record["properties"]["tenure_months"]["minimum"] == 0
    assert record["additionalProperties"] is False
    assert schemas["reg.Record"]["required"] == ["a", "colour"]
    assert schemas["reg.Record"]["properties"]["b"]["default"] == 1
    assert schemas["churn.Result"]["properties"]["label"]["enum"] == ["stay", "churn"]
    assert schemas["churn.PredictRequest"]["properties"]["inputs"]["maxItems"] == 1000


def test_schemas_are_json_schema_and_agree_with_the_validator(doc_server, spec):
    schemas = spec["components"]["schemas"]
    for name, schema in schemas.items():
        if "$ref" not in json.dumps(schema):
            Draft202012Validator.check_schema(schema)
    record = Draft202012Validator(schemas["churn.Record"])
    example = spec["paths"]["/v1/models/churn/predict"]["post"]["requestBody"]["content"]["application/json"]["example"]
    record.validate(example["inputs"][0])
    # the example is what Swagger UI's "Try it out" sends: the server takes it
    r = doc_server.post("/v1/models/churn/predict", json=example)
    assert r.status_code == 200, r.text
    result = Draft202012Validator(schemas["churn.Result"])
    result.validate(r.json()["results"][0])
    # what the schema refuses, the server refuses, at the same place
    for bad, path in [(dict(CHURN_RECORD, contract="weekly"), "$.inputs[0].contract"),
                      (dict(CHURN_RECORD, age=12), "$.inputs[0].age"),
                      ({k: v for k, v in CHURN_RECORD.items() if k != "age"}, "$.inputs[0].age"),
                      (dict(CHURN_RECORD, extra=1), "$.inputs[0].extra")]:
        assert not record.is_valid(bad)
        r = doc_server.post("/v1/models/churn/predict", json={"inputs": [bad]})
        assert r.status_code == 400
        assert [e["path"] for e in r.json()["errors"]] == [path]


def test_document_follows_the_models(doc_server, spec):
    """The document is generated per request: a model's path appears only while it is loaded."""
    assert doc_server.get("/openapi.json").json()["paths"].keys() == spec["paths"].keys()


def test_pages_and_assets(doc_server):
    for page, needle in [("/docs", "swagger-ui-bundle.js"), ("/redoc", "redoc.standalone.js")]:
        r = doc_server.get(page)
        assert r.status_code == 200
        assert r.headers["Content-Type"].startswith("text/html")
        assert needle in r.text and "/openapi.json" in r.text
        assert "https://" not in r.text  # nothing from a CDN
        assert "default-src 'self'" in r.headers["Content-Security-Policy"]
    for url, rel, ctype in [("/docs/swagger-ui-bundle.js", "swagger-ui-dist/swagger-ui-bundle.js", "application/javascript"),
                            ("/docs/swagger-ui.css", "swagger-ui-dist/swagger-ui.css", "text/css"),
                            ("/docs/favicon-32x32.png", "swagger-ui-dist/favicon-32x32.png", "image/png"),
                            ("/redoc/redoc.standalone.js", "redoc/bundles/redoc.standalone.js", "application/javascript")]:
        r = doc_server.get(url)
        assert r.status_code == 200, url
        assert r.headers["Content-Type"].startswith(ctype)
        with open(os.path.join(WEB, rel), "rb") as f:
            assert r.content == f.read(), url


def test_missing_assets_are_a_clear_404(tmp_path, server_factory):
    repo = tmp_path / "r"
    shutil.copytree(os.path.join(REPO_ROOT, "models", "churn"), repo / "churn")
    srv = server_factory(str(repo), env={"INFERD_UI_ASSETS": str(tmp_path / "none")})
    r = srv.get("/docs/swagger-ui-bundle.js")
    assert r.status_code == 404
    assert "npm ci" in r.json()["error"]
    assert srv.get("/docs").status_code == 200


def test_real_browser(doc_server, tmp_path):
    """Swagger UI loads in chromium, lists the predict route, and "Try it out" on churn's predict
    answers 200; ReDoc renders; nothing is fetched from another host."""
    assert shutil.which("node"), "node is missing (scripts/bootstrap.sh installs it)"
    assert os.path.exists("/usr/bin/chromium"), "chromium is missing (scripts/bootstrap.sh installs it)"
    assert os.path.isdir(os.path.join(WEB, "playwright-core")), "web/node_modules is missing (npm ci in web/)"
    res = subprocess.run(["node", BROWSER_TEST, doc_server.url(""), str(tmp_path)], capture_output=True, text=True,
                         timeout=timeout(180))
    assert res.returncode == 0, f"browser test failed:\n{res.stdout}\n{res.stderr[-3000:]}"
    assert "5 passed, 0 failed" in res.stdout, res.stdout
    assert os.path.exists(tmp_path / "docs.png") and os.path.exists(tmp_path / "redoc.png")
