"""gRPC helpers for the end-to-end tests.

Python stubs for proto/*.proto are generated at test time into a temporary folder with
Debian's protoc (protobuf-compiler) and gRPC Python plugin (protobuf-compiler-grpc's
grpc_python_plugin), and imported from there: the tests exercise the .proto files as they are in
the tree. The client is Debian's python3-grpcio.

    from grpc_stubs import pb, pbg, hpb, hpg, grpc_server, ...
"""

import atexit
import contextlib
import glob
import importlib
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time

import grpc
import numpy as np
import pytest

from conftest import REPO_ROOT, V2_NUMPY, Server, decode_bytes_elements, encode_bytes_elements, free_port, timeout

PROTO_DIR = os.path.join(REPO_ROOT, "proto")
PROTOC = shutil.which("protoc") or "/usr/bin/protoc"
GRPC_PYTHON_PLUGIN = shutil.which("grpc_python_plugin") or "/usr/bin/grpc_python_plugin"


def _generate():
    for tool, pkg in ((PROTOC, "protobuf-compiler"), (GRPC_PYTHON_PLUGIN, "protobuf-compiler-grpc")):
        assert os.path.exists(tool), f"{tool} not found: install Debian's {pkg} (scripts/bootstrap.sh does)"
    out = tempfile.mkdtemp(prefix="inferd-grpc-stubs-")
    atexit.register(shutil.rmtree, out, True)
    protos = sorted(glob.glob(os.path.join(PROTO_DIR, "*.proto")))
    cmd = [PROTOC, f"-I{PROTO_DIR}", f"--python_out={out}", f"--grpc_out={out}",
           f"--plugin=protoc-gen-grpc={GRPC_PYTHON_PLUGIN}"] + protos
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, f"{cmd} failed:\n{res.stdout}\n{res.stderr}"
    sys.path.insert(0, out)
    return out


STUBS_DIR = _generate()
pb = importlib.import_module("inference_pb2")
pbg = importlib.import_module("inference_pb2_grpc")
hpb = importlib.import_module("health_pb2")
hpg = importlib.import_module("health_pb2_grpc")
try:
    mspb = importlib.import_module("model_service_pb2")
    mspg = importlib.import_module("model_service_pb2_grpc")
except ImportError:  # proto/model_service.proto not there
    mspb = mspg = None

SERVING = hpb.HealthCheckResponse.SERVING
NOT_SERVING = hpb.HealthCheckResponse.NOT_SERVING
SERVICE_UNKNOWN = hpb.HealthCheckResponse.SERVICE_UNKNOWN

# --------------------------------------------------------------------------------------------
# servers and channels


def start_grpc_server(repo, workdir, args=(), env=None, wait_ready=True, grpc_port=None):
    """Starts inferd with a gRPC port of its own (srv.grpc_port)."""
    port = grpc_port or free_port()
    srv = Server(repo, args=["--grpc-port", str(port)] + list(args), env=env, workdir=workdir)
    srv.grpc_port = port
    srv.start(wait_ready=wait_ready)
    return srv


def channel(srv, max_message_bytes=None):
    opts = []
    if max_message_bytes:
        opts = [("grpc.max_send_message_length", max_message_bytes),
                ("grpc.max_receive_message_length", max_message_bytes)]
    ch = grpc.insecure_channel(f"127.0.0.1:{srv.grpc_port}", options=opts)
    grpc.channel_ready_future(ch).result(timeout=timeout(20))
    return ch


class GrpcServer:
    """A running server and stubs on one channel to it."""

    def __init__(self, srv, max_message_bytes=None):
        self.srv = srv
        self.channel = channel(srv, max_message_bytes)
        self.infer = pbg.GRPCInferenceServiceStub(self.channel)
        self.health = hpg.HealthStub(self.channel)
        self.app = mspg.ModelServiceStub(self.channel) if mspg else None

    def close(self):
        self.channel.close()


@contextlib.contextmanager
def running_grpc_server(repo, workdir, args=(), env=None, wait_ready=True, max_message_bytes=None):
    srv = start_grpc_server(repo, workdir, args=args, env=env, wait_ready=wait_ready)
    g = None
    try:
        g = GrpcServer(srv, max_message_bytes)
        yield g
    finally:
        if g:
            g.close()
        if srv.alive():
            srv.stop()
    srv.check_clean_exit()


@pytest.fixture(scope="module")
def grpc_server(test_models_dir, logs_dir):
    """One server on the test repository with gRPC, for a test module."""
    with running_grpc_server(test_models_dir, logs_dir) as g:
        yield g


@pytest.fixture(scope="module")
def grpc_examples(logs_dir):
    """One server on the example repository (models/), for a test module."""
    with running_grpc_server(os.path.join(REPO_ROOT, "models"), logs_dir) as g:
        yield g


@pytest.fixture
def grpc_server_factory(logs_dir):
    """Starts extra gRPC servers; each is stopped (SIGTERM, exit 0) at teardown."""
    started = []

    def start(repo, args=(), env=None, wait_ready=True, max_message_bytes=None):
        srv = start_grpc_server(repo, logs_dir, args=args, env=env, wait_ready=wait_ready)
        g = GrpcServer(srv, max_message_bytes)
        started.append(g)
        return g

    yield start
    errors = []
    for g in started:
        g.close()
        if g.srv.alive():
            g.srv.stop()
        try:
            g.srv.check_clean_exit()
        except AssertionError as exc:
            errors.append(str(exc))
    assert not errors, "\n\n".join(errors)


