"""Who is calling: no auth (loopback only), API keys (stored hashed), or JWT (RS256 via JWKS, as Cognito issues).

The caller's tenant comes from the key's record or the token's tenant claim (as ``jwt:CLAIM``, so a token can
never name an API key's or the CLI's tenant); every route acts for that tenant. Failed attempts are logged and,
past a number per minute from one address, refused for the rest of that minute (429).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import secrets
import threading
import time
from collections import deque
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ragline.errors import AuthError, ConfigError, InputError, RateLimitedError
from ragline.seams import Identity, KeyStore
from ragline.settings import Settings

KEY_PREFIX = "rl_"
log = logging.getLogger("ragline.auth")


def hash_key(key: str) -> str:
    """The stored form of an API key."""
    return hashlib.sha256(key.encode()).hexdigest()


def create_key(registry: KeyStore, tenant: str, name: str = "") -> tuple[str, str]:
    """A new key for ``tenant``: (key id, the key). The key is not stored and cannot be shown again."""
    if not tenant or ":" in tenant:
        raise InputError(f"tenant {tenant!r}: a key's tenant is a plain name (':' marks a token's tenants, jwt:…)")
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    key_id = hash_key(key)[:12]
    registry.key_add(key_id, tenant, name, hash_key(key))
    return key_id, key


class Authenticator:
    """Turns request credentials into a tenant, or raises AuthError (401); throttles addresses that keep failing."""

    def __init__(self, settings: Settings, registry: KeyStore) -> None:
        self.settings = settings
        self.registry = registry
        self._jwks: Any = None
        self._failures: dict[str, deque[float]] = {}
        self._lock = threading.Lock()
        if settings.auth == "jwt" and not settings.jwt_jwks:
            raise ConfigError("auth=jwt needs RAGLINE_JWT_JWKS (a JWKS URL or file)")

    def tenant(self, authorization: str | None, token: str | None = None, client: str = "") -> str:
        """The caller's tenant from an ``Authorization: Bearer …`` header (or a token passed separately)."""
        return self.identify(authorization, token, client).tenant

    def identify(self, authorization: str | None, token: str | None = None, client: str = "") -> Identity:
        """The caller's identity; a failure is logged (never the credential) and counted against ``client``."""
        if self.settings.auth == "none":
            return Identity(self.settings.tenant, "none")
        self._throttle(client)
        try:
            return self._identify(authorization, token)
        except AuthError as err:
            self._failed(client, err)
            raise

    def recheck(self, identity: Identity) -> None:
        """Raise AuthError if the credential behind ``identity`` no longer holds (revoked key, expired token)."""
        if identity.method == "api_key" and self.registry.key_tenant(identity.key_hash) != identity.tenant:
            raise AuthError("the API key was revoked")
        if time.time() >= identity.expires_at:
            raise AuthError("the token has expired")

    def _identify(self, authorization: str | None, token: str | None) -> Identity:
        credential = token
        if authorization:
            scheme, _, value = authorization.partition(" ")
            if scheme.lower() != "bearer" or not value.strip():
                raise AuthError("use 'Authorization: Bearer <credential>'")
            credential = value.strip()
        if not credential:
            raise AuthError("missing credentials: send 'Authorization: Bearer <credential>'")
        if self.settings.auth == "api_key":
            key_hash = hash_key(credential)
            tenant = self.registry.key_tenant(key_hash)
            if tenant is None:
                raise AuthError("unknown or revoked API key")
            return Identity(tenant, "api_key", key_hash=key_hash)
        return self._jwt_identity(credential)

    def _throttle(self, client: str) -> None:
        if not client:
            return
        window, allowed = 60.0, self.settings.auth_failures_per_minute
        with self._lock:
            recent = self._failures.get(client)
            if recent is None:
                return
            while recent and recent[0] < time.monotonic() - window:
                recent.popleft()
            if len(recent) >= allowed:
                wait = max(1, math.ceil(recent[0] + window - time.monotonic()))
                raise RateLimitedError(f"too many failed sign-ins from {client}; try again in {wait} s", wait)

    def _failed(self, client: str, err: AuthError) -> None:
        log.warning(json.dumps({"stage": "auth", "refused": str(err), "client": client or "unknown",
                                "method": self.settings.auth}))
        if not client:
            return
        with self._lock:
            if len(self._failures) > 10_000:  # bounded whatever the number of addresses: forget the quiet ones
                self._failures = {c: q for c, q in self._failures.items() if q and q[-1] > time.monotonic() - 60}
            self._failures.setdefault(client, deque(maxlen=1000)).append(time.monotonic())

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

    def _audiences(self) -> Iterator[str]:
        """The app clients whose tokens count: ``jwt_audience``, then the page's (found by name, when named)."""
        yield str(self.settings.jwt_audience)
        s = self.settings
        if s.cognito_client_name and s.jwt_issuer:
            from ragline.providers.aws.cognito import app_client_id, pool_of

            yield app_client_id(pool_of(s.jwt_issuer), s.cognito_client_name, s.aws_region,
                                s.endpoint_for("cognito-idp"))

    def _jwt_identity(self, token: str) -> Identity:
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
        if self.settings.jwt_audience is not None:
            # ID tokens carry 'aud'; Cognito access tokens carry the app client in 'client_id'.
            aud = claims.get("aud", claims.get("client_id"))
            if not any(a in (aud if isinstance(aud, list) else [aud]) for a in self._audiences()):
                raise AuthError("the token was issued for another audience")
        tenant = claims.get(self.settings.jwt_tenant_claim)
        if not isinstance(tenant, str) or not tenant:
            raise AuthError(f"the token has no {self.settings.jwt_tenant_claim!r} claim")
        # a token's tenants live apart from API keys' and the CLI's: a 'sub' of "default" is not the CLI's tenant
        return Identity(self.settings.jwt_tenant_prefix + tenant, "jwt", expires_at=float(claims["exp"]))
