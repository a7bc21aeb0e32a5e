"""The peer inferd is compared with: the design ML-serving tutorials teach. FastAPI + uvicorn +
scikit-learn, the trained churn pipeline unpickled once at start-up, a Pydantic model that
validates the named features, and the same /v1 predict request and answer shape as inferd.

    /usr/bin/python3 -m uvicorn --app-dir bench/peers/fastapi app:app --port 8100 --workers 2

Everything comes from Debian's packages (python3-fastapi, python3-uvicorn, python3-sklearn).
The model is examples/artifacts/churn_sklearn.pkl: the pipeline inferd's models/churn was
exported from; it takes the same float32 [N, 12] matrix (numeric columns raw, then one-hot).
"""
import os
import pickle
import time
import uuid
from typing import Dict, List, Literal, Optional

import numpy as np
from fastapi import FastAPI, HTTPException
from pydantic import BaseModel, Field

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
MODEL_PATH = os.environ.get("CHURN_PKL", os.path.join(REPO, "examples", "artifacts", "churn_sklearn.pkl"))
CLASSES = ["stay", "churn"]
CONTRACTS = ["month-to-month", "one-year", "two-year"]
PAYMENTS = ["card", "bank_transfer", "electronic_check", "mailed_check"]


class Customer(BaseModel):
    tenure_months: float = Field(..., ge=0, le=600)
    monthly_charges: float = Field(..., ge=0, le=10000)
    total_charges: float = Field(..., ge=0, le=10000000)
    support_calls: int = Field(..., ge=0, le=1000)
    age: int = Field(..., ge=18, le=120)
    contract: Literal["month-to-month", "one-year", "two-year"]
    payment_method: Literal["card", "bank_transfer", "electronic_check", "mailed_check"]

    class Config:
        extra = "forbid"


class Parameters(BaseModel):
    return_probabilities: bool = True
    top_k: Optional[int] = Field(None, ge=1)


class PredictRequest(BaseModel):
    inputs: List[Customer] = Field(..., min_items=1, max_items=1000)
    parameters: Parameters = Parameters()


class Result(BaseModel):
    label: str
    score: float
    probabilities: Optional[Dict[str, float]] = None


class PredictResponse(BaseModel):
    id: str
    model: str
    model_version: str
    created: int
    results: List[Result]
    usage: Dict[str, int]
    inference_time_ms: float


app = FastAPI(title="churn (FastAPI peer)")
model = None


@app.on_event("startup")
def load_model():
    global model
    with open(MODEL_PATH, "rb") as f:
        model = pickle.load(f)


def encode(c: Customer) -> List[float]:
    row = [c.tenure_months, c.monthly_charges, c.total_charges, c.support_calls, c.age]
    row += [1.0 if c.contract == v else 0.0 for v in CONTRACTS]
    row += [1.0 if c.payment_method == v else 0.0 for v in PAYMENTS]
    return row


@app.get("/health")
def health():
    return {"status": "ready" if model is not None else "loading"}


@app.post("/v1/models/churn/predict", response_model=PredictResponse)
def predict(req: PredictRequest):
    if model is None:
        raise HTTPException(503, "model not loaded")
    x = np.array([encode(c) for c in req.inputs], dtype=np.float32)
    t0 = time.perf_counter()
    proba = model.predict_proba(x)
    ms = (time.perf_counter() - t0) * 1000
    results = []
    for p in proba:
        k = int(np.argmax(p))
        probs = None
        if req.parameters.return_probabilities:
            order = sorted(range(len(CLASSES)), key=lambda i: -p[i])[: req.parameters.top_k or len(CLASSES)]
            probs = {CLASSES[i]: float(p[i]) for i in order}
        results.append(Result(label=CLASSES[k], score=float(p[k]), probabilities=probs))
    return PredictResponse(id="pred_" + uuid.uuid4().hex, model="churn", model_version="1", created=int(time.time()),
                           results=results, usage={"records": len(results)}, inference_time_ms=ms)
