"""The API Gateway WebSocket handler: ``$connect``, ``$disconnect``, ``sendMessage`` and ``$default``.

Client → server: ``{"action": "sendMessage", "type": "ask", "id", "question", "conversation_id"?, "k"?,
"filters"?, "model"?}`` (the local WebSocket's ``ask`` message plus API Gateway's route key), and
``{"action": "ping"}`` every few minutes to keep an idle connection open (API Gateway closes one after 10 idle
minutes); server → client: the answer's events as ``interfaces/wire.py`` encodes them, each with the turn's
``id``, exactly as the local WebSocket sends them.

* ``$connect`` checks the Cognito JWT (``?token=`` or the Authorization header) and records the connection with
  its identity; ``$disconnect`` forgets it; every message re-checks the identity (a lapsed one gets the reason and
  ``DeleteConnection``).
* ``sendMessage`` validates the message and, with ``RAGLINE_WEBSOCKET_ANSWER=async`` (the template's), hands the
  turn to an asynchronous invocation of this same function and returns at once: API Gateway cuts a route's
  integration at 29 s, the function's own timeout (and the answer deadline derived from it) is what bounds the
  answer. ``inline`` answers within the route's invocation.
* Every post stays under API Gateway's 128 KB message quota (``wire.frames``: long tokens split, excerpts trimmed,
  what the stream already carried omitted from ``done``); throttled posts are retried; a post that fails for
  good ends the answer with an ``error`` event that says why, never silence. A gone connection (410) stops the
  model.
"""

from __future__ import annotations

import json
import logging
import time
from functools import cache
from typing import Any

from pydantic import ValidationError

from ragline.compose import Ragline
from ragline.errors import AuthError, DeliveryError, InputError, RaglineError, RateLimitedError, validation_message
from ragline.interfaces.auth import Authenticator
from ragline.interfaces.requests import QueryRequest
from ragline.interfaces.turns import Turns
from ragline.interfaces.wire import error_json, event_json, frames
from ragline.providers.aws.clients import client, error_code
from ragline.resilience import RetryPolicy
from ragline.seams import Identity
from ragline.settings import Settings
from ragline.types import Token

log = logging.getLogger("ragline.interfaces.aws")
FLUSH_SECONDS = 0.1  # tokens are posted in groups at most this far apart (one HTTPS call per group)
DEADLINE_MARGIN = 3.0  # seconds kept back from the Lambda timeout to post the partial answer
MESSAGE_LIMIT = 128 * 1024  # API Gateway's WebSocket message payload quota, for PostToConnection too
RETRIED = {"LimitExceededException", "TooManyRequestsException", "ThrottlingException",
           "InternalServerErrorException", "ServiceException"}


@cache
def rag_from_env() -> Ragline:
    """One engine per execution environment, from ``RAGLINE_*`` (as the template sets them)."""
    logging.basicConfig(level=logging.INFO, force=True)
    return Ragline(Settings())


