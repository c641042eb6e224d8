"""A loopback stand-in for Cognito's managed login (the hosted UI) and its OAuth 2.0 endpoints, over moto's pool.

moto serves Cognito's API (users, app clients, ``InitiateAuth``, the pool's signing keys) but not the hosted UI.
This stand-in does what the hosted UI does for a public app client, following Cognito's documentation:

* ``GET /oauth2/authorize`` takes ``response_type=code``, ``client_id``, ``redirect_uri``, ``state``, ``scope``,
  ``code_challenge`` and ``code_challenge_method=S256``; it refuses an unknown client, a ``redirect_uri`` not among
  the client's callback URLs, a client without the ``code`` flow, and a missing or non-S256 challenge, then shows
  the sign-in form (``/login``).
* ``POST /login`` checks the user's password with moto (``AdminInitiateAuth``: real tokens signed by the pool's
  key) and redirects to ``redirect_uri?code=…&state=…``.
* ``POST /oauth2/token`` (form-encoded, CORS allowed) exchanges a code once, within 5 minutes, for the same
  client and ``redirect_uri``, only with the ``code_verifier`` whose SHA-256 is the challenge; and a
  ``refresh_token`` for new tokens. Errors are ``{"error": "invalid_grant"}`` and the like, as Cognito answers.

Not proven here: Cognito's own login page (its look, MFA, federation), scopes in the tokens, hosted UI cookies.
"""

from __future__ import annotations

import base64
import hashlib
import html
import secrets
import time
from typing import Any
from urllib.parse import urlencode

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from ragline.testing.process import asgi_thread

CODE_SECONDS = 300
CORS = {"Access-Control-Allow-Origin": "*", "Access-Control-Allow-Headers": "Content-Type",
        "Access-Control-Allow-Methods": "POST, OPTIONS"}
AUTHORIZE = ("response_type", "client_id", "redirect_uri", "state", "scope", "code_challenge",
             "code_challenge_method")


class HostedUI:
    """Cognito's hosted UI for one user pool; use as a context manager (``origin`` is its domain)."""

    def __init__(self, idp: Any, pool_id: str) -> None:
        self.idp, self.pool_id = idp, pool_id
        self.codes: dict[str, dict[str, Any]] = {}
        self.sign_ins: list[str] = []
        self.origin = ""
        self._stop: Any = None

    def __enter__(self) -> HostedUI:
        app = Starlette(routes=[
            Route("/oauth2/authorize", self._authorize),
            Route("/login", self._login, methods=["GET", "POST"]),
            Route("/oauth2/token", self._token, methods=["POST", "OPTIONS"]),
        ])
        self.origin, self._stop = asgi_thread(app)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._stop is not None:
            self._stop()

    def _refusal(self, params: dict[str, str]) -> str:
        """Why Cognito would refuse this authorization request ("" when it would not)."""
        try:
            client = self.idp.describe_user_pool_client(UserPoolId=self.pool_id,
                                                        ClientId=params.get("client_id", ""))["UserPoolClient"]
        except Exception:
            return "invalid_client"
        if params.get("response_type") != "code" or "code" not in client.get("AllowedOAuthFlows", []):
            return "unauthorized_client"
        if params.get("redirect_uri") not in client.get("CallbackURLs", []):
            return "redirect_mismatch"
        if params.get("code_challenge_method") != "S256" or not params.get("code_challenge"):
            return "invalid_request: code_challenge with code_challenge_method S256 is required"
        return ""

    async def _authorize(self, request: Request) -> Response:
        params = dict(request.query_params)
        refusal = self._refusal(params)
        if refusal:
            return HTMLResponse(f"<p id=error>{html.escape(refusal)}</p>", status_code=400)
        return RedirectResponse(f"/login?{urlencode({k: params.get(k, '') for k in AUTHORIZE})}", status_code=302)

    async def _login(self, request: Request) -> Response:
        params = dict(request.query_params)
        error = ""
        if request.method == "POST":
            form = await request.form()
            params = {k: str(form.get(k, "")) for k in AUTHORIZE}
            refusal = self._refusal(params)
            if refusal:
                return HTMLResponse(f"<p id=error>{html.escape(refusal)}</p>", status_code=400)
            try:
                result = self.idp.admin_initiate_auth(
                    UserPoolId=self.pool_id, ClientId=params["client_id"], AuthFlow="ADMIN_USER_PASSWORD_AUTH",
                    AuthParameters={"USERNAME": str(form.get("username", "")),
                                    "PASSWORD": str(form.get("password", ""))})["AuthenticationResult"]
            except Exception:
                error = "Incorrect username or password."
            else:
                code = secrets.token_urlsafe(24)
                self.codes[code] = {"client_id": params["client_id"], "redirect_uri": params["redirect_uri"],
                                    "challenge": params["code_challenge"], "at": time.monotonic(), "tokens": result}
                self.sign_ins.append(str(form.get("username", "")))
                target = f"{params['redirect_uri']}?{urlencode({'code': code, 'state': params.get('state', '')})}"
                return RedirectResponse(target, status_code=302)
        hidden = "".join(f'<input type=hidden name="{k}" value="{html.escape(params.get(k, ""))}">' for k in AUTHORIZE)
        return HTMLResponse(
            "<!doctype html><title>Sign in</title><form method=post action=/login>"
            f"{hidden}<p id=error>{html.escape(error)}</p>"
            "<label>Email <input name=username autocomplete=username></label>"
            "<label>Password <input name=password type=password autocomplete=current-password></label>"
            "<button type=submit>Sign in</button></form>")

    async def _token(self, request: Request) -> Response:
        if request.method == "OPTIONS":
            return Response(status_code=204, headers=CORS)
        form = {k: str(v) for k, v in (await request.form()).items()}
        grant = form.get("grant_type")
        if grant == "authorization_code":
            issued = self.codes.pop(form.get("code", ""), None)
            verifier = form.get("code_verifier", "").encode()
            challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier).digest()).rstrip(b"=").decode()
            if issued is None or time.monotonic() - issued["at"] > CODE_SECONDS or \
                    issued["client_id"] != form.get("client_id") or issued["redirect_uri"] != form.get(
                        "redirect_uri") or challenge != issued["challenge"]:
                return JSONResponse({"error": "invalid_grant"}, status_code=400, headers=CORS)
            tokens = issued["tokens"]
            return JSONResponse({"access_token": tokens["AccessToken"], "id_token": tokens["IdToken"],
                                 "refresh_token": tokens["RefreshToken"], "token_type": "Bearer",
                                 "expires_in": tokens["ExpiresIn"]}, headers=CORS)
        if grant == "refresh_token":
            try:
                tokens = self.idp.admin_initiate_auth(
                    UserPoolId=self.pool_id, ClientId=form.get("client_id", ""), AuthFlow="REFRESH_TOKEN_AUTH",
                    AuthParameters={"REFRESH_TOKEN": form.get("refresh_token", "")})["AuthenticationResult"]
            except Exception:
                return JSONResponse({"error": "invalid_grant"}, status_code=400, headers=CORS)
            return JSONResponse({"access_token": tokens["AccessToken"], "id_token": tokens["IdToken"],
                                 "token_type": "Bearer", "expires_in": tokens["ExpiresIn"]}, headers=CORS)
        return JSONResponse({"error": "unsupported_grant_type"}, status_code=400, headers=CORS)
