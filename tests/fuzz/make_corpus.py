#!/usr/bin/env python3
"""Seed corpora for the libFuzzer harnesses, from the request bodies the test suites send.

Every dict literal and JSON-looking string constant in tests/e2e/*.py is evaluated (with the
test module's globals, so bodies built from module constants count) and sorted by its shape
into the harnesses' corpora: V2 bodies (also converted to the binary extension and to gRPC
ModelInferRequests with protoc --encode), TF Serving / MLflow bodies, /v1 records, configs (and
models/*/config.json). The access log gets a few hand-made records.

    tests/fuzz/make_corpus.py [--out DIR] [--minimize BUILD_DIR]

--minimize keeps, per harness, only the files that add coverage (libFuzzer -merge=1 with the
harness binaries in BUILD_DIR, e.g. build-fuzz). Without --out, writes tests/fuzz/corpus/.
"""

import argparse
import ast
import base64
import glob
import hashlib
import json
import math
import os
import shutil
import struct
import subprocess
import sys
import tempfile

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
E2E = os.path.join(ROOT, "tests", "e2e")
MAX_BYTES = 64 * 1024

V2_KEYS = {"inputs", "outputs", "id", "parameters"}
MLFLOW_KEYS = {"dataframe_split", "dataframe_records", "instances", "inputs", "params"}
TF_KEYS = {"instances", "inputs", "signature_name"}
CONFIG_KEYS = {"max_batch_size", "backend", "version_policy", "dynamic_batching", "application", "class_labels"}

PACK = {"BOOL": "?", "UINT8": "B", "UINT16": "H", "UINT32": "I", "UINT64": "Q", "INT8": "b", "INT16": "h",
        "INT32": "i", "INT64": "q", "FP16": "e", "FP32": "f", "FP64": "d"}
PROTO_FIELD = {"BOOL": "bool_contents", "UINT8": "uint_contents", "UINT16": "uint_contents",
               "UINT32": "uint_contents", "UINT64": "uint64_contents", "INT8": "int_contents",
               "INT16": "int_contents", "INT32": "int_contents", "INT64": "int64_contents",
               "FP16": "fp32_contents", "FP32": "fp32_contents", "FP64": "fp64_contents",
               "BYTES": "bytes_contents"}


def values_from_tests():
    """Every dict or JSON string the e2e tests' sources spell out, evaluated where possible."""
    sys.path.insert(0, E2E)
    out = []
    for path in sorted(glob.glob(os.path.join(E2E, "test_*.py"))):
        src = open(path).read()
        tree = ast.parse(src)
        env = {}
        try:  # the module's globals let bodies built from its constants evaluate
            mod = __import__(os.path.basename(path)[:-3])
            env = dict(vars(mod))
        except Exception:
            pass
        for node in ast.walk(tree):
            if isinstance(node, ast.Dict):
                try:
                    out.append(eval(compile(ast.Expression(node), path, "eval"), env))
                except Exception:
                    pass
            elif isinstance(node, ast.Constant) and isinstance(node.value, (str, bytes)):
                raw = node.value.encode() if isinstance(node.value, str) else node.value
                if raw[:1] in (b"{", b"[") and len(raw) <= MAX_BYTES:
                    out.append(raw)
    return out


def plain(v):
    """numpy arrays and scalars into JSON-able Python values; None when not JSON-able."""
    try:
        return json.loads(json.dumps(v, default=lambda o: o.tolist()))
    except Exception:
        return None


def is_v2(d):
    ins = d.get("inputs")
    return isinstance(ins, list) and ins and all(isinstance(i, dict) and "datatype" in i for i in ins)


def flat(x):
    if isinstance(x, list):
        for y in x:
            yield from flat(y)
    else:
        yield x


def v2_binary(body):
    """The body with every input's data moved into the binary part; None when not possible."""
    header = dict(body, inputs=[])
    tail = b""
    for inp in body["inputs"]:
        dt, data = inp.get("datatype"), inp.get("data")
        if not isinstance(data, list) or not isinstance(dt, str):
            return None
        try:
            if dt == "BYTES":
                raw = b"".join(struct.pack("<I", len(s.encode())) + s.encode() for s in flat(data))
            else:
                raw = struct.pack("<%d%s" % (len(list(flat(data))), PACK[dt]), *flat(data))
        except Exception:
            return None
        j = {k: v for k, v in inp.items() if k != "data"}
        j["parameters"] = dict(inp.get("parameters") or {}, binary_data_size=len(raw))
        header["inputs"].append(j)
        tail += raw
    h = json.dumps(header).encode()
    return struct.pack("<Q", len(h)) + h + tail  # the harness's 8-byte header length, then the body


