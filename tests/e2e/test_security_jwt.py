"""The JWT attack suite against a running server, over REST and gRPC (issue 12, item 3).

Keys, JWKS and tokens are made with PyJWT and cryptography, independently of inferd. A server
runs with --jwt-jwks (an RSA and an EC P-256 key), --jwt-secret-file (HS256), --jwt-issuer and
--jwt-audience; every bad token (missing, malformed, expired, not yet valid, wrong issuer, wrong
audience, alg none, HS/RS confusion, unknown kid, tampered payload, oversized, and more) goes to
every inference entry point (V2 REST, /v1 predict, TF Serving, MLflow, gRPC ModelInfer,
ModelStreamInfer, ModelService) and must be refused with 401 + WWW-Authenticate /
UNAUTHENTICATED, never echoing the token; a valid token whose scopes lack the model gets 403 /
PERMISSION_DENIED; valid RS256, ES256 and HS256 tokens with the right scope are served. 0
bypasses. The JWKS file is replaced while the server runs: the new key works and the old one
stops, without a restart.
"""
import base64
import hashlib
import hmac
import json
import os
import time

import jwt
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from conftest import timeout, wait_until
from test_security_auth import INFER_CALLERS, Tally, grpc_infer, repo, v2_rest  # noqa: F401 (repo: a fixture)

ISSUER = "https://idp.example.test/realms/inferd"
AUDIENCE = "inferd-api"
SECRET = b"jwt-e2e-shared-secret-0123456789abcdef"


