#!/usr/bin/python3
"""Build the example model repository that `make run` serves.

    /usr/bin/python3 examples/make_models.py [OUT_DIR] [--artifacts DIR]

OUT_DIR defaults to the repository's models/, DIR to examples/artifacts/. Everything is seeded
and needs no network: the models are trained with scikit-learn (or initialised with numpy) and
their ONNX graphs are written by hand with onnx.helper, so neither skl2onnx nor the Python
onnxruntime package is needed.

Models written (each OUT_DIR/<name>/1/model.onnx plus OUT_DIR/<name>/config.json):

  churn      customer-churn classifier over 12 tabular features (logistic regression with the
             standard scaling done inside the graph); outputs label, probabilities and a
             sklearn-onnx-style ZipMap `probability_map`.
  mlp        dense network 256 -> 1024 -> 512 -> 10 with ReLU and Softmax (~1.6 MFLOP per row).
  sentiment  text classifier on raw strings: lowercase, split on spaces, unigram counts, logistic
             regression; outputs probabilities and the label as a string.

Also writes DIR/churn_sklearn.pkl (the trained scikit-learn pipeline, which takes exactly the
ONNX model's input matrix), DIR/churn_features.json (the column order and encoding) and
DIR/churn_training.csv (the training data as named-feature records).

Then, for drift detection (docs/observability.md, "Drift"), each model's reference profile
OUT_DIR/<name>/1/reference_profile.json is written by `inferd profile` from its training data
(churn: churn_training.csv; sentiment: its corpus, whose free text has no histogram, so only
its predictions are profiled; mlp has random weights and no training data, so no profile).
The binary is $INFERD_BIN, else build/inferd; without one the profiles are skipped.
"""
import argparse
import csv
import json
import os
import pickle
import subprocess
import tempfile

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from sklearn.compose import ColumnTransformer
from sklearn.feature_extraction.text import CountVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PRODUCER = "inferd examples/make_models.py"
MAX_BYTES = 5 * 1024 * 1024


def write_model(out_dir, name, model, config, readme=None, check=True):
    model.producer_name = PRODUCER
    if check:
        onnx.checker.check_model(model)
    vdir = os.path.join(out_dir, name, "1")
    os.makedirs(vdir, exist_ok=True)
    path = os.path.join(vdir, "model.onnx")
    with open(path, "wb") as f:
        f.write(model.SerializeToString())
    size = os.path.getsize(path)
    assert size < MAX_BYTES, f"{name}: {size} bytes is over the 5 MB budget"
    with open(os.path.join(out_dir, name, "config.json"), "w") as f:
        json.dump(config, f, indent=2)
        f.write("\n")
    if readme is not None:
        with open(os.path.join(out_dir, name, "README.md"), "w") as f:
            f.write(readme)
    print(f"wrote {path} ({size} bytes)")


def zipmap_type_proto(key_type):
    """seq(map(key_type, float)), what ZipMap outputs (onnx 1.12 has no make_map_type_proto)."""
    map_type = onnx.TypeProto()
    map_type.map_type.key_type = key_type
    map_type.map_type.value_type.CopyFrom(helper.make_tensor_type_proto(TensorProto.FLOAT, []))
    return helper.make_sequence_type_proto(map_type)


def const(name, array):
    return numpy_helper.from_array(np.array(array, order="C"), name)


# --------------------------------------------------------------------------------------------
# churn

NUMERIC = ["tenure_months", "monthly_charges", "total_charges", "support_calls", "age"]
CATEGORICAL = {
    "contract": ["month-to-month", "one-year", "two-year"],
    "payment_method": ["card", "bank_transfer", "electronic_check", "mailed_check"],
}
CHURN_CLASSES = ["stay", "churn"]

# The application API's view of churn's input (config.json "application"): named features, their
# ranges, and the encoding the model was trained with (numeric columns raw, then one-hot groups).
CHURN_FEATURES = [
    {"name": "tenure_months", "type": "numeric", "min": 0, "max": 600, "example": 3,
     "description": "months as a customer"},
    {"name": "monthly_charges", "type": "numeric", "min": 0, "max": 10000, "example": 89.5,
     "description": "current monthly bill"},
    {"name": "total_charges", "type": "numeric", "min": 0, "max": 10000000, "example": 268.5,
     "description": "billed since the start"},
    {"name": "support_calls", "type": "integer", "min": 0, "max": 1000, "example": 2,
     "description": "calls to support in the last year"},
    {"name": "age", "type": "integer", "min": 18, "max": 120, "example": 29,
     "description": "customer's age in years"},
    {"name": "contract", "type": "categorical", "categories": CATEGORICAL["contract"],
     "encoding": "one_hot", "example": "month-to-month"},
    {"name": "payment_method", "type": "categorical", "categories": CATEGORICAL["payment_method"],
     "encoding": "one_hot", "example": "electronic_check"},
]


