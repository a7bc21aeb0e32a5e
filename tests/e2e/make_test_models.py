#!/usr/bin/python3
"""Write the small ONNX models the end-to-end tests serve.

    /usr/bin/python3 tests/e2e/make_test_models.py OUT_DIR [--broken]

Importable too: write_all(out_dir, broken=False). Every value is fixed, so the files are the
same on every run. Models (OUT_DIR/<name>/<version>/model.onnx, config.json where noted):

  identity_all  no config. One Identity per V2 datatype D (BOOL, UINT8, UINT16, UINT32, UINT64,
                INT8, INT16, INT32, INT64, FP16, FP32, FP64, BYTES): in_<D> [-1, -1] -> out_<D>.
  add_sub       a, b FP32 [N, 4] -> sum = a + b, diff = a - b. max_batch_size 8.
  versioned     versions 1, 2, 3: x FP32 [N, 1] -> y = x * version. Policy {"latest": 2}, so
                versions 2 and 3 serve and 1 does not. max_batch_size 8.
  zipmap        no config. x FP32 [N, 3] -> linear + softmax -> label INT64 [N] (argmax),
                probs_int (ZipMap, int64 keys 0, 1, 2), probs_str (ZipMap, string keys a, b, c).
  nan_ok        x FP32 [-1, -1] -> y (identity); config {"allow_nan": true}.
  slow          x FP32 [-1, -1] -> y = x, after ~50 GFLOP of MatMuls that depend on x (a few
                hundred ms on one thread); config {"onnxruntime": {"intra_op_threads": 1}}.
  broken        only with --broken: 1/model.onnx is garbage bytes, so the model fails to load.

For the scheduler (tests/e2e/test_scheduler.py):

  batched       like add_sub (a, b FP32 [N, 4] -> sum, diff), max_batch_size 8, dynamic batching
                with a 4 ms queue delay.
  batched_bytes s BYTES [N, 2], x INT32 [N, 3] -> s_out = s, x2 = 2 * x; max_batch_size 8,
                dynamic batching with a 4 ms delay (BYTES rows are variable-length).
  slow_queue    the slow model with "queue_policy": {"max_queue_size": 2} (no batch dimension).
  slow_batched  x FP32 [N, 1] -> y = x after the slow model's work (~300 ms per run, whatever N);
                max_batch_size 4, dynamic batching without delay, 3 priority levels (default 2),
                instance_count 1: a request of 4 rows is a batch of its own, so run order is the
                order the scheduler chose.
  gather_fail   idx INT64 [N, 1] -> out = GATHER_TABLE[idx] (FP32 [N, 1]); an index outside
                0..9 fails the run in ONNX Runtime. max_batch_size 8, dynamic batching, 20 ms delay.

For the protocol gaps (tests/e2e/test_protocol_gaps.py; gap_models(), not in write_all):

  bf16          x BF16 [-1, -1] -> y = x (BF16), x32 = float(x) (FP32); g FP32 [-1, -1] ->
                g16 = bfloat16(g) (BF16, ONNX Runtime's Cast rounds to nearest even). No config.
  bf16_nan_ok   the same graph with {"allow_nan": true}.
  constant      no inputs -> c = CONSTANT_C (FP32 [2, 3]), n = [7, -1] (INT64 [2]). No config.
  constant_batched  the constant graph with max_batch_size 4: fails to load (nothing to batch).
"""
import argparse
import json
import os

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

PRODUCER = "inferd tests/e2e/make_test_models.py"

# V2 datatype -> ONNX element type
DATATYPES = {
    "BOOL": TensorProto.BOOL,
    "UINT8": TensorProto.UINT8,
    "UINT16": TensorProto.UINT16,
    "UINT32": TensorProto.UINT32,
    "UINT64": TensorProto.UINT64,
    "INT8": TensorProto.INT8,
    "INT16": TensorProto.INT16,
    "INT32": TensorProto.INT32,
    "INT64": TensorProto.INT64,
    "FP16": TensorProto.FLOAT16,
    "FP32": TensorProto.FLOAT,
    "FP64": TensorProto.DOUBLE,
    "BYTES": TensorProto.STRING,
}

# The slow model: CHAIN products of SIZE x SIZE matrices (2 * SIZE^3 FLOP each).
SLOW_SIZE = 1024
SLOW_CHAIN = 24


