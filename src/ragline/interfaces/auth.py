"""Who is calling: no auth (loopback only), API keys (stored hashed), or JWT (RS256 via JWKS, as Cognito issues).

The caller's tenant comes from the key's record or the token's tenant claim; every route acts for that tenant.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from pathlib import Path
from typing import Any

from ragline.errors import AuthError, ConfigError
from ragline.seams import KeyStore
from ragline.settings import Settings

KEY_PREFIX = "rl_"


def hash_key(key: str) -> str:
    """The stored form of an API key."""
    return hashlib.sha256(key.encode()).hexdigest()


def create_key(registry: KeyStore, tenant: str, name: str = "") -> tuple[str, str]:
    """A new key for ``tenant``: (key id, the key). The key is not stored and cannot be shown again."""
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    key_id = hash_key(key)[:12]
    registry.key_add(key_id, tenant, name, hash_key(key))
    return key_id, key


class Authenticator:
    """Turns request credentials into a tenant, or raises AuthError (401)."""

    def __init__(self, settings: Settings, registry: KeyStore) -> None:
        self.settings = settings
        self.registry = registry
        self._jwks: Any = None
        if settings.auth == "jwt" and not settings.jwt_jwks:
            raise ConfigError("auth=jwt needs RAGLINE_JWT_JWKS (a JWKS URL or file)")

    def tenant(self, authorization: str | None, token: str | None = None) -> str:
        """The caller's tenant from an ``Authorization: Bearer …`` header (or a token passed separately)."""
        if self.settings.auth == "none":
            return self.settings.tenant
        credential = token
        if authorization:
            scheme, _, value = authorization.partition(" ")
            if scheme.lower() != "bearer" or not value.strip():
                raise AuthError("use 'Authorization: Bearer <credential>'")
            credential = value.strip()
        if not credential:
            raise AuthError("missing credentials: send 'Authorization: Bearer <credential>'")
        if self.settings.auth == "api_key":
            tenant = self.registry.key_tenant(hash_key(credential))
            if tenant is None:
                raise AuthError("unknown or revoked API key")
            return tenant
        return self._jwt_tenant(credential)

    def _signing_key(self, token: str) -> Any:
        import jwt

        source = self.settings.jwt_jwks or ""
        if source.startswith(("http://", "https://")):
            if self._jwks is None:
                self._jwks = jwt.PyJWKClient(source, cache_keys=True)
            return self._jwks.get_signing_key_from_jwt(token).key
        if self._jwks is None:
            self._jwks = jwt.PyJWKSet.from_dict(json.loads(Path(source).read_text(encoding="utf-8")))
        kid = jwt.get_unverified_header(token).get("kid")
        for key in self._jwks.keys:
            if kid is None or key.key_id == kid:
                return key.key
        raise AuthError("the token's signing key is not in the JWKS")

    def _jwt_tenant(self, token: str) -> str:
        import jwt

        try:
            claims = jwt.decode(
                token, self._signing_key(token), algorithms=["RS256"], issuer=self.settings.jwt_issuer,
                options={"verify_aud": False, "require": ["exp"]},
            )
        except jwt.ExpiredSignatureError as err:
            raise AuthError("the token has expired") from err
        except jwt.PyJWTError as err:
            raise AuthError(f"invalid token: {err}") from err
        audience = self.settings.jwt_audience
        if audience is not None:
            # ID tokens carry 'aud'; Cognito access tokens carry the app client in 'client_id'.
            aud = claims.get("aud", claims.get("client_id"))
            if audience not in (aud if isinstance(aud, list) else [aud]):
                raise AuthError("the token was issued for another audience")
        tenant = claims.get(self.settings.jwt_tenant_claim)
        if not isinstance(tenant, str) or not tenant:
            raise AuthError(f"the token has no {self.settings.jwt_tenant_claim!r} claim")
        return tenant
