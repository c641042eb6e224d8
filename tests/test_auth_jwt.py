"""JWT auth as Amazon Cognito issues it: RS256, keys from a JWKS, issuer and audience (or client_id) checked."""

from __future__ import annotations

import json
import time

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from ragline.errors import AuthError
from ragline.interfaces.auth import Authenticator
from ragline.providers.local.sqlite import SQLiteRegistry
from ragline.settings import Settings

ISSUER = "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_TEST"


def keypair(kid: str) -> tuple[rsa.RSAPrivateKey, dict]:
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(private.public_key()))
    return private, {**public, "kid": kid, "alg": "RS256", "use": "sig"}


@pytest.fixture
def auth(tmp_path):
    private, public = keypair("k1")
    jwks = tmp_path / "jwks.json"
    jwks.write_text(json.dumps({"keys": [public]}), encoding="utf-8")
    settings = Settings(auth="jwt", jwt_jwks=str(jwks), jwt_issuer=ISSUER, jwt_audience="app-client")
    authenticator = Authenticator(settings, SQLiteRegistry(tmp_path / "r.sqlite3"))

    def token(key=private, kid="k1", **claims) -> str:
        body = {"sub": "user-123", "iss": ISSUER, "client_id": "app-client", "exp": time.time() + 300, **claims}
        return jwt.encode(body, key, algorithm="RS256", headers={"kid": kid})

    return authenticator, token


def test_a_valid_cognito_access_token_names_the_tenant(auth) -> None:
    authenticator, token = auth
    assert authenticator.tenant(f"Bearer {token()}") == "jwt:user-123"
    assert authenticator.tenant(None, token=token(aud="app-client", client_id=None)) == "jwt:user-123"  # ID token


@pytest.mark.parametrize(
    ("claims", "message"),
    [
        ({"exp": time.time() - 10}, "the token has expired"),
        ({"client_id": "other-client"}, "the token was issued for another audience"),
        ({"iss": "https://evil.example"}, "invalid token: Invalid issuer"),
        ({"sub": ""}, "the token has no 'sub' claim"),
    ],
)
def test_bad_tokens_are_refused_with_the_reason(auth, claims, message) -> None:
    authenticator, token = auth
    with pytest.raises(AuthError, match=message):
        authenticator.tenant(f"Bearer {token(**claims)}")


def test_forged_and_missing_tokens(auth) -> None:
    authenticator, token = auth
    forger, _ = keypair("k1")
    with pytest.raises(AuthError, match="invalid token: Signature verification failed"):
        authenticator.tenant(f"Bearer {token(key=forger)}")
    with pytest.raises(AuthError, match="signing key is not in the JWKS"):
        authenticator.tenant(f"Bearer {token(kid='unknown')}")
    with pytest.raises(AuthError, match="missing credentials"):
        authenticator.tenant(None)
