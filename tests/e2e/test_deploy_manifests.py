"""The Kubernetes manifests in deploy/k8s, checked without a cluster (docs/scaling.md):

- every document against the Kubernetes API's OpenAPI schema for its kind (tests/deploy/
  validate.mjs: kubernetes-models' compiled schemas, installed by scripts/bootstrap.sh), and the
  check is shown to reject broken copies;
- what a schema cannot see: selectors that match the pod labels, probes on inferd's real health
  routes, a grace period that covers the preStop pause and the drain, volumes and env naming
  objects that exist, the HPA's custom metric served by the adapter rule from a metric inferd
  really exports, every INFERD_ variable known to `inferd serve --help`;
- the ConfigMap and Secret as inferd reads them: a server started with the ConfigMap's
  settings, its churn config.json and the Secret's files becomes ready, and its health probes
  answer without credentials while every other route wants them.
"""

import copy
import glob
import json
import os
import re
import shutil
import subprocess

import pytest
import requests
import yaml

from conftest import EXAMPLE_REPO, INFERD_BIN, REPO_ROOT, running_server

K8S_DIR = os.path.join(REPO_ROOT, "deploy", "k8s")
VALIDATOR = os.path.join(REPO_ROOT, "tests", "deploy", "validate.mjs")
MANIFESTS = sorted(glob.glob(os.path.join(K8S_DIR, "*.yaml")))
NOT_IN_KUSTOMIZATION = {"kustomization.yaml", "11-secret.yaml", "50-prometheus-adapter.yaml"}


def validate(paths):
    """Runs the schema check; returns (exit code, one dict per document)."""
    assert os.path.isdir(os.path.join(REPO_ROOT, "tests", "deploy", "node_modules", "kubernetes-models")), \
        "tests/deploy/node_modules is missing: run scripts/bootstrap.sh"
    out = subprocess.run(["node", VALIDATOR, *paths], capture_output=True, text=True, timeout=120)
    docs = [json.loads(l) for l in out.stdout.splitlines() if l.strip()]
    assert out.stderr.strip() == "", out.stderr
    return out.returncode, docs


@pytest.fixture(scope="module")
def objects():
    """(kind, name) -> the object, over every manifest."""
    found = {}
    for path in MANIFESTS:
        with open(path) as f:
            for doc in yaml.safe_load_all(f):
                if doc:
                    found[(doc["kind"], doc.get("metadata", {}).get("name", ""))] = doc
    return found


def test_every_manifest_passes_the_kubernetes_schemas():
    rc, docs = validate(MANIFESTS)
    bad = [d for d in docs if d["errors"]]
    assert rc == 0 and not bad, json.dumps(bad, indent=1)
    checked = {(d["kind"], d["name"]) for d in docs if d.get("checked")}
    unchecked = {d["kind"] for d in docs if not d.get("checked")}
    assert unchecked == {"Kustomization"}, unchecked
    for want in [("Deployment", "inferd"), ("Service", "inferd"), ("PodDisruptionBudget", "inferd"),
                 ("HorizontalPodAutoscaler", "inferd"), ("ConfigMap", "inferd-config"),
                 ("Secret", "inferd-secrets"), ("StatefulSet", "redis"), ("Service", "redis"),
                 ("ConfigMap", "prometheus-adapter-inferd")]:
        assert want in checked, f"{want} not among the checked manifests: {sorted(checked)}"


def _break(obj, how):
    obj = copy.deepcopy(obj)
    how(obj)
    return obj