def tensor(name, elem_type, shape):
    return helper.make_tensor_value_info(name, elem_type, shape)


def const(name, array):
    return numpy_helper.from_array(np.array(array, order="C"), name)


def zipmap_type_proto(key_type):
    """seq(map(key_type, float)), what ZipMap outputs (onnx 1.12 has no make_map_type_proto)."""
    map_type = onnx.TypeProto()
    map_type.map_type.key_type = key_type
    map_type.map_type.value_type.CopyFrom(helper.make_tensor_type_proto(TensorProto.FLOAT, []))
    return helper.make_sequence_type_proto(map_type)


def model_of(graph, ml=False):
    opsets = [helper.make_opsetid("", 17)]
    if ml:
        opsets.append(helper.make_opsetid("ai.onnx.ml", 3))
    model = helper.make_model(graph, opset_imports=opsets, ir_version=8)
    model.producer_name = PRODUCER
    onnx.checker.check_model(model)
    return model


def save(out_dir, name, model, version=1, config=None):
    vdir = os.path.join(out_dir, name, str(version))
    os.makedirs(vdir, exist_ok=True)
    with open(os.path.join(vdir, "model.onnx"), "wb") as f:
        f.write(model.SerializeToString())
    if config is not None:
        with open(os.path.join(out_dir, name, "config.json"), "w") as f:
            json.dump(config, f, indent=2)
            f.write("\n")


def identity_all():
    nodes, inputs, outputs = [], [], []
    for dt, et in DATATYPES.items():
        nodes.append(helper.make_node("Identity", [f"in_{dt}"], [f"out_{dt}"]))
        inputs.append(tensor(f"in_{dt}", et, [None, None]))
        outputs.append(tensor(f"out_{dt}", et, [None, None]))
    return model_of(helper.make_graph(nodes, "identity_all", inputs, outputs))


def add_sub():
    graph = helper.make_graph(
        [helper.make_node("Add", ["a", "b"], ["sum"]), helper.make_node("Sub", ["a", "b"], ["diff"])],
        "add_sub",
        [tensor("a", TensorProto.FLOAT, ["N", 4]), tensor("b", TensorProto.FLOAT, ["N", 4])],
        [tensor("sum", TensorProto.FLOAT, ["N", 4]), tensor("diff", TensorProto.FLOAT, ["N", 4])])
    config = {
        "max_batch_size": 8,
        "inputs": [{"name": "a", "datatype": "FP32", "dims": [4]},
                   {"name": "b", "datatype": "FP32", "dims": [4]}],
        "outputs": [{"name": "sum", "datatype": "FP32", "dims": [4]},
                    {"name": "diff", "datatype": "FP32", "dims": [4]}],
    }
    return model_of(graph), config


def versioned(version):
    graph = helper.make_graph(
        [helper.make_node("Mul", ["x", "factor"], ["y"])], f"versioned_v{version}",
        [tensor("x", TensorProto.FLOAT, ["N", 1])], [tensor("y", TensorProto.FLOAT, ["N", 1])],
        initializer=[const("factor", np.array([float(version)], np.float32))])
    return model_of(graph)


VERSIONED_CONFIG = {
    "max_batch_size": 8,
    "version_policy": {"latest": 2},
    "inputs": [{"name": "x", "datatype": "FP32", "dims": [1]}],
    "outputs": [{"name": "y", "datatype": "FP32", "dims": [1]}],
}

# zipmap's linear layer: probabilities = softmax(x @ ZIPMAP_W + ZIPMAP_B)
ZIPMAP_W = np.array([[1.0, -1.0, 0.5], [0.0, 2.0, -1.0], [-0.5, 0.25, 1.5]], np.float32)
ZIPMAP_B = np.array([0.1, -0.2, 0.0], np.float32)


def zipmap():
    nodes = [
        helper.make_node("MatMul", ["x", "W"], ["xw"]),
        helper.make_node("Add", ["xw", "B"], ["logits"]),
        helper.make_node("Softmax", ["logits"], ["probabilities"], axis=1),
        helper.make_node("ArgMax", ["probabilities"], ["label"], axis=1, keepdims=0),
        helper.make_node("ZipMap", ["probabilities"], ["probs_int"], domain="ai.onnx.ml",
                         classlabels_int64s=[0, 1, 2]),
        helper.make_node("ZipMap", ["probabilities"], ["probs_str"], domain="ai.onnx.ml",
                         classlabels_strings=["a", "b", "c"]),
    ]
    graph = helper.make_graph(
        nodes, "zipmap", [tensor("x", TensorProto.FLOAT, ["N", 3])],
        [tensor("label", TensorProto.INT64, ["N"]),
         helper.make_value_info("probs_int", zipmap_type_proto(TensorProto.INT64)),
         helper.make_value_info("probs_str", zipmap_type_proto(TensorProto.STRING))],
        initializer=[const("W", ZIPMAP_W), const("B", ZIPMAP_B)])
    return model_of(graph, ml=True)


