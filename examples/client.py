#!/usr/bin/env python3
"""A client for inferd's application API using only Python's standard library.

    python3 examples/client.py [--url http://localhost:8000] [--model churn]

Copy the InferdClient class into your code, or import this file. Every method returns the
decoded JSON answer; a 4xx/5xx raises InferdError, whose .errors lists each problem of a
rejected request with its JSON path.
"""
import argparse
import json
import sys
import urllib.error
import urllib.request


class InferdError(Exception):
    """An error answer: .status (HTTP), .message, .errors ([{"path", "kind", "message"}])."""

    def __init__(self, status, body):
        self.status = status
        self.body = body
        self.message = body.get("error") or body.get("message") or str(body)
        self.errors = body.get("errors", [])
        super().__init__(f"HTTP {status}: {self.message}")


class InferdClient:
    def __init__(self, url="http://localhost:8000", timeout=30.0):
        self.url = url.rstrip("/")
        self.timeout = timeout

    def _call(self, method, path, body=None, headers=None):
        data = None if body is None else json.dumps(body).encode("utf-8")
        req = urllib.request.Request(self.url + path, data=data, method=method)
        req.add_header("Accept", "application/json")
        if data is not None:
            req.add_header("Content-Type", "application/json")
        for k, v in (headers or {}).items():
            req.add_header(k, v)
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                return json.loads(resp.read().decode("utf-8"))
        except urllib.error.HTTPError as err:
            raw = err.read().decode("utf-8", "replace")
            try:
                body = json.loads(raw)
            except ValueError:
                body = {"error": raw}
            raise InferdError(err.code, body) from None

    # -- the application API --------------------------------------------------------------------

    def models(self):
        """Every model with its versions and their states."""
        return self._call("GET", "/v1/models")["models"]

    def model(self, name, version=None):
        """Versions, feature schema, outputs, class labels and model card of one model."""
        return self._call("GET", f"/v1/models/{name}" + (f"/versions/{version}" if version else ""))

    def predict(self, name, records, version=None, return_probabilities=True, top_k=None):
        """Predicts from records of named features: a list of dicts (or one dict)."""
        if isinstance(records, dict):
            records = [records]
        params = {"return_probabilities": return_probabilities}
        if top_k is not None:
            params["top_k"] = top_k
        path = f"/v1/models/{name}" + (f"/versions/{version}" if version else "") + "/predict"
        return self._call("POST", path, {"inputs": records, "parameters": params})

    # -- compatibility routes -------------------------------------------------------------------

    def tf_predict(self, name, instances=None, inputs=None, version=None):
        """TensorFlow Serving's REST predict: row form (instances) or columnar form (inputs)."""
        body = {"instances": instances} if inputs is None else {"inputs": inputs}
        path = f"/v1/models/{name}" + (f"/versions/{version}" if version else "") + ":predict"
        return self._call("POST", path, body)

    def mlflow_invoke(self, body):
        """MLflow's /invocations on the server's default model."""
        return self._call("POST", "/invocations", body)


def main():
    ap = argparse.ArgumentParser(description="Try inferd's application API.")
    ap.add_argument("--url", default="http://localhost:8000")
    ap.add_argument("--model", default="churn")
    args = ap.parse_args()
    client = InferdClient(args.url)

    for m in client.models():
        states = ", ".join(f"v{v['version']} {v['state']}" for v in m["versions"])
        print(f"{m['id']:12s} {states}")
    info = client.model(args.model)
    if not info.get("input_schema"):
        print(f"{args.model} has no feature schema; use the tensor APIs")
        return 0
    print(f"\n{args.model} takes:")
    for f in info["input_schema"]["features"]:
        detail = f.get("categories") or [f.get("minimum"), f.get("maximum")]
        print(f"  {f['name']:18s} {f['type']:12s} {detail}")

    # One record built from the schema's first category / lower bound, to show the round trip.
    record = {}
    for f in info["input_schema"]["features"]:
        if f["type"] == "categorical":
            record[f["name"]] = f["categories"][0]
        elif f["type"] == "string":
            record[f["name"]] = "what a great product"
        elif f["type"] == "boolean":
            record[f["name"]] = False
        else:
            record[f["name"]] = f.get("minimum", 0) or 1
    answer = client.predict(args.model, [record], top_k=2)
    print(f"\npredict {json.dumps(record)}\n  -> {json.dumps(answer['results'][0])}"
          f" (version {answer['model_version']}, {answer['inference_time_ms']:.3f} ms)")

    # A bad request: every problem comes back with its JSON path.
    bad = dict(record)
    bad[next(iter(bad))] = "not a number" if info["input_schema"]["features"][0]["type"] != "string" else 7
    bad["no_such_feature"] = 1
    try:
        client.predict(args.model, [bad])
    except InferdError as err:
        print(f"\nrejected ({err.status}):")
        for e in err.errors:
            print(f"  {e['path']}: {e['message']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