def websocket(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
    """API Gateway WebSocket handler (and the asynchronous invocation that answers a ``sendMessage``)."""
    rag = rag_from_env()
    request = event["requestContext"]
    if event.get("ragline") == "answer":  # this function, invoked by its own sendMessage
        return _answer(rag, request, event["tenant"], event["message"], context)
    route, connection = request["routeKey"], request["connectionId"]
    if route == "$connect":
        headers = {k.lower(): v for k, v in (event.get("headers") or {}).items()}
        token = (event.get("queryStringParameters") or {}).get("token")
        client_ip = str(request.get("identity", {}).get("sourceIp", ""))
        try:
            identity = _authenticator(rag).identify(headers.get("authorization"), token, client_ip)
        except AuthError as err:
            log.info(json.dumps({"stage": "connect", "refused": str(err)}))
            return {"statusCode": 429 if isinstance(err, RateLimitedError) else 401, "body": str(err)}
        rag.connections.connection_put(connection, identity)
        return {"statusCode": 200}
    if route == "$disconnect":
        rag.connections.connection_delete(connection)
        return {"statusCode": 200}
    return _message(rag, event, context)


def _message(rag: Ragline, event: dict[str, Any], context: Any) -> dict[str, Any]:
    """``sendMessage`` or ``$default``: check the sender, then hand the turn over (or answer it)."""
    request = event["requestContext"]
    post = _Poster(rag, request)
    identity = rag.connections.connection_identity(request["connectionId"])
    refused = _signed_out(rag, identity)
    if refused is not None or identity is None:
        post(error_json(refused or AuthError("not signed in")))
        post.close()
        rag.connections.connection_delete(request["connectionId"])
        return {"statusCode": 401}
    message = _read(post, request["routeKey"], event.get("body"))
    if message is None:
        return {"statusCode": 400}
    if message.get("action") == "ping":  # keep-alive: the message itself resets API Gateway's idle timer
        return {"statusCode": 200}
    if context is None or rag.settings.websocket_answer == "inline":
        return _answer(rag, request, identity.tenant, message, context)
    handover = {"ragline": "answer", "tenant": identity.tenant, "message": message,
                "requestContext": {k: request[k] for k in ("connectionId", "domainName", "stage")}}
    try:
        _invoke_async(rag, context.invoked_function_arn, handover)
    except Exception as err:  # the turn could not be handed over: say so, now
        log.exception(json.dumps({"stage": "websocket", "handover": "failed"}))
        post(error_json(DeliveryError(f"the answer could not be started ({error_code(err) or err}); try again")))
        return {"statusCode": 502}
    return {"statusCode": 200}


def _read(post: _Poster, route: str, body: str | None) -> dict[str, Any] | None:
    """The message as a valid ``ask`` (or a ping); None when it is not one, after telling the client why."""
    try:
        message = json.loads(body or "{}")
        if not isinstance(message, dict):
            raise InputError('send one JSON object per message, like {"action": "sendMessage", "question": "..."}')
        post.turn = message.get("id")
        if message.get("action") == "ping":
            return message
        if route != "sendMessage" or not isinstance(message.get("question"), str):
            raise InputError('send {"action": "sendMessage", "question": "..."} (or {"action": "ping"})')
        QueryRequest(question=message["question"], k=message.get("k"), filters=message.get("filters") or {})
    except ValueError as err:  # JSON, or the request's validation
        problem = validation_message(err) if isinstance(err, ValidationError) else str(err)
        post(error_json(InputError(f"malformed message: {problem}")))
        return None
    except RaglineError as err:
        post(error_json(err))
        return None
    return message


def _invoke_async(rag: Ragline, function: str, payload: dict[str, Any]) -> None:
    """Invoke ``function`` with ``payload`` as an ``Event`` (returns once Lambda queued it); throttling retried."""
    api = client("lambda", rag.settings.aws_region, rag.settings.endpoint_for("lambda"), 10.0)
    RetryPolicy.from_settings(rag.settings).run(
        lambda: api.invoke(FunctionName=function, InvocationType="Event", Payload=json.dumps(payload).encode()),
        transient=_retried)


def _retried(err: Exception) -> bool:
    code = error_code(err)
    return code in RETRIED or not code  # throttling, 5xx, or no answer at all


def _signed_out(rag: Ragline, identity: Identity | None) -> AuthError | None:
    """Why a connection may no longer ask: never signed in, or its key revoked or token expired since $connect."""
    if identity is None:
        return AuthError("this connection is not signed in; reconnect with a token")
    try:
        _authenticator(rag).recheck(identity)
    except AuthError as err:
        return err
    return None


class _Poster:
    """Posts wire objects to one connection, each cut to API Gateway's quota and tagged with the turn's ``id``.

    Remembers when the connection is gone (410) or a post failed for good (``failed``; the client was told).
    """

    def __init__(self, rag: Ragline, request: dict[str, Any], turn: Any = None) -> None:
        endpoint = rag.settings.websocket_endpoint or f"https://{request['domainName']}/{request['stage']}"
        self.api = client("apigatewaymanagementapi", rag.settings.aws_region, endpoint, 10.0)
        self.policy = RetryPolicy.from_settings(rag.settings)
        self.connection = request["connectionId"]
        self.turn = turn
        self.gone = False
        self.failed = ""
        self.posts = 0

    def __call__(self, payload: dict[str, Any]) -> bool:
        if self.gone or self.failed:
            return False
        try:
            for frame in frames(self._tagged(payload), MESSAGE_LIMIT):
                self._post(frame)
        except Exception as err:
            if error_code(err) == "GoneException":
                self.gone = True
                return False
            self.failed = f"{error_code(err) or type(err).__name__}: {err}"
            log.exception(json.dumps({"stage": "websocket", "connection": self.connection,
                                      "post_failed": self.failed}))
            self._tell(DeliveryError(f"part of the answer could not be delivered ({self.failed[:200]}); the answer "
                                     "stopped"))
            return False
        return True

    def _tagged(self, payload: dict[str, Any]) -> dict[str, Any]:
        """The wire object with the turn's ``id`` (as the local WebSocket sends it)."""
        return payload if self.turn is None else {"id": self.turn, **payload}

    def _post(self, frame: dict[str, Any]) -> None:
        data = json.dumps(frame, ensure_ascii=False).encode()
        self.policy.run(lambda: self.api.post_to_connection(ConnectionId=self.connection, Data=data),
                        transient=_retried)
        self.posts += 1

    def _tell(self, err: RaglineError) -> None:
        """Best effort: the client learns why the answer stopped (the failure may be for every post)."""
        try:
            self.api.post_to_connection(ConnectionId=self.connection,
                                        Data=json.dumps(self._tagged(error_json(err))).encode())
        except Exception as again:
            log.warning(json.dumps({"stage": "websocket", "connection": self.connection, "error_post": str(again)}))

    def close(self) -> None:
        """Close the connection from the server side (API Gateway's DeleteConnection)."""
        try:
            self.api.delete_connection(ConnectionId=self.connection)
        except Exception as err:
            if error_code(err) != "GoneException":
                raise
        self.gone = True


def _answer(rag: Ragline, request: dict[str, Any], tenant: str, message: dict[str, Any],
            context: Any) -> dict[str, Any]:
    """One turn: the answer's events posted as the wire encodes them, tokens coalesced; sources come first."""
    post = _Poster(rag, request, message.get("id"))
    try:
        ask = QueryRequest(question=message["question"], k=message.get("k"), filters=message.get("filters") or {})
    except ValueError as err:
        post(error_json(InputError(f"malformed message: {validation_message(err)}")))
        return {"statusCode": 400}
    time_left = None
    if context is not None:  # never run into the Lambda timeout: answer partial before it
        time_left = context.get_remaining_time_in_millis() / 1000 - DEADLINE_MARGIN
    events = _turns(rag).answer(tenant, ask, model=str(message.get("model") or "ragline"),
                                conversation=str(message.get("conversation_id") or ""), time_left=time_left)
    pending: list[str] = []
    last = time.monotonic()
    try:
        for item in events:
            out = item
            if isinstance(item, Token):  # one post per group of tokens at most FLUSH_SECONDS apart
                pending.append(item.text)
                if time.monotonic() - last < FLUSH_SECONDS:
                    continue
                out = Token("".join(pending))
            elif pending and not post(event_json(Token("".join(pending)))):
                break
            pending, last = [], time.monotonic()
            if not post(event_json(out)):
                break
    finally:
        events.close()  # a gone client stops the model here
    if post.gone:
        rag.connections.connection_delete(request["connectionId"])
        log.info(json.dumps({"stage": "websocket", "gone": request["connectionId"], "posts": post.posts}))
        return {"statusCode": 410}
    return {"statusCode": 502 if post.failed else 200}


@cache
def _turns(rag: Ragline) -> Turns:
    return Turns(rag)


@cache
def _authenticator(rag: Ragline) -> Authenticator:
    """One per warm function: its JWKS and its count of failed sign-ins per address outlive an invocation."""
    return Authenticator(rag.settings, rag.registry)
