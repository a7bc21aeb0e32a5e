"""Writes the V2 request bodies the HTTP benchmark sends (one row each, deterministic)."""
import json
import sys

out = sys.argv[1]
churn_row = [24.0, 70.5, 1692.0, 2.0, 41.0, 1.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0]
mlp_row = [((i * 37) % 101) / 101.0 - 0.5 for i in range(256)]
bodies = {
    "churn": {"inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 12], "data": churn_row}],
              "outputs": [{"name": "probabilities"}]},
    "mlp": {"inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 256], "data": mlp_row}]},
}
for name, body in bodies.items():
    with open(f"{out}/{name}.json", "w") as f:
        json.dump(body, f)