def text_value(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return repr(v)


def grpc_text(body):
    """A ModelInferRequest in protobuf text format, or None."""
    lines = ['model_name: "m"']
    if isinstance(body.get("id"), str):
        lines.append("id: %s" % json.dumps(body["id"]))
    for inp in body["inputs"]:
        dt, data, shape = inp.get("datatype"), inp.get("data"), inp.get("shape")
        if dt not in PROTO_FIELD or not isinstance(data, list) or not isinstance(shape, list):
            return None
        vals = [text_value(x) for x in flat(data)]
        if any(v is None for v in vals) or not all(isinstance(s, int) for s in shape):
            return None
        field = PROTO_FIELD[dt]
        lines.append("inputs { name: %s datatype: %s %s contents { %s } }" % (
            json.dumps(str(inp.get("name"))), json.dumps(dt), " ".join("shape: %d" % s for s in shape),
            " ".join("%s: %s" % (field, v) for v in vals)))
    for out in body.get("outputs") or []:
        if isinstance(out, dict) and isinstance(out.get("name"), str):
            lines.append("outputs { name: %s }" % json.dumps(out["name"]))
    params = body.get("parameters") or {}
    for k, v in params.items() if isinstance(params, dict) else []:
        if isinstance(v, bool):
            lines.append('parameters { key: %s value { bool_param: %s } }' % (json.dumps(k), text_value(v)))
        elif isinstance(v, int):
            lines.append('parameters { key: %s value { int64_param: %d } }' % (json.dumps(k), v))
    return "\n".join(lines)


def grpc_raw_text(body):
    """The same request with raw_input_contents, or None."""
    lines = ['model_name: "m"']
    raws = []
    for inp in body["inputs"]:
        dt, data, shape = inp.get("datatype"), inp.get("data"), inp.get("shape")
        if not isinstance(data, list) or not isinstance(shape, list) or dt not in PROTO_FIELD:
            return None
        try:
            if dt == "BYTES":
                raw = b"".join(struct.pack("<I", len(s.encode())) + s.encode() for s in flat(data))
            else:
                raw = struct.pack("<%d%s" % (len(list(flat(data))), PACK[dt]), *flat(data))
        except Exception:
            return None
        lines.append("inputs { name: %s datatype: %s %s }" % (json.dumps(str(inp.get("name"))), json.dumps(dt),
                                                              " ".join("shape: %d" % s for s in shape if isinstance(s, int))))
        raws.append(raw)
    for raw in raws:
        lines.append('raw_input_contents: "%s"' % "".join("\\%03o" % b for b in raw))
    return "\n".join(lines)


def protoc_encode(text):
    try:
        r = subprocess.run(["protoc", "--encode=inference.ModelInferRequest", "-I", os.path.join(ROOT, "proto"),
                            os.path.join(ROOT, "proto", "inference.proto")], input=text.encode(),
                           capture_output=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return r.stdout if r.returncode == 0 else None


def access_log_seeds():
    def rec(status, latency, bin_, fields):
        return struct.pack("<iIq", status, bin_, latency) + b"\x01".join(fields)
    return [
        rec(200, 1234, 512, [b"req-1", b"POST", b"/v2/models/churn/infer", b"churn", b"1"]),
        rec(404, 10, 0, [b"abc", b"GET", b"/v2/models/nope/ready"]),
        rec(400, 99, 7, [b"id \"quoted\" \\", b"PUT", b"/v1/models/m\n:predict", b"m\x7f"]),
        rec(500, -1, 1, [b"\xc3\xa9\xff", b"GET", b"/a" * 40, b"x" * 60, b"2"]),
        rec(200, 2 ** 40, 65535, [b"x" * 128, b"OPTIONS", b"/metrics?" + b"q=" * 100]),
    ]


# Requests the harnesses' own models (tests/fuzz/fuzz_model.h) accept, so that fuzzing starts
# past validation too. The harnesses pick the model from the input's length (size % 4; features:
# size % 2), so each is padded with whitespace to its model's residue.
CHURN_RECORD = {"tenure_months": 3, "monthly_charges": 89.5, "total_charges": 268.5, "support_calls": 2, "age": 29,
                "contract": "month-to-month", "payment_method": "electronic_check"}
MIXED_RECORD = {"x": 1.5, "n": -2, "flag": True, "color": "green", "size": "m", "note": "hello", "y": 0.25}
V2_VALID = [  # (model index, body)
    (0, {"id": "a", "inputs": [{"name": "input", "datatype": "FP32", "shape": [2, 12], "data": [0.5] * 24}],
         "outputs": [{"name": "label"}, {"name": "probabilities", "parameters": {"binary_data": True}}]}),
    (0, {"inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 12], "data": [[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]]}],
         "parameters": {"binary_data_output": True}}),
    (1, {"inputs": [{"name": "num", "datatype": "FP64", "shape": [1, 5], "data": [1, 2.5, -3, 4e10, 5]},
                    {"name": "text", "datatype": "BYTES", "shape": [1, 2], "data": ["a", "b\u00e9"]}]}),
    (2, {"id": "t", "inputs": [{"name": "a", "datatype": "INT32", "shape": [2, 3], "data": [1, -2, 3, 4, 5, 2147483647]},
                               {"name": "b", "datatype": "BYTES", "shape": [2], "data": ["x", ""]},
                               {"name": "c", "datatype": "FP16", "shape": [3], "data": [0.5, 1, 65504]},
                               {"name": "d", "datatype": "BOOL", "shape": [2], "data": [True, False]},
                               {"name": "e", "datatype": "UINT64", "shape": [1], "data": [18446744073709551615]}],
         "outputs": [{"name": "y", "parameters": {"binary_data": False}}]}),
    (3, {"inputs": [{"name": "text", "datatype": "BYTES", "shape": [2], "data": ["great movie", "awful"]}],
         "outputs": [{"name": "label"}, {"name": "probabilities"}]}),
]
TF_VALID = [
    (0, {"instances": [CHURN_RECORD, dict(CHURN_RECORD, age=40)]}),
    (0, {"instances": [[0.5] * 12]}),
    (0, {"inputs": {k: [v] for k, v in CHURN_RECORD.items()}}),
    (1, {"instances": [MIXED_RECORD]}),
    (1, {"inputs": {"num": [[1, 2, 3, 4, 5]], "text": [["a", {"b64": "aGk="}]]}}),
    (2, {"inputs": {"a": [[1, 2], [3, 4]], "b": ["x"], "c": [1, 2, 3], "d": [True], "e": [7]}}),
    (3, {"instances": ["hello", {"b64": "d29ybGQ="}]}),
    (3, {"instances": [{"text": "hello"}]}),
]
MLFLOW_VALID = TF_VALID + [
    (0, {"dataframe_records": [CHURN_RECORD], "params": {"predict_method": "predict_proba"}}),
    (0, {"dataframe_split": {"data": [list(CHURN_RECORD.values())]}}),
    (0, {"instances": [list(CHURN_RECORD.values())]}),
    (1, {"dataframe_split": {"columns": list(MIXED_RECORD), "data": [list(MIXED_RECORD.values())]}}),
    (3, {"dataframe_split": {"data": [["hello"], ["there"]]}}),
]
FEATURES_VALID = [(0, [CHURN_RECORD]), (0, [list(CHURN_RECORD.values())]), (0, {k: [v] for k, v in CHURN_RECORD.items()}),
                  (1, [MIXED_RECORD, dict(MIXED_RECORD, note="")]), (1, {k: [v, v] for k, v in MIXED_RECORD.items()})]


def padded(text, residue, mod):
    while len(text) % mod != residue:
        text += b" "
    return text


def grpc_padded(body, residue):
    """The request as a ModelInferRequest whose size is residue mod 4 (by the id's length)."""
    for pad in range(8):
        t = grpc_text(dict(body, id=(body.get("id") or "") + "p" * pad))
        pb = protoc_encode(t) if t else None
        if pb is not None and len(pb) % 4 == residue:
            return pb
    return None


def valid_seeds(corpora):
    for model, body in V2_VALID:
        text = json.dumps(body).encode()
        corpora["v2_json"].append(padded(text, model, 4))
        b = v2_binary(body)
        if b:  # the harness reads the model from bits 32.. of the 8-byte header length
            hl = struct.unpack("<Q", b[:8])[0] | (model << 32)
            corpora["v2_binary"].append(struct.pack("<Q", hl) + b[8:])
        pb = grpc_padded(body, model)
        if pb is not None:
            corpora["grpc_infer"].append(pb)
    for model, body in TF_VALID:
        corpora["tfserving"].append(padded(json.dumps(body).encode(), model, 4))
    for model, body in MLFLOW_VALID:
        corpora["mlflow"].append(padded(json.dumps(body).encode(), model, 4))
    for model, body in FEATURES_VALID:
        corpora["features"].append(padded(json.dumps(body).encode(), model, 2))


def collect():
    corpora = {k: [] for k in ("v2_json", "v2_binary", "json_numbers", "features", "tfserving", "mlflow",
                               "grpc_infer", "model_config", "access_log")}
    for v in values_from_tests():
        if isinstance(v, bytes):
            for k in ("v2_json", "tfserving", "mlflow", "features", "json_numbers"):
                corpora[k].append(v)
            continue
        d = plain(v)
        if not isinstance(d, dict) or not d:
            continue
        keys = set(d)
        text = json.dumps(d).encode()
        if is_v2(d):
            corpora["v2_json"].append(text)
            corpora["json_numbers"].append(text)
            for inp in d["inputs"]:
                if isinstance(inp.get("data"), list):
                    corpora["json_numbers"].append(json.dumps(inp["data"]).encode())
            b = v2_binary(d)
            if b:
                corpora["v2_binary"].append(b)
            for t in (grpc_text(d), grpc_raw_text(d)):
                pb = protoc_encode(t) if t else None
                if pb is not None:
                    corpora["grpc_infer"].append(pb)
        elif keys & CONFIG_KEYS or (isinstance(d.get("inputs"), list) and d["inputs"] and
                                    all(isinstance(i, dict) and "dims" in i for i in d["inputs"])):
            corpora["model_config"].append(text)
        if keys <= TF_KEYS and keys & {"instances", "inputs"} and not is_v2(d):
            corpora["tfserving"].append(text)
        if keys <= MLFLOW_KEYS and keys & MLFLOW_KEYS and not is_v2(d):
            corpora["mlflow"].append(text)
        if isinstance(d.get("inputs"), (list, dict)) and not is_v2(d):  # /v1 records or columns
            corpora["features"].append(json.dumps(d["inputs"]).encode())
        if isinstance(d.get("dataframe_records"), list):
            corpora["features"].append(json.dumps(d["dataframe_records"]).encode())
        if isinstance(d.get("dataframe_split"), dict) and isinstance(d["dataframe_split"].get("data"), list):
            corpora["features"].append(json.dumps(d["dataframe_split"]["data"]).encode())
    for path in sorted(glob.glob(os.path.join(ROOT, "models", "*", "config.json"))):
        corpora["model_config"].append(open(path, "rb").read())
    corpora["access_log"] = access_log_seeds()
    valid_seeds(corpora)
    return corpora


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(ROOT, "tests", "fuzz", "corpus"))
    ap.add_argument("--minimize", metavar="BUILD_DIR")
    args = ap.parse_args()
    corpora = collect()
    for name, items in corpora.items():
        raw = tempfile.mkdtemp(prefix="corpus-%s-" % name)
        for data in items:
            if 0 < len(data) <= MAX_BYTES:
                with open(os.path.join(raw, hashlib.sha1(data).hexdigest()[:16]), "wb") as f:
                    f.write(data)
        dest = os.path.join(args.out, name)
        shutil.rmtree(dest, ignore_errors=True)
        os.makedirs(dest)
        harness = os.path.join(args.minimize or "", "fuzz_" + name)
        if args.minimize and os.access(harness, os.X_OK):
            subprocess.run([harness, "-merge=1", dest, raw], check=True, capture_output=True)
        else:
            for f in os.listdir(raw):
                shutil.copy(os.path.join(raw, f), dest)
        shutil.rmtree(raw)
        print("%-14s %4d seeds from %d bodies" % (name, len(os.listdir(dest)), len(items)))


if __name__ == "__main__":
    main()