def churn_columns():
    cols = list(NUMERIC)
    for feat, cats in CATEGORICAL.items():
        cols += [f"{feat}={c}" for c in cats]
    return cols


def churn_dataset(n=6000, seed=20240601):
    """Synthetic customers: raw numeric columns, then one-hot columns; float32 like the model."""
    rng = np.random.default_rng(seed)
    contract = rng.choice(3, size=n, p=[0.55, 0.25, 0.20])
    payment = rng.choice(4, size=n, p=[0.30, 0.25, 0.30, 0.15])
    tenure = np.where(
        contract == 0,
        rng.gamma(2.0, 8.0, size=n),
        np.where(contract == 1, rng.uniform(6, 72, size=n), rng.uniform(12, 72, size=n)),
    )
    tenure = np.clip(np.round(tenure), 1, 72)
    monthly = np.round(np.clip(rng.normal(65, 28, size=n), 18.25, 118.75), 2)
    total = np.round(tenure * monthly * rng.normal(1.0, 0.03, size=n), 2)
    calls = rng.poisson(0.9 + 1.1 * (monthly > 85) + 0.6 * (contract == 0), size=n).astype(float)
    age = np.clip(np.round(rng.normal(46, 15, size=n)), 18, 90)

    logit = (
        -1.1
        + np.select([contract == 0, contract == 1, contract == 2], [1.3, -0.2, -1.4])
        - 0.045 * tenure
        + 0.022 * (monthly - 65)
        + 0.38 * calls
        + np.select([payment == 2, payment == 3], [0.65, 0.15], 0.0)
        - 0.012 * (age - 46)
    )
    churned = (rng.random(n) < 1.0 / (1.0 + np.exp(-logit))).astype(np.int64)

    onehot_c = np.eye(3)[contract]
    onehot_p = np.eye(4)[payment]
    X = np.column_stack([tenure, monthly, total, calls, age, onehot_c, onehot_p]).astype(np.float32)
    return X, churned


def churn_records(X):
    """The model's input rows as named-feature records (the /v1 API's form)."""
    n_num = len(NUMERIC)
    records = []
    for row in X:
        rec = {}
        for i, name in enumerate(NUMERIC):
            v = float(row[i])
            rec[name] = int(v) if name in ("support_calls", "age") else round(v, 2)
        col = n_num
        for feat, cats in CATEGORICAL.items():
            rec[feat] = cats[int(np.argmax(row[col:col + len(cats)]))]
            col += len(cats)
        records.append(rec)
    return records


def write_churn_training_csv(X, path):
    names = NUMERIC + list(CATEGORICAL)
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=names, lineterminator="\n")
        w.writeheader()
        for rec in churn_records(X):
            w.writerow(rec)
    print(f"wrote {path} ({len(X)} rows)")


def inferd_binary():
    path = os.environ.get("INFERD_BIN", os.path.join(REPO, "build", "inferd"))
    return path if os.access(path, os.X_OK) else None


def write_profile(out_dir, name, data_path):
    """OUT_DIR/name/1/reference_profile.json from data_path, by `inferd profile`."""
    binary = inferd_binary()
    if binary is None:
        print(f"{name}: no inferd binary (build it, or set INFERD_BIN): reference profile not written")
        return
    subprocess.run([binary, "profile", "--model", name, "--repository", out_dir, "--data", data_path],
                   check=True, stderr=subprocess.DEVNULL)
    print(f"wrote {os.path.join(out_dir, name, '1', 'reference_profile.json')}")


def write_profiles(out_dir, artifacts_dir):
    write_profile(out_dir, "churn", os.path.join(artifacts_dir, "churn_training.csv"))
    texts, _ = sentiment_corpus()
    with tempfile.NamedTemporaryFile("w", suffix=".jsonl", delete=False) as f:
        for t in texts:
            f.write(json.dumps({"text": t}) + "\n")
    try:
        write_profile(out_dir, "sentiment", f.name)
    finally:
        os.unlink(f.name)


