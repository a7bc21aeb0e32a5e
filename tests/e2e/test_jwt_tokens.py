"""The JWT verifier checked by an independent implementation: keys, JWKS documents and tokens
made with PyJWT and cryptography (Debian's python3-jwt, python3-cryptography), verified by
`inferd token verify` (security/token.c through security/token_cli.c), which prints the
principal as JSON or exits 1 with the reason. A differential pass also decodes each claim
variation with PyJWT and expects the same verdict."""

import base64
import hashlib
import hmac
import itertools
import json
import os
import subprocess
import time

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from conftest import INFERD_BIN

SECRET = b"an-hs256-secret-of-more-than-32-bytes!!"
ISSUER = "https://idp.example.test/"
AUDIENCE = "inferd"


def b64u(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def jwk_of(public_key, kid, **extra):
    alg = RSAAlgorithm if isinstance(public_key, rsa.RSAPublicKey) else ECAlgorithm
    d = json.loads(alg.to_jwk(public_key))
    d["kid"] = kid
    d.update(extra)
    return d


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    d = tmp_path_factory.mktemp("jwt")
    k = {
        "rsa": rsa.generate_private_key(public_exponent=65537, key_size=2048),
        "rsa_other": rsa.generate_private_key(public_exponent=65537, key_size=2048),
        "rsa_enc": rsa.generate_private_key(public_exponent=65537, key_size=2048),
        "ec": ec.generate_private_key(ec.SECP256R1()),
        "ec_other": ec.generate_private_key(ec.SECP256R1()),
    }
    jwks = {"keys": [
        jwk_of(k["rsa"].public_key(), "rsa-1", use="sig", alg="RS256"),
        # an identity provider's encryption key (Keycloak publishes one): left out, not refused
        jwk_of(k["rsa_enc"].public_key(), "enc-1", use="enc", alg="RSA-OAEP"),
        jwk_of(k["ec"].public_key(), "ec-1", use="sig", alg="ES256"),
    ]}
    k["jwks"] = str(d / "jwks.json")
    with open(k["jwks"], "w") as f:
        json.dump(jwks, f)
    k["secret"] = str(d / "secret")
    with open(k["secret"], "wb") as f:
        f.write(SECRET + b"\n")
    k["dir"] = d
    return k


def verify(keys, token, *extra, jwks=True, secret=True, issuer=ISSUER, audience=AUDIENCE, stdin=False):
    """Runs inferd token verify; returns (exit code, parsed stdout or None, stderr)."""
    args = [INFERD_BIN, "token", "verify"]
    if jwks:
        args += ["--jwks", keys["jwks"] if jwks is True else jwks]
    if secret:
        args += ["--secret-file", keys["secret"]]
    if issuer:
        args += ["--issuer", issuer]
    if audience:
        args += ["--audience", audience]
    args += list(extra)
    args.append("-" if stdin else token)
    p = subprocess.run(args, input=token if stdin else None, capture_output=True, text=True, timeout=30)
    out = json.loads(p.stdout) if p.returncode == 0 else None
    return p.returncode, out, p.stderr


def claims(**over):
    now = int(time.time())
    c = {"sub": "alice", "iss": ISSUER, "aud": AUDIENCE, "exp": now + 300, "iat": now,
         "scope": "infer:iris read"}
    c.update(over)
    return {k: v for k, v in c.items() if v is not None}


def rs(keys, c=None, kid="rsa-1", key="rsa", headers=None):
    h = {"kid": kid} if kid else {}
    h.update(headers or {})
    return jwt.encode(c or claims(), keys[key], algorithm="RS256", headers=h)


def es(keys, c=None, kid="ec-1", key="ec"):
    return jwt.encode(c or claims(), keys[key], algorithm="ES256", headers={"kid": kid} if kid else None)


def hs(c=None, secret=SECRET, headers=None):
    return jwt.encode(c or claims(), secret, algorithm="HS256", headers=headers)


def raw_token(header, payload, sign):
    """A token from raw header and payload dicts; sign(signing_input bytes) -> signature bytes."""
    si = b64u(json.dumps(header).encode()) + "." + b64u(json.dumps(payload).encode())
    return si + "." + b64u(sign(si.encode()))


def refused(keys, token, why, *extra, **kw):
    rc, out, err = verify(keys, token, *extra, **kw)
    assert rc == 1, f"accepted (expected '{why}'): {out}"
    assert why in err, err
    # the reason never echoes the token or any of its parts
    for part in token.split("."):
        if len(part) >= 8:
            assert part not in err
    assert "alice" not in err
    return err


# ---- accepted ----

@pytest.mark.parametrize("alg", ["RS256", "ES256", "HS256"])
def test_valid_tokens_give_the_principal_and_scopes(keys, alg):
    c = claims()
    token = {"RS256": rs, "ES256": es, "HS256": lambda k, c: hs(c)}[alg](keys, c)
    rc, out, err = verify(keys, token)
    assert rc == 0, err
    assert out == {"principal": "alice", "kind": "jwt", "scopes": ["infer:iris", "read"], "expires_at": c["exp"] + 30}


def test_scope_claim_forms(keys):
    for c, want in [
        (claims(scope=None, scp=["infer:*", "metrics"]), ["infer:*", "metrics"]),  # Okta
        (claims(scope=None, scp="infer:a jobs"), ["infer:a", "jobs"]),  # Azure AD
        (claims(scope="read", scp=["admin"]), ["read"]),  # scope first
        (claims(scope=None), []),
    ]:
        rc, out, err = verify(keys, rs(keys, c))
        assert rc == 0, err
        assert out["scopes"] == want
    c = claims(scope=None, permissions=["infer:iris", "admin"])  # Auth0's RBAC claim
    rc, out, err = verify(keys, rs(keys, c), "--scope-claim", "permissions")
    assert rc == 0 and out["scopes"] == ["infer:iris", "admin"], err
    refused(keys, rs(keys, claims(scope=5)), '"scope" is not a string or an array')


def test_audience_array_and_token_from_stdin(keys):
    token = es(keys, claims(aud=["account", AUDIENCE]))
    rc, out, err = verify(keys, token, stdin=True)
    assert rc == 0 and out["principal"] == "alice", err


def test_single_key_jwks_accepts_a_token_without_kid(keys):
    path = str(keys["dir"] / "one.json")
    with open(path, "w") as f:
        json.dump({"keys": [jwk_of(keys["rsa"].public_key(), "only")]}, f)
    rc, out, err = verify(keys, rs(keys, kid=None), jwks=path, secret=False)
    assert rc == 0, err
    refused(keys, rs(keys, kid=None), "names no kid")  # the three-key JWKS


# ---- refused: the attack list ----

def test_expired_and_not_yet_valid_with_leeway(keys):
    now = int(time.time())
    # default leeway 30 s: 10 s past exp still passes, 60 s past does not
    assert verify(keys, rs(keys, claims(exp=now - 10)))[0] == 0
    refused(keys, rs(keys, claims(exp=now - 60)), "expired")
    refused(keys, rs(keys, claims(exp=now - 10)), "expired", "--leeway", "0")
    assert verify(keys, rs(keys, claims(nbf=now + 10)))[0] == 0
    refused(keys, rs(keys, claims(nbf=now + 120)), "not yet valid")
    refused(keys, rs(keys, claims(nbf=now + 10)), "not yet valid", "--leeway", "0")
    refused(keys, rs(keys, claims(exp=None)), 'no "exp"')
    # the exact edge, with the clock given: valid while now < exp + leeway
    exp = 1_900_000_000
    t = rs(keys, claims(exp=exp))
    assert verify(keys, t, "--now", str(exp + 29))[0] == 0
    refused(keys, t, "expired", "--now", str(exp + 30))


def test_wrong_issuer_and_audience(keys):
    refused(keys, rs(keys, claims(iss="https://evil.example/")), "issuer")
    refused(keys, rs(keys, claims(iss=None)), 'no "iss"')
    refused(keys, rs(keys, claims(aud="other")), "audience")
    refused(keys, rs(keys, claims(aud=["a", "b"])), "audience")
    refused(keys, rs(keys, claims(aud=None)), 'no "aud"')
    # not configured: not checked
    assert verify(keys, rs(keys, claims(iss="x", aud="y")), issuer=None, audience=None)[0] == 0


@pytest.mark.parametrize("alg", ["none", "None", "NONE", "nOnE"])
def test_alg_none_in_any_case(keys, alg):
    t = raw_token({"alg": alg, "typ": "JWT"}, claims(), lambda si: b"")
    refused(keys, t, "alg none")
    t = raw_token({"alg": alg}, claims(), lambda si: hmac.new(SECRET, si, hashlib.sha256).digest())
    refused(keys, t, "alg none")
    if alg == "none":
        refused(keys, jwt.encode(claims(), None, algorithm="none"), "alg none")


def test_hs_rs_confusion(keys):
    """The RSA key's public PEM (anyone can have it) used as an HS256 secret."""
    pem = keys["rsa"].public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    for header in ({"alg": "HS256", "kid": "rsa-1"}, {"alg": "HS256"}):
        t = raw_token(header, claims(), lambda si: hmac.new(pem, si, hashlib.sha256).digest())
        refused(keys, t, "no shared secret is configured", secret=False)
        refused(keys, t, "signature does not verify")
    # the public JWK's own JSON as the secret fares no better
    jwk_text = json.dumps(jwk_of(keys["rsa"].public_key(), "rsa-1")).encode()
    t = raw_token({"alg": "HS256", "kid": "rsa-1"}, claims(), lambda si: hmac.new(jwk_text, si, hashlib.sha256).digest())
    refused(keys, t, "signature does not verify")


def test_key_type_mismatch_and_unknown_kid(keys):
    refused(keys, rs(keys, kid="ec-1"), "does not match its key")
    refused(keys, es(keys, kid="rsa-1"), "does not match its key")
    refused(keys, rs(keys, kid="rsa-2"), "unknown kid")
    refused(keys, rs(keys, kid="enc-1", key="rsa_enc"), "unknown kid")  # encryption keys never verify
    refused(keys, rs(keys, key="rsa_other"), "signature does not verify")
    refused(keys, es(keys, key="ec_other"), "signature does not verify")
    refused(keys, rs(keys), "no JWKS is configured", jwks=False)


def test_tampered_payload_and_signature(keys):
    for token in (rs(keys), es(keys), hs()):
        h, p, s = token.split(".")
        evil = json.loads(base64.urlsafe_b64decode(p + "=" * (-len(p) % 4)))
        evil["scope"] = "admin infer:*"
        refused(keys, f"{h}.{b64u(json.dumps(evil).encode())}.{s}", "signature does not verify")
        sig = bytearray(base64.urlsafe_b64decode(s + "=" * (-len(s) % 4)))
        sig[len(sig) // 2] ^= 1
        refused(keys, f"{h}.{p}.{b64u(bytes(sig))}", "signature does not verify")


def test_es256_signature_must_be_raw_r_s(keys):
    si = (b64u(json.dumps({"alg": "ES256", "kid": "ec-1"}).encode()) + "." + b64u(json.dumps(claims()).encode())).encode()
    from cryptography.hazmat.primitives import hashes
    der = keys["ec"].sign(si, ec.ECDSA(hashes.SHA256()))
    refused(keys, si.decode() + "." + b64u(der), "ES256 needs 64 bytes")


def test_oversized_token(keys):
    big = rs(keys, claims(pad="x" * 9000))
    assert len(big) > 8192
    refused(keys, big, "too large")
    assert verify(keys, big, "--max-bytes", "20000")[0] == 0
    t = rs(keys)
    refused(keys, t, "too large", "--max-bytes", str(len(t) - 1))
    assert verify(keys, t, "--max-bytes", str(len(t)))[0] == 0
    refused(keys, "A" * 100000, "too large")


def test_crit_header_refused(keys):
    refused(keys, rs(keys, headers={"crit": ["exp"]}), "crit")


def test_malformed(keys):
    good = hs()
    h, p, s = good.split(".")
    dup = b64u(b'{"alg":"HS256","alg":"none"}')
    for bad, why in [
        ("", "malformed"),
        ("a.b", "three base64url parts"),
        (good + ".x", "three base64url parts"),
        (f"{h}=.{p}.{s}", "header"),
        (f"{h}.{p}.{s}=", "signature is not base64url"),  # PyJWT would accept the padding
        (f"{h}.{p}.{s[:-1]}+", "signature is not base64url"),
        (f" {good}", "header"),
        (f"{b64u(b'[1]')}.{p}.{s}", "header"),
        (f"{dup}.{p}.{s}", "header"),  # a name twice
    ]:
        refused(keys, bad, why)
    refused(keys, raw_token({"alg": "HS256"}, {"sub": "alice", "sub ": 1, "exp": 2**31}, lambda si: b"x"),
            "signature does not verify")
    refused(keys, hs(claims(sub=None)), 'no "sub"')
    refused(keys, hs(claims(sub="a\nb")), "control characters")
    refused(keys, hs(claims(sub="n" * 128)), "too long")


def test_secret_file_newline_and_length(keys):
    short = keys["dir"] / "short"
    short.write_bytes(b"too-short\n")
    p = subprocess.run([INFERD_BIN, "token", "verify", "--secret-file", str(short), hs()], capture_output=True, text=True)
    assert p.returncode == 1 and str(short) in p.stderr and "at least 32" in p.stderr


@pytest.mark.parametrize("bad_jwk,why", [
    (lambda k: jwk_of(rsa.generate_private_key(public_exponent=65537, key_size=1024).public_key(), "weak"),
     "'weak': RSA modulus of 1024 bits"),
    (lambda k: jwk_of(ec.generate_private_key(ec.SECP384R1()).public_key(), "p384"), "'p384': EC keys must have"),
    (lambda k: {"kty": "oct", "kid": "sym", "k": b64u(SECRET)}, "'sym' is a symmetric"),
    (lambda k: dict(jwk_of(k["rsa"].public_key(), "rs512"), alg="RS512"), "'rs512': RSA keys are used for RS256 only"),
    (lambda k: json.loads(RSAAlgorithm.to_jwk(k["rsa"])) | {"kid": "priv"}, "'priv' holds private key material"),
])
def test_unusable_jwks_keys_are_refused_at_load_naming_file_and_kid(keys, bad_jwk, why):
    path = str(keys["dir"] / "bad.json")
    with open(path, "w") as f:
        json.dump({"keys": [jwk_of(keys["rsa"].public_key(), "rsa-1"), bad_jwk(keys)]}, f)
    rc, out, err = verify(keys, rs(keys), jwks=path, secret=False)
    assert rc == 1 and path in err and why in err, err


# ---- differential: the same verdict as PyJWT over claim variations ----

def test_claim_verdicts_match_pyjwt(keys):
    now = int(time.time())
    exps = [now + 300, now - 10, now - 31, now - 3600, None]
    nbfs = [None, now + 10, now + 31, now - 100]
    isss = [ISSUER, "https://other/", None]
    auds = [AUDIENCE, ["x", AUDIENCE], "other", None]
    n = 0
    for exp, nbf, iss, aud in itertools.product(exps, nbfs, isss, auds):
        c = claims(exp=exp, nbf=nbf, iss=iss, aud=aud)
        token = rs(keys, c)
        try:
            jwt.decode(token, keys["rsa"].public_key(), algorithms=["RS256"], audience=AUDIENCE, issuer=ISSUER,
                       leeway=30, options={"require": ["exp", "sub", "iss", "aud"]})
            want = 0
        except jwt.InvalidTokenError:
            want = 1
        # PyJWT's edges are inclusive where ours are strict by one second; keep off the edges
        rc, out, err = verify(keys, token)
        assert rc == want, f"{c}: inferd {rc} ({err.strip()}), PyJWT {want}"
        n += 1
    assert n == len(exps) * len(nbfs) * len(isss) * len(auds)
