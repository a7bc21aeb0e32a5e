#!/usr/bin/python3
"""Makes fuzz_token's fixed key set and seeds: fresh RSA-2048, EC P-256 keys and an HS256
secret; writes the public JWKS and the secret as C strings to tests/fuzz/fuzz_token_keys.h and
signed tokens (valid ones and one of each refusal) to tests/fuzz/corpus/token/. The private keys
are thrown away, so the seeds' signatures stay the only valid RS256/ES256 ones the fuzzer sees;
HS256 inputs it can re-sign itself (mode byte, see fuzz_token.c). Run it again only to replace
both the header and the corpus together:
    /usr/bin/python3 tests/fuzz/make_token_corpus.py"""

import base64
import hashlib
import hmac
import json
import os
import secrets

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

HERE = os.path.dirname(os.path.abspath(__file__))
NOW = 1800000000  # the harness's clock


def b64u(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def main():
    rk = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ek = ec.generate_private_key(ec.SECP256R1())
    secret = secrets.token_hex(24).encode()
    jr = json.loads(RSAAlgorithm.to_jwk(rk.public_key())) | {"kid": "r1", "use": "sig", "alg": "RS256"}
    je = json.loads(ECAlgorithm.to_jwk(ek.public_key())) | {"kid": "e1"}
    jwks = json.dumps({"keys": [jr, je]})
    with open(os.path.join(HERE, "fuzz_token_keys.h"), "w") as f:
        f.write("/* fuzz_token's fixed keys (public JWKS and HS256 secret), made by make_token_corpus.py with\n"
                " * the seeds in corpus/token/; the private keys were not kept. */\n")
        f.write("static const char FUZZ_TOKEN_JWKS[] = %s;\n" % json.dumps(jwks))
        f.write("static const char FUZZ_TOKEN_SECRET[] = %s;\n" % json.dumps(secret.decode()))
    claims = {"sub": "alice", "exp": NOW + 600, "nbf": NOW - 60, "iss": "https://idp.example/",
              "aud": ["x", "inferd"], "scope": "infer:iris read"}
    seeds = {
        "rs256": ("raw", jwt.encode(claims, rk, algorithm="RS256", headers={"kid": "r1"})),
        "es256": ("raw", jwt.encode(claims, ek, algorithm="ES256", headers={"kid": "e1"})),
        "hs256": ("raw", jwt.encode(claims, secret, algorithm="HS256")),
        "rs256-scp": ("raw", jwt.encode({k: v for k, v in claims.items() if k != "scope"} | {"scp": ["a", "b"]}, rk, algorithm="RS256",
                                        headers={"kid": "r1"})),
        "none": ("raw", jwt.encode(claims, None, algorithm="none")),
        "expired": ("raw", jwt.encode(dict(claims, exp=NOW - 100), secret, algorithm="HS256")),
    }
    # header.payload only: the harness appends the HS256 signature (mode byte bit 0 set)
    def unsigned(h, c):
        return b64u(json.dumps(h).encode()) + "." + b64u(json.dumps(c).encode())
    seeds["resign-claims"] = ("sign", unsigned({"alg": "HS256", "typ": "JWT"}, claims))
    seeds["resign-perms"] = ("sign", unsigned({"alg": "HS256"}, dict(claims, permissions=["x:y", "z"], aud="inferd")))
    seeds["resign-crit"] = ("sign", unsigned({"alg": "HS256", "crit": ["b64"], "b64": False}, claims))
    seeds["resign-reals"] = ("sign", unsigned({"alg": "HS256"}, dict(claims, exp=1.8e9 + 0.5, nbf=-1e300)))
    out = os.path.join(HERE, "corpus", "token")
    os.makedirs(out, exist_ok=True)
    for name, (mode, tok) in seeds.items():
        # byte 0: bit 0 re-sign, bit 1 issuer/audience, bit 2 scope claim "permissions"
        mode_byte = (1 if mode == "sign" else 0) | 2 | (4 if "perms" in name else 0)
        with open(os.path.join(out, name), "wb") as f:
            f.write(bytes([mode_byte]) + tok.encode())


if __name__ == "__main__":
    main()