def nan_ok():
    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "nan_ok",
                              [tensor("x", TensorProto.FLOAT, [None, None])],
                              [tensor("y", TensorProto.FLOAT, [None, None])])
    return model_of(graph), {"allow_nan": True}


def slow_graph(name, shape):
    """y = x, after SLOW_CHAIN dense SIZE x SIZE products that ONNX Runtime cannot fold away.

    The matrices start from sin(sum(x) + a fixed pattern), so they depend on the input; tanh
    after each product keeps values in [-1, 1], so 0 * sum(...) is exactly 0, never NaN. The
    work is the same whatever x's shape.
    """
    n = SLOW_SIZE
    nodes = [
        helper.make_node("ReduceSum", ["x"], ["x_sum"], keepdims=0),
        # pattern[i, j] = i * 0.37 + j * 0.11, built from two Ranges (small file, no 4 MB constant)
        helper.make_node("Range", ["zero", "n_f", "one"], ["ramp"]),
        helper.make_node("Mul", ["ramp", "row_step"], ["rows_1d"]),
        helper.make_node("Unsqueeze", ["rows_1d", "axis1"], ["rows"]),
        helper.make_node("Mul", ["ramp", "col_step"], ["cols"]),
        helper.make_node("Add", ["rows", "cols"], ["pattern"]),
        helper.make_node("Add", ["pattern", "x_sum"], ["shifted"]),
        helper.make_node("Sin", ["shifted"], ["m0"]),
    ]
    prev = "m0"
    for i in range(SLOW_CHAIN):
        nodes.append(helper.make_node("MatMul", [prev, "m0"], [f"p{i}"]))
        nodes.append(helper.make_node("Mul", [f"p{i}", "inv_n"], [f"s{i}"]))
        nodes.append(helper.make_node("Tanh", [f"s{i}"], [f"m{i + 1}"]))
        prev = f"m{i + 1}"
    nodes += [
        helper.make_node("ReduceSum", [prev], ["work"], keepdims=0),
        helper.make_node("Mul", ["work", "zero"], ["nothing"]),
        helper.make_node("Add", ["x", "nothing"], ["y"]),
    ]
    return helper.make_graph(
        nodes, name, [tensor("x", TensorProto.FLOAT, shape)], [tensor("y", TensorProto.FLOAT, shape)],
        initializer=[
            const("zero", np.array(0.0, np.float32)),
            const("one", np.array(1.0, np.float32)),
            const("n_f", np.array(float(n), np.float32)),
            const("row_step", np.array(0.37, np.float32)),
            const("col_step", np.array(0.11, np.float32)),
            const("axis1", np.array([1], np.int64)),
            # products of [-1, 1] entries sum n terms: 1/sqrt(n) keeps them O(1), far from denormals
            const("inv_n", np.array(1.0 / np.sqrt(n), np.float32)),
        ])


def slow():
    return model_of(slow_graph("slow", [None, None])), {"onnxruntime": {"intra_op_threads": 1}}


# --- models for the scheduler tests -----------------------------------------------------------

GATHER_TABLE = np.array([0.5, 1.5, 2.5, 3.5, 4.5, 5.5, 6.5, 7.5, 8.5, 9.5], np.float32)



def batched():
    model, config = add_sub()
    graph = model.graph
    graph.name = "batched"
    config = dict(config, dynamic_batching={"max_queue_delay_us": 4000})
    return model, config


def batched_bytes():
    graph = helper.make_graph(
        [helper.make_node("Identity", ["s"], ["s_out"]), helper.make_node("Mul", ["x", "two"], ["x2"])],
        "batched_bytes",
        [tensor("s", TensorProto.STRING, ["N", 2]), tensor("x", TensorProto.INT32, ["N", 3])],
        [tensor("s_out", TensorProto.STRING, ["N", 2]), tensor("x2", TensorProto.INT32, ["N", 3])],
        initializer=[const("two", np.array(2, np.int32))])
    config = {"max_batch_size": 8, "dynamic_batching": {"max_queue_delay_us": 4000}}
    return model_of(graph), config