BROKEN = {
    "replicas as a word": ("Deployment", "inferd", lambda d: d["spec"].__setitem__("replicas", "three"),
                           "/spec/replicas"),
    "no selector": ("Deployment", "inferd", lambda d: d["spec"].pop("selector"), "selector"),
    "container without a name": ("Deployment", "inferd",
                                 lambda d: d["spec"]["template"]["spec"]["containers"][0].pop("name"), "name"),
    "probe period as text": ("Deployment", "inferd",
                             lambda d: d["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]
                             .__setitem__("periodSeconds", "2s"), "periodSeconds"),
    "HPA utilization as a percentage string": (
        "HorizontalPodAutoscaler", "inferd",
        lambda d: d["spec"]["metrics"][0]["resource"]["target"].__setitem__("averageUtilization", "70%"),
        "averageUtilization"),
    "HPA without a target": ("HorizontalPodAutoscaler", "inferd", lambda d: d["spec"].pop("scaleTargetRef"),
                             "scaleTargetRef"),
    "PDB selector as a list": ("PodDisruptionBudget", "inferd",
                               lambda d: d["spec"].__setitem__("selector", ["app.kubernetes.io/name"]), "selector"),
    "ConfigMap value as a number": ("ConfigMap", "inferd-config",
                                    lambda d: d["data"].__setitem__("INFERD_HTTP_PORT", 8000), "INFERD_HTTP_PORT"),
    "StatefulSet without a pod template": ("StatefulSet", "redis", lambda d: d["spec"].pop("template"),
                                                   "template"),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_the_schema_check_rejects_a_broken_manifest(case, objects, tmp_path):
    kind, name, how, needle = BROKEN[case]
    path = tmp_path / "broken.yaml"
    path.write_text(yaml.safe_dump(_break(objects[(kind, name)], how)))
    rc, docs = validate([str(path)])
    assert rc == 1, f"{case}: the broken manifest passed: {docs}"
    assert any(needle in e for d in docs for e in d["errors"]), f"{case}: {docs}"


def test_a_file_that_is_not_yaml_fails_the_check(tmp_path):
    path = tmp_path / "torn.yaml"
    path.write_text("apiVersion: v1\nkind: Service\nmetadata: {name: x\n")
    rc, docs = validate([str(path)])
    assert rc == 1 and docs[0]["errors"], docs


def _container(objects):
    return objects[("Deployment", "inferd")]["spec"]["template"]["spec"]["containers"][0]


def test_selectors_and_references_agree(objects):
    dep = objects[("Deployment", "inferd")]
    labels = dep["spec"]["template"]["metadata"]["labels"]
    assert dep["spec"]["selector"]["matchLabels"].items() <= labels.items()
    svc = objects[("Service", "inferd")]
    assert svc["spec"]["selector"].items() <= labels.items()
    assert objects[("PodDisruptionBudget", "inferd")]["spec"]["selector"]["matchLabels"].items() <= labels.items()
    target = objects[("HorizontalPodAutoscaler", "inferd")]["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"]) in objects and target["apiVersion"] == dep["apiVersion"]
    # every port the Service targets by name is a container port
    c = _container(objects)
    names = {p["name"]: p["containerPort"] for p in c["ports"]}
    for p in svc["spec"]["ports"]:
        assert p["targetPort"] in names, p
    # volumes name objects that exist, and keys they have
    spec = dep["spec"]["template"]["spec"]
    for v in spec["volumes"]:
        if "configMap" in v:
            cm = objects[("ConfigMap", v["configMap"]["name"])]
            for item in v["configMap"].get("items", []):
                assert item["key"] in cm["data"], item
        if "secret" in v:
            assert ("Secret", v["secret"]["secretName"]) in objects
        if "persistentVolumeClaim" in v:
            assert ("PersistentVolumeClaim", v["persistentVolumeClaim"]["claimName"]) in objects
    mounts = {m["name"] for m in c["volumeMounts"]}
    assert mounts == {v["name"] for v in spec["volumes"]}
    for ref in c["envFrom"]:
        assert ("ConfigMap", ref["configMapRef"]["name"]) in objects
    # the Redis the replicas are pointed at is the StatefulSet's first pod behind its Service
    redis = objects[("StatefulSet", "redis")]
    url = objects[("ConfigMap", "inferd-config")]["data"]["INFERD_REDIS_URL"]
    ns = redis["metadata"]["namespace"]
    assert url == f"redis://{redis['metadata']['name']}-0.{redis['spec']['serviceName']}.{ns}.svc.cluster.local:6379"
    assert ("Service", redis["spec"]["serviceName"]) in objects
    # the kustomization applies every manifest of the namespace
    kust = yaml.safe_load(open(os.path.join(K8S_DIR, "kustomization.yaml")))
    want = sorted(os.path.basename(p) for p in MANIFESTS if os.path.basename(p) not in NOT_IN_KUSTOMIZATION)
    assert sorted(kust["resources"]) == want


def test_probes_drain_and_resources(objects):
    dep = objects[("Deployment", "inferd")]
    c = _container(objects)
    ports = {p["name"] for p in c["ports"]}
    assert c["readinessProbe"]["httpGet"]["path"] == "/v2/health/ready"
    assert c["livenessProbe"]["httpGet"]["path"] == "/v2/health/live"
    assert c["startupProbe"]["httpGet"]["path"] in ("/v2/health/ready", "/v2/health/live")
    for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
        assert c[probe]["httpGet"]["port"] in ports, probe
    # the pod keeps serving through the preStop pause, then drains: the grace period covers both
    pause = c["lifecycle"]["preStop"]["sleep"]["seconds"]
    assert pause >= 2
    drain_ms = int(objects[("ConfigMap", "inferd-config")]["data"]["INFERD_DRAIN_TIMEOUT_MS"])
    assert dep["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] >= pause + drain_ms / 1000 + 2
    # a rollout never goes below the replicas asked for; the HPA's CPU target needs a request
    assert dep["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    assert "cpu" in c["resources"]["requests"] and "memory" in c["resources"]["limits"]
    hpa = objects[("HorizontalPodAutoscaler", "inferd")]["spec"]
    assert hpa["minReplicas"] >= 2, "the PDB's one disruption at a time needs two replicas left"


def test_hpa_metric_comes_from_the_adapter_rule_and_inferd_exports_it(objects, server):
    hpa = objects[("HorizontalPodAutoscaler", "inferd")]["spec"]
    kinds = {m["type"] for m in hpa["metrics"]}
    assert kinds == {"Resource", "Pods"}
    pods_metric = next(m for m in hpa["metrics"] if m["type"] == "Pods")["pods"]["metric"]["name"]
    rules = yaml.safe_load(objects[("ConfigMap", "prometheus-adapter-inferd")]["data"]["config.yaml"])["rules"]
    served = {}
    for rule in rules:
        series = re.match(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)\{", rule["seriesQuery"]).group(1)
        assert re.match(rule["name"]["matches"], series)
        served[re.sub(rule["name"]["matches"], rule["name"]["as"], series)] = (series, rule)
        assert set(rule["resources"]["overrides"]) == {"namespace", "pod"}
        assert "<<.Series>>" in rule["metricsQuery"] and "<<.LabelMatchers>>" in rule["metricsQuery"]
    assert pods_metric in served, f"the HPA's {pods_metric} is not served by the adapter rules: {sorted(served)}"
    series = served[pods_metric][0]
    text = server.get("/metrics").text
    assert re.search(rf"^# TYPE {series} gauge$", text, re.M), f"inferd exports no gauge {series}"


def test_every_inferd_variable_in_the_configmap_is_a_real_option(objects):
    usage = subprocess.run([INFERD_BIN, "serve", "--help"], capture_output=True, text=True, timeout=30).stdout
    data = objects[("ConfigMap", "inferd-config")]["data"]
    names = [k for k in data if k.startswith("INFERD_")]
    assert len(names) >= 5
    unknown = [k for k in names if not re.search(rf"\b{k}\b", usage)]
    assert not unknown, f"not in inferd serve --help: {unknown}"


def test_inferd_starts_from_the_configmap_and_secret(objects, tmp_path, logs_dir):
    """The settings as the pod gets them, paths and ports moved onto this machine: the churn model
    from the ConfigMap's config.json loads, the Secret's key store and JWT secret are accepted,
    the probes' routes answer without credentials and an inference wants one."""
    data = objects[("ConfigMap", "inferd-config")]["data"]
    secret = objects[("Secret", "inferd-secrets")]["stringData"]
    c = _container(objects)
    mounts = {m["name"]: m for m in c["volumeMounts"]}
    repo = tmp_path / "models"
    shutil.copytree(os.path.join(EXAMPLE_REPO, "churn"), repo / "churn")
    # the config volume lays the ConfigMap's key over the model's config.json
    sub = mounts["config"]
    assert sub["mountPath"].startswith(mounts["models"]["mountPath"] + "/")
    rel = os.path.relpath(sub["mountPath"], mounts["models"]["mountPath"])
    (repo / rel).write_text(data[sub["subPath"]])
    secrets_dir = tmp_path / "secrets"
    secrets_dir.mkdir()
    for key, value in secret.items():
        (secrets_dir / key).write_text(value)
    env = {k: v for k, v in data.items() if k.startswith("INFERD_")}
    # paths in the pod -> here
    for k, v in list(env.items()):
        if v.startswith(mounts["secrets"]["mountPath"] + "/"):
            env[k] = str(secrets_dir / os.path.basename(v))
    env["INFERD_STATE_DIR"] = str(tmp_path / "state")
    env["INFERD_GRPC_PORT"] = "0"
    env.pop("INFERD_REDIS_URL")  # the cluster's Redis name does not resolve here
    assert env.pop("INFERD_MODEL_REPOSITORY") == mounts["models"]["mountPath"]
    for k in ("INFERD_HOST", "INFERD_HTTP_PORT"):  # the test's Server sets these
        env.pop(k)
    with running_server(str(repo), env=env, workdir=logs_dir, use_env_config=True) as srv:
        for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
            r = requests.get(srv.url(c[probe]["httpGet"]["path"]), timeout=10)
            assert r.status_code == 200, (probe, r.status_code, r.text)
        health = srv.get("/health").json()
        assert [(m["name"], m["state"]) for m in health["models"]] == [("churn", "READY")], health
        r = srv.post("/v2/models/churn/infer", json={"inputs": [{"name": "input", "datatype": "FP32",
                                                                  "shape": [1, 12], "data": [0.0] * 12}]})
        assert r.status_code == 401, (r.status_code, r.text)