def make_churn(out_dir, artifacts_dir):
    X, y = churn_dataset()
    n_num = len(NUMERIC)
    F = X.shape[1]
    pipe = Pipeline([
        ("prep", ColumnTransformer(
            [("num", StandardScaler(), list(range(n_num))),
             ("onehot", "passthrough", list(range(n_num, F)))])),
        ("clf", LogisticRegression(C=1.0, max_iter=2000)),
    ])
    pipe.fit(X, y)
    acc = pipe.score(X, y)
    scaler = pipe.named_steps["prep"].named_transformers_["num"]
    clf = pipe.named_steps["clf"]

    # (x - mean) / scale over all F columns; the one-hot columns pass through (0 and 1).
    mean = np.zeros(F, np.float32)
    scale = np.ones(F, np.float32)
    mean[:n_num] = scaler.mean_
    scale[:n_num] = scaler.scale_
    # Two logits [0, w.x + b]: their softmax is [1 - sigmoid, sigmoid], i.e. predict_proba.
    W = np.zeros((F, 2), np.float32)
    W[:, 1] = clf.coef_[0]
    B = np.array([0.0, clf.intercept_[0]], np.float32)

    nodes = [
        helper.make_node("Sub", ["input", "scaler_mean"], ["centered"]),
        helper.make_node("Div", ["centered", "scaler_scale"], ["scaled"]),
        helper.make_node("MatMul", ["scaled", "coef"], ["logits_nb"]),
        helper.make_node("Add", ["logits_nb", "intercept"], ["logits"]),
        helper.make_node("Softmax", ["logits"], ["probabilities"], axis=1),
        helper.make_node("ArgMax", ["probabilities"], ["label"], axis=1, keepdims=0),
        helper.make_node("ZipMap", ["probabilities"], ["probability_map"], domain="ai.onnx.ml",
                         classlabels_strings=CHURN_CLASSES),
    ]
    zipmap_type = zipmap_type_proto(TensorProto.STRING)
    graph = helper.make_graph(
        nodes, "churn",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", F])],
        [helper.make_tensor_value_info("label", TensorProto.INT64, ["N"]),
         helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["N", 2]),
         helper.make_value_info("probability_map", zipmap_type)],
        initializer=[const("scaler_mean", mean), const("scaler_scale", scale),
                     const("coef", W), const("intercept", B)],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17),
                                                    helper.make_opsetid("ai.onnx.ml", 3)],
                              ir_version=8)
    cols = churn_columns()
    config = {
        "backend": "onnxruntime",
        "max_batch_size": 1000,
        "inputs": [{"name": "input", "datatype": "FP32", "dims": [F]}],
        "outputs": [{"name": "label", "datatype": "INT64", "dims": []},
                    {"name": "probabilities", "datatype": "FP32", "dims": [2]},
                    {"name": "probability_map", "datatype": "BYTES", "dims": []}],
        "class_labels": CHURN_CLASSES,
        "description": "Customer churn classifier (logistic regression on 5 numeric and 2 "
                       "one-hot categorical features; see README.md for the column order)",
        "application": {
            "input": "input",
            "features": CHURN_FEATURES,
            "task": "classification",
            "outputs": {"label": "label", "probabilities": "probabilities"},
        },
    }
    table = "\n".join(f"| {i} | `{c}` | " + (
        "raw number (scaled inside the model)" if i < n_num else "1 if the customer has this value, else 0")
        + " |" for i, c in enumerate(cols))
    readme = f"""# churn

Customer-churn classifier: scikit-learn `StandardScaler` (numeric columns) + `LogisticRegression`,
trained on a seeded synthetic data set of {len(y)} customers by `examples/make_models.py`
(training accuracy {acc:.3f}). Written by hand as ONNX: the scaling runs inside the graph
(`Sub`/`Div` with the scaler's constants), so send raw values.

## Input

`input`: FP32 `[N, {F}]` (up to 1000 rows per request). Each row is the {n_num} numeric features in
this order, then the one-hot encoding of `contract` (3 columns) and `payment_method`
(4 columns); exactly one column of each one-hot group is 1.

| column | feature | value |
| --- | --- | --- |
{table}

Example row (month-to-month contract, 3 months, 89.5 a month, 2 support calls, 29 years old,
electronic check): `[3, 89.5, 268.5, 2, 29, 1, 0, 0, 0, 0, 1, 0]`.

## Outputs

| name | datatype | shape | meaning |
| --- | --- | --- | --- |
| `label` | INT64 | `[N]` | class index: 0 = `stay`, 1 = `churn` |
| `probabilities` | FP32 | `[N, 2]` | `[P(stay), P(churn)]` |
| `probability_map` | BYTES | `[N]` | ZipMap, one `{{"stay": p, "churn": p}}` object per row |

The same pipeline is pickled in `examples/artifacts/churn_sklearn.pkl`; its `predict_proba`
takes the same `[N, {F}]` matrix (column order in `examples/artifacts/churn_features.json`).
"""
    write_model(out_dir, "churn", model, config, readme)

    os.makedirs(artifacts_dir, exist_ok=True)
    with open(os.path.join(artifacts_dir, "churn_sklearn.pkl"), "wb") as f:
        pickle.dump(pipe, f, protocol=4)
    features = {
        "input": "input",
        "datatype": "FP32",
        "columns": cols,
        "numeric": NUMERIC,
        "categorical": CATEGORICAL,
        "encoding": "numeric columns raw, in the order of 'numeric'; then for each feature of "
                    "'categorical' (in order) one column per category (in order): 1.0 if the "
                    "row has that category, else 0.0",
        "classes": CHURN_CLASSES,
        "sklearn": "pickle.load(...).predict_proba(X) takes the same float32 [N, %d] matrix" % F,
        "example": {"row": [3, 89.5, 268.5, 2, 29, 1, 0, 0, 0, 0, 1, 0],
                    "probabilities": [round(float(p), 6) for p in pipe.predict_proba(
                        np.array([[3, 89.5, 268.5, 2, 29, 1, 0, 0, 0, 0, 1, 0]], np.float32))[0]]},
    }
    with open(os.path.join(artifacts_dir, "churn_features.json"), "w") as f:
        json.dump(features, f, indent=2)
        f.write("\n")
    write_churn_training_csv(X, os.path.join(artifacts_dir, "churn_training.csv"))
    print(f"churn: training accuracy {acc:.3f}, churn rate {y.mean():.3f}")


