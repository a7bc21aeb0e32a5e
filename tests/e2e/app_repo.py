"""The model repository the application-API tests serve (test_v1_*, test_tfserving*,
test_mlflow*, test_openapi*, the browser test).

  churn      the example model (models/churn, copied) with a model card in its folder.
  reg        a regressor: x FP32 [N, 3] -> value FP32 [N, 1] = a + 2*b + 10*colour_index + 0.5,
             features a (numeric), b (integer, optional, default 1, 0..100),
             colour (categorical, index-encoded: red 0, green 1, blue 2); versions 1 and 2
             (version 2 adds 100), policy all, and a model card in version 2's folder.
  sentiment  the example text model (copied).
  plain      no application section: x FP32 [N, 2] -> y = x * 2.
  badapp     churn with an application section naming an unknown type: fails to load.
"""
import json
import os
import shutil

import numpy as np
from onnx import TensorProto, helper, numpy_helper

from conftest import EXAMPLE_REPO

PRODUCER = "inferd tests/e2e/app_repo.py"

CHURN_RECORD = {"tenure_months": 3, "monthly_charges": 89.5, "total_charges": 268.5, "support_calls": 2,
                "age": 29, "contract": "month-to-month", "payment_method": "electronic_check"}
CHURN_ROW = [3, 89.5, 268.5, 2, 29, 1, 0, 0, 0, 0, 1, 0]
CHURN_P = 0.901401  # P(churn) for CHURN_RECORD, from the scikit-learn pipeline


def _model(graph):
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    m.producer_name = PRODUCER
    return m


def _save(root, name, model, version=1, config=None):
    vdir = os.path.join(root, name, str(version))
    os.makedirs(vdir, exist_ok=True)
    with open(os.path.join(vdir, "model.onnx"), "wb") as f:
        f.write(model.SerializeToString())
    if config is not None:
        with open(os.path.join(root, name, "config.json"), "w") as f:
            json.dump(config, f, indent=2)


def reg_model(offset):
    w = numpy_helper.from_array(np.array([[1.0], [2.0], [10.0]], np.float32), "w")
    b = numpy_helper.from_array(np.array([0.5 + offset], np.float32), "b")
    g = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["xw"]), helper.make_node("Add", ["xw", "b"], ["value"])],
        "reg", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3])],
        [helper.make_tensor_value_info("value", TensorProto.FLOAT, ["N", 1])], initializer=[w, b])
    return _model(g)


REG_CONFIG = {
    "max_batch_size": 16,
    "version_policy": {"all": True},
    "description": "test regressor",
    "application": {
        "task": "regression",
        "features": [
            {"name": "a", "type": "numeric", "description": "any number"},
            {"name": "b", "type": "integer", "min": 0, "max": 100, "required": False, "default": 1},
            {"name": "colour", "type": "categorical", "categories": ["red", "green", "blue"], "encoding": "index"},
        ],
        "outputs": {"value": "value"},
    },
}


def plain_model():
    two = numpy_helper.from_array(np.array([2.0], np.float32), "two")
    g = helper.make_graph([helper.make_node("Mul", ["x", "two"], ["y"])], "plain",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 2])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 2])], initializer=[two])
    return _model(g)


def write_repo(root, broken=True):
    os.makedirs(root, exist_ok=True)
    for name in ("churn", "sentiment"):
        shutil.copytree(os.path.join(EXAMPLE_REPO, name), os.path.join(root, name), dirs_exist_ok=True)
    with open(os.path.join(root, "churn", "model_card.json"), "w") as f:
        json.dump({"description": "Predicts which customers will leave (test card)",
                   "metrics": {"accuracy": 0.791, "roc_auc": 0.84}, "owner": "tests"}, f)
    _save(root, "reg", reg_model(0.0), 1, REG_CONFIG)
    _save(root, "reg", reg_model(100.0), 2)
    with open(os.path.join(root, "reg", "2", "model_card.json"), "w") as f:
        json.dump({"description": "version two", "metrics": {"rmse": 0.0}}, f)
    _save(root, "plain", plain_model(), 1, {"max_batch_size": 8})
    if broken:
        shutil.copytree(os.path.join(EXAMPLE_REPO, "churn"), os.path.join(root, "badapp"), dirs_exist_ok=True)
        with open(os.path.join(root, "badapp", "config.json")) as f:
            cfg = json.load(f)
        cfg["application"]["features"][1]["type"] = "number"
        with open(os.path.join(root, "badapp", "config.json"), "w") as f:
            json.dump(cfg, f)
    return root