def b64u(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def jwk_of(public_key, kid, **extra):
    alg = RSAAlgorithm if isinstance(public_key, rsa.RSAPublicKey) else ECAlgorithm
    return json.loads(alg.to_jwk(public_key)) | {"kid": kid} | extra


def write_jwks(path, jwks):
    tmp = path + ".new"
    with open(tmp, "w") as f:
        json.dump({"keys": jwks}, f)
    os.replace(tmp, path)  # atomic, as docs/security.md tells users to do


@pytest.fixture(scope="module")
def idp(tmp_path_factory):
    """The identity provider's keys and the files the server reads."""
    d = str(tmp_path_factory.mktemp("jwt_idp"))
    k = {
        "rsa": rsa.generate_private_key(public_exponent=65537, key_size=2048),
        "ec": ec.generate_private_key(ec.SECP256R1()),
        "rsa_other": rsa.generate_private_key(public_exponent=65537, key_size=2048),
        "rsa_next": rsa.generate_private_key(public_exponent=65537, key_size=2048),
    }
    k["jwks"] = os.path.join(d, "jwks.json")
    write_jwks(k["jwks"], [jwk_of(k["rsa"].public_key(), "rsa-1", use="sig", alg="RS256"),
                           jwk_of(k["ec"].public_key(), "ec-1", use="sig")])
    k["secret"] = os.path.join(d, "secret")
    with open(k["secret"], "wb") as f:
        f.write(SECRET + b"\n")
    return k


@pytest.fixture(scope="module")
def g(repo, idp, logs_dir):  # noqa: F811
    from grpc_stubs import running_grpc_server
    args = ["--jwt-jwks", idp["jwks"], "--jwt-secret-file", idp["secret"], "--jwt-issuer", ISSUER,
            "--jwt-audience", AUDIENCE, "--default-model", "u8"]
    with running_grpc_server(repo, logs_dir, args=args) as gs:
        yield gs


def claims(**over):
    now = int(time.time())
    c = {"sub": "svc-scorer", "iss": ISSUER, "aud": AUDIENCE, "iat": now, "exp": now + 600, "scope": "infer:u8 read"}
    c.update(over)
    return {k: v for k, v in c.items() if v is not None}


def rs(idp, c=None, kid="rsa-1", key="rsa", headers=None):
    h = {"kid": kid} if kid else {}
    return jwt.encode(c or claims(), idp[key], algorithm="RS256", headers=h | (headers or {}))


def es(idp, c=None, kid="ec-1"):
    return jwt.encode(c or claims(), idp["ec"], algorithm="ES256", headers={"kid": kid})


def hs(c=None):
    return jwt.encode(c or claims(), SECRET, algorithm="HS256")


def raw(header, payload, sign):
    si = b64u(json.dumps(header).encode()) + "." + b64u(json.dumps(payload).encode())
    return si + "." + b64u(sign(si.encode()))


def bearer(token):
    return ("bearer", token)


def token_parts(cred):
    if cred is None:
        return []
    return [p for p in cred[1].split(".") if len(p) >= 8]


def bad_tokens(idp):
    """(label, credential, status) for every way a JWT can be wrong; all 401 but the scope cases."""
    now = int(time.time())
    pem = idp["rsa"].public_key().public_bytes(serialization.Encoding.PEM,
                                               serialization.PublicFormat.SubjectPublicKeyInfo)
    good = rs(idp)
    h, p, s = good.split(".")
    evil = b64u(json.dumps(claims(scope="infer:* admin", sub="root")).encode())
    es_si = (b64u(json.dumps({"alg": "ES256", "kid": "ec-1"}).encode()) + "." + b64u(json.dumps(claims()).encode()))
    es_der = es_si + "." + b64u(idp["ec"].sign(es_si.encode(), ec.ECDSA(hashes.SHA256())))
    big = rs(idp, claims(pad="p" * 9000))
    cases = [
        ("missing", None, 401),
        ("malformed: three junk parts", bearer("abc.def.ghi"), 401),
        ("malformed: header not JSON", bearer(b64u(b"not json") + "." + p + "." + s), 401),
        ("malformed: padded signature", bearer(good + "="), 401),
        ("malformed: empty signature", bearer(f"{h}.{p}."), 401),
        ("expired", bearer(rs(idp, claims(exp=now - 3600))), 401),
        ("not yet valid", bearer(rs(idp, claims(nbf=now + 3600))), 401),
        ("no exp", bearer(rs(idp, claims(exp=None))), 401),
        ("wrong issuer", bearer(rs(idp, claims(iss="https://evil.example/"))), 401),
        ("no issuer", bearer(rs(idp, claims(iss=None))), 401),
        ("wrong audience", bearer(rs(idp, claims(aud="another-api"))), 401),
        ("wrong audience list", bearer(rs(idp, claims(aud=["a", "b"]))), 401),
        ("no sub", bearer(rs(idp, claims(sub=None))), 401),
        ("alg none", bearer(jwt.encode(claims(), None, algorithm="none")), 401),
        ("alg None", bearer(raw({"alg": "None"}, claims(), lambda si: b"")), 401),
        ("alg NONE signed", bearer(raw({"alg": "NONE"}, claims(), lambda si: hmac.new(SECRET, si, hashlib.sha256).digest())), 401),
        ("HS/RS confusion: RSA PEM as HMAC secret, kid", bearer(raw({"alg": "HS256", "kid": "rsa-1"}, claims(),
                                                                     lambda si: hmac.new(pem, si, hashlib.sha256).digest())), 401),
        ("HS/RS confusion: RSA PEM as HMAC secret", bearer(raw({"alg": "HS256"}, claims(),
                                                               lambda si: hmac.new(pem, si, hashlib.sha256).digest())), 401),
        ("RS256 naming the EC key", bearer(rs(idp, kid="ec-1")), 401),
        ("unknown kid", bearer(rs(idp, kid="rsa-9")), 401),
        ("no kid, several keys", bearer(rs(idp, kid=None)), 401),
        ("another key under a known kid", bearer(rs(idp, key="rsa_other")), 401),
        ("tampered payload", bearer(f"{h}.{evil}.{s}"), 401),
        ("tampered HS256 payload", bearer(".".join([hs().split(".")[0], evil, hs().split(".")[2]])), 401),
        ("ES256 DER signature", bearer(es_der), 401),
        ("crit header", bearer(rs(idp, headers={"crit": ["exp"]})), 401),
        ("unsupported alg RS512", bearer(jwt.encode(claims(), idp["rsa"], algorithm="RS512", headers={"kid": "rsa-1"})), 401),
        ("oversized", bearer(big), 401),
        # valid tokens whose scopes do not cover the model
        ("scopes lack the model: read only", bearer(rs(idp, claims(scope="read"))), 403),
        ("scopes lack the model: another model", bearer(es(idp, claims(scope="infer:u8other"))), 403),
        ("no scope at all", bearer(hs(claims(scope=None))), 403),
    ]
    assert len(big) > 8192
    return cases


def test_every_bad_token_is_refused_on_every_protocol(g, idp):
    t = Tally()
    for label, cred, status in bad_tokens(idp):
        for caller in INFER_CALLERS:
            kind, res = caller(g, "u8", cred)
            t.check(f"{caller.__name__} / {label}", kind, res, status, token_parts(cred))
    t.assert_none()
    assert t.cases == 31 * len(INFER_CALLERS)


def test_valid_tokens_are_served_with_their_scopes(g, idp):
    t = Tally()
    goods = [("RS256", rs(idp)), ("ES256", es(idp)), ("HS256", hs()),
             ("scp array infer:*", rs(idp, claims(scope=None, scp=["infer:*"]))),
             ("audience in a list", es(idp, claims(aud=["account", AUDIENCE]))),
             ("expired 10 s ago, within the leeway", hs(claims(exp=int(time.time()) - 10)))]
    for label, token in goods:
        for caller in INFER_CALLERS:
            kind, res = caller(g, "u8", bearer(token))
            t.check(f"{caller.__name__} / {label}", kind, res, 200)
    t.assert_none()


def test_the_refusals_say_why(g, idp):
    now = int(time.time())
    for token, why in [(rs(idp, claims(exp=now - 3600)), "expired"), (rs(idp, kid="rsa-9"), "unknown kid"),
                       (raw({"alg": "none"}, claims(), lambda si: b""), "alg none"),
                       (rs(idp, claims(aud="x")), "audience"), (rs(idp, claims(iss="x")), "issuer"),
                       (rs(idp, claims(pad="p" * 9000)), "too large")]:
        r = g.srv.post("/v2/models/u8/infer", json={}, headers={"Authorization": f"Bearer {token}"}, timeout=timeout(30))
        assert r.status_code == 401
        assert r.headers["WWW-Authenticate"] == 'Bearer realm="inferd", error="invalid_token"'
        assert why in r.json()["error"], r.text
        for part in token.split("."):
            assert len(part) < 8 or part not in r.text
    r = g.srv.post("/v2/models/u8/infer", json={}, headers={"Authorization": f"Bearer {rs(idp, claims(scope='read'))}"})
    assert r.status_code == 403 and "infer:u8" in r.json()["error"], r.text


def test_jwks_replaced_while_serving(g, idp):
    """Key rotation: a new JWKS without rsa-1 and with rsa-2 takes effect without a restart."""
    old, new = rs(idp), rs(idp, kid="rsa-2", key="rsa_next")
    assert v2_rest(g, "u8", bearer(old))[1].status_code == 200
    assert v2_rest(g, "u8", bearer(new))[1].status_code == 401
    write_jwks(idp["jwks"], [jwk_of(idp["rsa_next"].public_key(), "rsa-2"), jwk_of(idp["ec"].public_key(), "ec-1")])
    try:
        wait_until(lambda: v2_rest(g, "u8", bearer(new))[1].status_code == 200, timeout(5), what="the new key")
        assert v2_rest(g, "u8", bearer(old))[1].status_code == 401
        assert grpc_infer(g, "u8", bearer(old))[1][0].name == "UNAUTHENTICATED"
        assert grpc_infer(g, "u8", bearer(new))[1][0].name == "OK"
        # a broken JWKS keeps the keys in force
        with open(idp["jwks"], "w") as f:
            f.write('{"keys": [{"kty": "RSA", "kid": "weak", "n": "AQAB", "e": "AQAB"}]}')
        time.sleep(timeout(1))
        assert v2_rest(g, "u8", bearer(new))[1].status_code == 200
    finally:
        write_jwks(idp["jwks"], [jwk_of(idp["rsa"].public_key(), "rsa-1", use="sig", alg="RS256"),
                                 jwk_of(idp["ec"].public_key(), "ec-1", use="sig")])
        wait_until(lambda: v2_rest(g, "u8", bearer(old))[1].status_code == 200, timeout(5), what="the first key back")


def test_a_configured_scope_claim(repo, idp, logs_dir):  # noqa: F811
    """--jwt-scope-claim names where an identity provider puts scopes (Auth0's `permissions`):
    that claim grants, and `scope` no longer does."""
    from grpc_stubs import running_grpc_server
    args = ["--jwt-jwks", idp["jwks"], "--jwt-issuer", ISSUER, "--jwt-audience", AUDIENCE,
            "--jwt-scope-claim", "permissions"]
    body = {"inputs": [{"name": "x", "datatype": "UINT8", "shape": [1, 1], "data": [7]}]}
    with running_grpc_server(repo, logs_dir, args=args) as gs:
        def status(c):
            return gs.srv.post("/v2/models/u8/infer", json=body, headers={"Authorization": f"Bearer {rs(idp, c)}"},
                               timeout=timeout(30)).status_code
        assert status(claims(scope=None, permissions=["infer:u8"])) == 200
        assert status(claims(scope="infer:u8")) == 403