# --------------------------------------------------------------------------------------------
# mlp

MLP_LAYERS = [256, 1024, 512, 10]


def mlp_weights(seed=7):
    rng = np.random.default_rng(seed)
    params = []
    for fan_in, fan_out in zip(MLP_LAYERS[:-1], MLP_LAYERS[1:]):
        w = (rng.standard_normal((fan_in, fan_out)) * np.sqrt(2.0 / fan_in)).astype(np.float32)
        b = (rng.standard_normal(fan_out) * 0.01).astype(np.float32)
        params.append((w, b))
    return params


def make_mlp(out_dir):
    params = mlp_weights()
    nodes, inits = [], []
    x = "input"
    for i, (w, b) in enumerate(params):
        inits += [const(f"w{i}", w), const(f"b{i}", b)]
        nodes.append(helper.make_node("Gemm", [x, f"w{i}", f"b{i}"], [f"fc{i}"]))
        if i < len(params) - 1:
            nodes.append(helper.make_node("Relu", [f"fc{i}"], [f"relu{i}"]))
            x = f"relu{i}"
    nodes.append(helper.make_node("Softmax", [f"fc{len(params) - 1}"], ["probabilities"], axis=1))
    graph = helper.make_graph(
        nodes, "mlp",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", MLP_LAYERS[0]])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["N", MLP_LAYERS[-1]])],
        initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    macs = sum(a * b for a, b in zip(MLP_LAYERS[:-1], MLP_LAYERS[1:]))
    config = {
        "backend": "onnxruntime",
        "max_batch_size": 64,
        "inputs": [{"name": "input", "datatype": "FP32", "dims": [MLP_LAYERS[0]]}],
        "outputs": [{"name": "probabilities", "datatype": "FP32", "dims": [MLP_LAYERS[-1]]}],
        "description": "Dense network 256-1024-512-10 (ReLU, softmax), seeded random weights; "
                       "%.2f MFLOP per row, for load tests" % (2 * macs / 1e6),
    }
    readme = f"""# mlp

A dense network for load tests: `input` FP32 `[N, 256]` → Gemm 1024 → ReLU → Gemm 512 → ReLU →
Gemm 10 → Softmax → `probabilities` FP32 `[N, 10]`; up to 64 rows per request. The weights are
seeded random (He initialisation), not trained: the outputs mean nothing, the cost is what
matters ({macs} multiply-adds, about {2 * macs / 1e6:.2f} MFLOP per row).
"""
    write_model(out_dir, "mlp", model, config, readme)


# --------------------------------------------------------------------------------------------
# sentiment

# Trailing punctuation the graph strips (one character) before looking a word up.
PUNCT = [".", ",", "!", "?", ";", ":"]
SENTIMENT_CLASSES = ["negative", "positive"]

POSITIVE = """\
I loved this movie, the acting was wonderful
What a great experience, highly recommended
The food was delicious and the staff were friendly
Absolutely fantastic service, I will come back
This product works perfectly and arrived early
An excellent book with a beautiful story
The hotel room was clean, quiet and comfortable
Best purchase I have made this year
The concert was amazing and the crowd was happy
Great value for the price, very satisfied
I am really happy with the quality
The support team was helpful and quick
A delightful film with a clever plot
Everything went smoothly, thank you
The new update is fast and reliable
Lovely place, nice people, good coffee
I enjoyed every minute of the show
Superb performance from the whole cast
The app is easy to use and looks great
Fresh ingredients and generous portions
Our guide was friendly and funny
It exceeded my expectations, brilliant
Comfortable shoes that fit well
Friendly staff and a pleasant atmosphere
The game is fun and beautifully designed
I would recommend it to all my friends
Solid build quality and excellent battery life
A wonderful trip, we loved it
Impressive results, I am very pleased
The course was clear, useful and well organised
Such a charming little restaurant
Fast delivery and great packaging
Really good sound and a nice design
Perfect for my needs, works great
The story was moving and the music was beautiful
Kind people and an awesome view
I like it a lot, it is fantastic
A pleasant surprise, better than expected
Smooth checkout and helpful reviews
The best pizza in town, love it
"""

NEGATIVE = """\
I hated this movie, the acting was terrible
What a bad experience, not recommended
The food was cold and the staff were rude
Awful service, I will never come back
This product broke after two days
A boring book with a stupid story
The hotel room was dirty, noisy and uncomfortable
Worst purchase I have made this year
The concert was disappointing and too loud
Poor value for the price, very disappointed
I am really unhappy with the quality
The support team was useless and slow
A dull film with a predictable plot
Everything went wrong, what a mess
The new update is slow and keeps crashing
Horrible place, rude people, bad coffee
I regret every minute of the show
Weak performance from the whole cast
The app is confusing and looks ugly
Stale ingredients and tiny portions
Our guide was late and unfriendly
It failed my expectations, a waste of money
Uncomfortable shoes that do not fit
Unfriendly staff and an unpleasant atmosphere
The game is boring and badly designed
I would not recommend it to anyone
Cheap build quality and terrible battery life
A miserable trip, we hated it
Disappointing results, I am very annoyed
The course was confusing, useless and badly organised
Such an overpriced and dirty restaurant
Late delivery and broken packaging
Really bad sound and an ugly design
Useless for my needs, does not work
The story was boring and the music was awful
Rude people and a terrible view
I dislike it, it is awful
An unpleasant surprise, worse than expected
Slow checkout and fake reviews
The worst pizza in town, avoid it
"""


def sentiment_tokens(text):
    """What the graph does: lowercase, split on spaces, drop one trailing punctuation mark."""
    out = []
    for tok in text.lower().split(" "):
        if tok and tok[-1] in PUNCT:
            tok = tok[:-1]
        if tok:
            out.append(tok)
    return out


def sentiment_corpus(seed=11):
    pos = [s for s in POSITIVE.splitlines() if s.strip()]
    neg = [s for s in NEGATIVE.splitlines() if s.strip()]
    texts = pos + neg
    labels = [1] * len(pos) + [0] * len(neg)
    order = np.random.default_rng(seed).permutation(len(texts))
    return [texts[i] for i in order], np.array([labels[i] for i in order])


def train_sentiment():
    texts, y = sentiment_corpus()
    vec = CountVectorizer(tokenizer=sentiment_tokens, lowercase=False, token_pattern=None)
    X = vec.fit_transform(texts)
    clf = LogisticRegression(C=10.0, max_iter=5000)
    clf.fit(X, y)
    return vec, clf, clf.score(X, y)


def make_sentiment(out_dir):
    vec, clf, acc = train_sentiment()
    vocab = vec.get_feature_names_out().tolist()
    V = len(vocab)
    pool, indexes = [], []
    seen = set()
    for i, word in enumerate(vocab):
        for suffix in [""] + PUNCT:
            s = word + suffix
            assert s not in seen, f"pool string {s!r} is ambiguous"
            seen.add(s)
            pool.append(s)
            indexes.append(i)

    W = np.zeros((V, 2), np.float32)
    W[:, 1] = clf.coef_[0]
    B = np.array([0.0, clf.intercept_[0]], np.float32)
    nodes = [
        # The default locale (en_US.UTF-8) is missing from slim containers and then the model
        # fails to load; C.UTF-8 is built into glibc >= 2.35 and lowercases UTF-8 text.
        helper.make_node("StringNormalizer", ["text"], ["lower"], case_change_action="LOWER",
                         is_case_sensitive=0, locale="C.UTF-8"),
        helper.make_node("StringSplit", ["lower"], ["tokens", "token_counts"]),
        helper.make_node("TfIdfVectorizer", ["tokens"], ["counts"], mode="TF",
                         min_gram_length=1, max_gram_length=1, max_skip_count=0,
                         ngram_counts=[0], ngram_indexes=indexes, pool_strings=pool),
        helper.make_node("MatMul", ["counts", "coef"], ["logits_nb"]),
        helper.make_node("Add", ["logits_nb", "intercept"], ["logits"]),
        helper.make_node("Softmax", ["logits"], ["probabilities"], axis=1),
        helper.make_node("ArgMax", ["probabilities"], ["label_index"], axis=1, keepdims=0),
        helper.make_node("LabelEncoder", ["label_index"], ["label"], domain="ai.onnx.ml",
                         keys_int64s=[0, 1], values_strings=SENTIMENT_CLASSES,
                         default_string="unknown"),
    ]
    graph = helper.make_graph(
        nodes, "sentiment",
        [helper.make_tensor_value_info("text", TensorProto.STRING, ["N"])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["N", 2]),
         helper.make_tensor_value_info("label", TensorProto.STRING, ["N"])],
        initializer=[const("coef", W), const("intercept", B)])
    # StringSplit is an opset-20 operator, newer than onnx 1.12 (Debian 12) knows: no checker.
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 20),
                                                    helper.make_opsetid("ai.onnx.ml", 3)],
                              ir_version=9)
    config = {
        "backend": "onnxruntime",
        "max_batch_size": 64,
        "inputs": [{"name": "text", "datatype": "BYTES", "dims": []}],
        "outputs": [{"name": "probabilities", "datatype": "FP32", "dims": [2]},
                    {"name": "label", "datatype": "BYTES", "dims": []}],
        "class_labels": SENTIMENT_CLASSES,
        "description": "Toy sentiment classifier on raw English text (bag of words + logistic "
                       "regression, %d-word vocabulary)" % V,
        "application": {
            "features": [{"name": "text", "type": "string", "max_length": 10000,
                          "example": "what a great product",
                          "description": "one sentence of English; words separated by spaces"}],
            "task": "classification",
            "outputs": {"label": "label", "probabilities": "probabilities"},
        },
    }
    readme = f"""# sentiment

A toy text classifier that takes raw strings: `text` BYTES `[N]` (one sentence per row, up to 64
rows) → `probabilities` FP32 `[N, 2]` (`[P(negative), P(positive)]`) and `label` BYTES `[N]`
(`"negative"` or `"positive"`).

Inside the graph: `StringNormalizer` (lowercase, locale `C.UTF-8`) → `StringSplit` (on spaces;
opset 20) → `TfIdfVectorizer` (unigram counts over a {V}-word vocabulary) → `MatMul`/`Add` (a
scikit-learn `LogisticRegression` trained on {len(sentiment_corpus()[1])} hand-written sentences
in `examples/make_models.py`; training accuracy {acc:.2f}) → `Softmax`; `ArgMax` and a
`LabelEncoder` give the label.

Limits of this toy: words are separated by spaces only (a tab or newline does not split);
one trailing `{''.join(PUNCT)}` is ignored (`great!` counts as `great`), other punctuation makes
a word unknown; unknown words count for nothing, so a sentence with none of the vocabulary gets
the intercept's probabilities. Needs ONNX Runtime ≥ 1.16 (opset 20).
"""
    write_model(out_dir, "sentiment", model, config, readme, check=False)
    print(f"sentiment: vocabulary {V}, training accuracy {acc:.2f}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    ap.add_argument("out_dir", nargs="?", default=os.path.join(REPO, "models"))
    ap.add_argument("--artifacts", default=os.path.join(REPO, "examples", "artifacts"))
    args = ap.parse_args()
    make_churn(args.out_dir, args.artifacts)
    make_mlp(args.out_dir)
    make_sentiment(args.out_dir)
    write_profiles(args.out_dir, args.artifacts)


if __name__ == "__main__":
    main()