def slow_batched():
    """`slow` with a batch dimension: the same work whatever the number of rows."""
    graph = slow_graph("slow_batched", ["N", 1])
    config = {
        "max_batch_size": 4,
        "instance_count": 1,
        "onnxruntime": {"intra_op_threads": 1},
        "dynamic_batching": {"max_queue_delay_us": 0, "priority_levels": 3, "default_priority_level": 2},
    }
    return model_of(graph), config


def gather_fail():
    graph = helper.make_graph(
        [helper.make_node("Gather", ["table", "idx"], ["out"], axis=0)], "gather_fail",
        [tensor("idx", TensorProto.INT64, ["N", 1])], [tensor("out", TensorProto.FLOAT, ["N", 1])],
        initializer=[const("table", GATHER_TABLE)])
    config = {"max_batch_size": 8, "dynamic_batching": {"max_queue_delay_us": 20000}}
    return model_of(graph), config


def scheduler_models():
    model, _ = slow()
    return {
        "batched": batched(),
        "batched_bytes": batched_bytes(),
        "slow_queue": (model, {"onnxruntime": {"intra_op_threads": 1}, "queue_policy": {"max_queue_size": 2}}),
        "slow_batched": slow_batched(),
        "gather_fail": gather_fail(),
    }


CONSTANT_C = [[1.5, -2.0, 0.25], [3.0, 0.0, -0.125]]


def bf16():
    graph = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["y"]),
         helper.make_node("Cast", ["x"], ["x32"], to=TensorProto.FLOAT),
         helper.make_node("Cast", ["g"], ["g16"], to=TensorProto.BFLOAT16)],
        "bf16",
        [tensor("x", TensorProto.BFLOAT16, [None, None]), tensor("g", TensorProto.FLOAT, [None, None])],
        [tensor("y", TensorProto.BFLOAT16, [None, None]), tensor("x32", TensorProto.FLOAT, [None, None]),
         tensor("g16", TensorProto.BFLOAT16, [None, None])])
    return model_of(graph)


def constant():
    graph = helper.make_graph(
        [helper.make_node("Constant", [], ["c"], value=numpy_helper.from_array(np.array(CONSTANT_C, dtype=np.float32))),
         helper.make_node("Constant", [], ["n"], value=numpy_helper.from_array(np.array([7, -1], dtype=np.int64)))],
        "constant", [],
        [tensor("c", TensorProto.FLOAT, [2, 3]), tensor("n", TensorProto.INT64, [2])])
    return model_of(graph)


def gap_models():
    return {
        "bf16": (bf16(), None),
        "bf16_nan_ok": (bf16(), {"allow_nan": True}),
        "constant": (constant(), None),
        "constant_batched": (constant(), {"max_batch_size": 4}),
    }


def write_all(out_dir, broken=False):
    os.makedirs(out_dir, exist_ok=True)
    save(out_dir, "identity_all", identity_all())
    model, config = add_sub()
    save(out_dir, "add_sub", model, config=config)
    for v in (1, 2, 3):
        save(out_dir, "versioned", versioned(v), version=v, config=VERSIONED_CONFIG)
    save(out_dir, "zipmap", zipmap())
    model, config = nan_ok()
    save(out_dir, "nan_ok", model, config=config)
    model, config = slow()
    save(out_dir, "slow", model, config=config)
    for name, (model, config) in scheduler_models().items():
        save(out_dir, name, model, config=config)
    if broken:
        vdir = os.path.join(out_dir, "broken", "1")
        os.makedirs(vdir, exist_ok=True)
        with open(os.path.join(vdir, "model.onnx"), "wb") as f:
            f.write(b"this is not an ONNX model\x00\xff\xfe" + bytes(range(256)))


def main():
    ap = argparse.ArgumentParser(description="Write the models the end-to-end tests serve.")
    ap.add_argument("out_dir")
    ap.add_argument("--broken", action="store_true",
                    help="also write broken/1/model.onnx, garbage that fails to load")
    args = ap.parse_args()
    write_all(args.out_dir, broken=args.broken)


if __name__ == "__main__":
    main()