def rpc_error(fn, *args, **kw):
    """Calls fn expecting a gRPC error; returns it (code() and details())."""
    try:
        res = fn(*args, **kw)
    except grpc.RpcError as exc:
        return exc
    raise AssertionError(f"expected a gRPC error, got {res!r}")


def assert_rpc_error(fn, req, code, *needles, **kw):
    kw.setdefault("timeout", timeout(30))
    err = rpc_error(fn, req, **kw)
    assert err.code() == code, f"expected {code}, got {err.code()}: {err.details()!r}"
    msg = err.details() or ""
    for n in needles:
        assert n.lower() in msg.lower(), f"error message {msg!r} does not mention {n!r}"
    return msg


# --------------------------------------------------------------------------------------------
# tensors <-> messages

TYPED_FIELD = {
    "BOOL": "bool_contents", "UINT8": "uint_contents", "UINT16": "uint_contents", "UINT32": "uint_contents",
    "UINT64": "uint64_contents", "INT8": "int_contents", "INT16": "int_contents", "INT32": "int_contents",
    "INT64": "int64_contents", "FP16": "fp32_contents", "FP32": "fp32_contents", "FP64": "fp64_contents",
    "BYTES": "bytes_contents",
}


def raw_bytes(datatype, values):
    if datatype == "BYTES":
        flat = np.asarray(values, dtype=object).reshape(-1).tolist()
        return encode_bytes_elements([v.encode() if isinstance(v, str) else v for v in flat])
    return np.ascontiguousarray(np.asarray(values, dtype=V2_NUMPY[datatype])).tobytes()


def add_input(req, name, datatype, values, raw=False, shape=None):
    """Appends an input tensor to a ModelInferRequest, typed or raw."""
    arr = np.asarray(values, dtype=object if datatype == "BYTES" else V2_NUMPY[datatype])
    t = req.inputs.add()
    t.name = name
    t.datatype = datatype
    t.shape.extend(list(arr.shape) if shape is None else shape)
    if raw:
        req.raw_input_contents.append(raw_bytes(datatype, arr))
        return t
    flat = arr.reshape(-1).tolist()
    if datatype == "BYTES":
        flat = [v.encode() if isinstance(v, str) else v for v in flat]
    getattr(t.contents, TYPED_FIELD[datatype]).extend(flat)
    return t


def infer_request(model, inputs, outputs=(), raw=False, version="", request_id="", parameters=None):
    """inputs: [(name, datatype, values)]."""
    req = pb.ModelInferRequest(model_name=model, model_version=version, id=request_id)
    for name, dt, values in inputs:
        add_input(req, name, dt, values, raw=raw)
    for o in outputs:
        req.outputs.add().name = o
    for k, v in (parameters or {}).items():
        p = req.parameters[k]
        if isinstance(v, bool):
            p.bool_param = v
        elif isinstance(v, int):
            p.int64_param = v
        else:
            p.string_param = v
    return req


def output_arrays(resp):
    """{name: (datatype, numpy array)} from a ModelInferResponse, raw or typed."""
    out = {}
    raw = list(resp.raw_output_contents)
    assert not raw or len(raw) == len(resp.outputs), "raw_output_contents must have one entry per output"
    for i, o in enumerate(resp.outputs):
        shape = list(o.shape)
        if raw:
            assert not o.HasField("contents"), f"output {o.name} has both raw and typed contents"
            if o.datatype == "BYTES":
                arr = np.array(decode_bytes_elements(raw[i]), dtype=object).reshape(shape)
            else:
                arr = np.frombuffer(raw[i], dtype=V2_NUMPY[o.datatype]).reshape(shape)
        else:
            vals = list(getattr(o.contents, TYPED_FIELD[o.datatype]))
            if o.datatype == "BYTES":
                arr = np.array(vals, dtype=object).reshape(shape)
            else:
                arr = np.array(vals, dtype=V2_NUMPY[o.datatype]).reshape(shape)
        out[o.name] = (o.datatype, arr)
    return out


class Background:
    """Runs fn in a thread; .result() re-raises what it raised."""

    def __init__(self, fn, *args, **kw):
        self.value = self.exc = None
        self.started = time.monotonic()
        self.t = threading.Thread(target=self._run, args=(fn, args, kw), daemon=True)
        self.t.start()

    def _run(self, fn, args, kw):
        try:
            self.value = fn(*args, **kw)
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            self.exc = exc
        self.finished = time.monotonic()

    def result(self, seconds=None):
        self.t.join(timeout(60) if seconds is None else seconds)
        assert not self.t.is_alive(), "background call did not finish"
        if self.exc:
            raise self.exc
        return self.value

    def error(self, seconds=None):
        self.t.join(timeout(60) if seconds is None else seconds)
        assert not self.t.is_alive(), "background call did not finish"
        assert isinstance(self.exc, grpc.RpcError), f"expected a gRPC error, got {self.value!r} / {self.exc!r}"
        return self.exc
