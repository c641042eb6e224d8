"""ragline on AWS, exercised on loopback: moto in server mode (S3, DynamoDB, SQS, Cognito, API Gateway Management
API) through the real boto3 client, LanceDB on ``s3://`` at that endpoint, and the loopback Bedrock. Every
resource is created from ``deploy/template.yaml``'s own properties, and ragline is configured from the functions'
environment as the template declares it."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import boto3
import pytest

from ragline.interfaces.aws import handlers
from ragline.seams import Identity
from ragline.testing.provision import ACCOUNT, Stack, load_template

from conftest import needs_tesseract

TEMPLATE = Path(__file__).resolve().parents[1] / "deploy" / "template.yaml"

FIXTURES = Path(__file__).parent / "fixtures"
REGION = "us-east-1"
QUESTION = "When did Adobe make the PDF specification available free of charge?"


def aws(service, moto_url):
    return boto3.client(service, endpoint_url=moto_url, region_name=REGION)


def drain(stack, moto_url, *, wait=2):
    """What Lambda's SQS event source mapping does: receive a batch, invoke, delete what succeeded.

    Failed messages are made visible again at once (on AWS, after the visibility timeout)."""
    sqs = aws("sqs", moto_url)
    got = sqs.receive_message(QueueUrl=stack.refs["IngestQueue"], MaxNumberOfMessages=10, WaitTimeSeconds=wait,
                              AttributeNames=["All"]).get("Messages", [])
    if not got:
        return None
    event = {"Records": [{"messageId": m["MessageId"], "receiptHandle": m["ReceiptHandle"], "body": m["Body"],
                          "attributes": m["Attributes"], "eventSource": "aws:sqs"} for m in got]}
    result = handlers.ingest(event)
    failed = {f["itemIdentifier"] for f in result["batchItemFailures"]}
    for m in got:
        if m["MessageId"] in failed:
            sqs.change_message_visibility(QueueUrl=stack.refs["IngestQueue"], ReceiptHandle=m["ReceiptHandle"],
                                          VisibilityTimeout=0)
        else:
            sqs.delete_message(QueueUrl=stack.refs["IngestQueue"], ReceiptHandle=m["ReceiptHandle"])
    return result, got


def drain_all(stack, moto_url):
    results = []
    while (out := drain(stack, moto_url, wait=1)) is not None:
        results.append(out)
    return results


def sign_in(stack, moto_url, email="ana@example.com"):
    """A real Cognito access token (moto signs it with the pool's key) and the user's tenant (``jwt:`` + sub)."""
    idp = aws("cognito-idp", moto_url)
    pool, client_id = stack.refs["UserPool"], stack.refs["UserPoolClient"]
    idp.admin_create_user(UserPoolId=pool, Username=email, MessageAction="SUPPRESS")
    idp.admin_set_user_password(UserPoolId=pool, Username=email, Password="Correct-Horse-42!", Permanent=True)
    tokens = idp.initiate_auth(ClientId=client_id, AuthFlow="USER_PASSWORD_AUTH",
                               AuthParameters={"USERNAME": email, "PASSWORD": "Correct-Horse-42!"})
    user = idp.admin_get_user(UserPoolId=pool, Username=email)
    sub = next(a["Value"] for a in user["UserAttributes"] if a["Name"] == "sub")
    return tokens["AuthenticationResult"]["AccessToken"], f"jwt:{sub}"  # a token's tenant, apart from keys'


def ws_event(route, connection, body=None, token=None):
    event = {"requestContext": {"routeKey": route, "connectionId": connection, "domainName": "example",
                                "stage": "prod"}}
    if token:
        event["queryStringParameters"] = {"token": token}
    if body is not None:
        event["body"] = json.dumps(body)
    return event


def posted(connection):
    """The JSON events the handler posted to a connection (moto keeps the bytes per connection)."""
    from moto.apigatewaymanagementapi.models import apigatewaymanagementapi_backends

    data = apigatewaymanagementapi_backends[ACCOUNT][REGION].connections[connection].data.decode()
    events, decoder, at = [], json.JSONDecoder(), 0
    while at < len(data):
        event, at = decoder.raw_decode(data, at)
        events.append(event)
    return events


class LambdaContext:
    def __init__(self, seconds):
        self.until = time.monotonic() + seconds

    def get_remaining_time_in_millis(self):
        return int((self.until - time.monotonic()) * 1000)


def test_the_template_provisions_what_the_code_expects(stack, moto_url):
    ddb = aws("dynamodb", moto_url)
    ttl = ddb.describe_time_to_live(TableName=stack.refs["Table"])["TimeToLiveDescription"]
    assert ttl == {"TimeToLiveStatus": "ENABLED", "AttributeName": "expires_at"}
    attrs = aws("sqs", moto_url).get_queue_attributes(QueueUrl=stack.refs["IngestQueue"], AttributeNames=["All"])
    redrive = json.loads(attrs["Attributes"]["RedrivePolicy"])
    assert redrive["deadLetterTargetArn"] == stack.arns["IngestDeadLetterQueue"]
    assert int(redrive["maxReceiveCount"]) == 2
    text = TEMPLATE.read_text()
    for action in ("bedrock:InvokeModel", "bedrock:InvokeModelWithResponseStream", "kendra:Retrieve",
                   "execute-api:ManageConnections", "dynamodb:Query", "s3:GetObject"):
        assert action in text


def test_pdf_in_the_bucket_is_answered_over_the_websocket_then_forgotten_when_deleted(stack, moto_url, models):
    s3 = aws("s3", moto_url)
    bucket = stack.refs["DocumentsBucket"]
    token, sub = sign_in(stack, moto_url)
    s3.put_object(Bucket=bucket, Key=f"uploads/{sub}/reports/sample.pdf",
                  Body=(FIXTURES / "pdf" / "sample_pdf_1.pdf").read_bytes())
    results = drain_all(stack, moto_url)
    assert results and all(r["batchItemFailures"] == [] for r, _ in results)
    index_objects = s3.list_objects_v2(Bucket=bucket, Prefix="index/").get("KeyCount", 0)
    assert index_objects > 0  # LanceDB wrote its table to S3

    assert handlers.websocket(ws_event("$connect", "conn-bad", token="not-a-jwt"))["statusCode"] == 401
    assert handlers.websocket(ws_event("$connect", "conn-1", token=token))["statusCode"] == 200
    out = handlers.websocket(ws_event("sendMessage", "conn-1", {"action": "sendMessage", "question": QUESTION}),
                             LambdaContext(30))
    assert out["statusCode"] == 200
    events = posted("conn-1")
    kinds = [e["type"] for e in events]
    # the same events, in the same order, as the local WebSocket and SSE (interfaces/wire.py)
    assert kinds[0] == "sources" and kinds[-2:] == ["usage", "done"] and set(kinds[1:-2]) == {"token", "verdict"}
    answer = events[-1]["answer"]
    verdicts = [e for e in events if e["type"] == "verdict"]  # each sentence checked, as it completed
    assert [v["verdict"] for v in verdicts] == [s["verdict"] for s in answer["sentences"]] and answer["supported"]
    assert "".join(e["text"] for e in events if e["type"] == "token") == answer["answer"]
    assert "1993" in answer["sources"][0]["excerpt"] and answer["sources"][0]["doc_id"] == "reports/sample.pdf"
    assert answer["citations"][0]["doc_id"] == "reports/sample.pdf"
    assert answer["model"].startswith("bedrock:anthropic.claude-3-haiku")
    assert models.chat_requests()[0]["path"].endswith("/converse-stream")

    s3.delete_object(Bucket=bucket, Key=f"uploads/{sub}/reports/sample.pdf")
    drain_all(stack, moto_url)
    handlers.websocket(ws_event("sendMessage", "conn-1", {"action": "sendMessage", "question": QUESTION}))
    after = posted("conn-1")[len(events):]
    assert after[-1]["type"] == "done" and after[-1]["answer"]["sources"] == []
    assert "reports/sample.pdf" not in json.dumps(after)
    assert handlers.websocket(ws_event("$disconnect", "conn-1"))["statusCode"] == 200


def test_another_tenant_never_sees_the_document(stack, moto_url):
    s3 = aws("s3", moto_url)
    _, sub_a = sign_in(stack, moto_url, "a@example.com")
    token_b, _ = sign_in(stack, moto_url, "b@example.com")
    s3.put_object(Bucket=stack.refs["DocumentsBucket"], Key=f"uploads/{sub_a}/sample.pdf",
                  Body=(FIXTURES / "pdf" / "sample_pdf_1.pdf").read_bytes())
    drain_all(stack, moto_url)
    handlers.websocket(ws_event("$connect", "conn-b", token=token_b))
    handlers.websocket(ws_event("sendMessage", "conn-b", {"question": QUESTION}))
    done = posted("conn-b")[-1]
    assert done["type"] == "done" and done["answer"]["sources"] == []


def test_a_bad_file_fails_alone_and_ends_in_the_dead_letter_queue_with_its_reason(stack, moto_url):
    s3 = aws("s3", moto_url)
    bucket = stack.refs["DocumentsBucket"]
    s3.put_object(Bucket=bucket, Key="uploads/acme/broken.pdf", Body=b"%PDF-1.7 this is not really a pdf")
    s3.put_object(Bucket=bucket, Key="uploads/acme/notes.md", Body=b"# Notes\n\nThe launch is on Tuesday.")
    first = drain_all(stack, moto_url)
    failed = [f for r, _ in first for f in r["batchItemFailures"]]
    handled = [m for _, ms in first for m in ms]
    broken_ids = {m["MessageId"] for m in handled if "broken.pdf" in m["Body"]}
    assert {f["itemIdentifier"] for f in failed} == broken_ids  # only the bad file's message is retried
    registry = handlers._rag().registry
    assert registry.get("acme", "notes.md").status == "ready"
    row = registry.get("acme", "broken.pdf")
    assert row.status == "failed" and "broken.pdf" in row.error
    # maxReceiveCount is 2 here: after the second failed delivery SQS moves the message to the dead-letter queue
    dlq = aws("sqs", moto_url).receive_message(QueueUrl=stack.refs["IngestDeadLetterQueue"], WaitTimeSeconds=1,
                                                MaxNumberOfMessages=10).get("Messages", [])
    assert len(dlq) == 1 and "uploads%2Facme%2Fbroken.pdf" in dlq[0]["Body"]


def test_a_file_over_the_limit_is_refused_before_download(stack, moto_url, monkeypatch):
    monkeypatch.setenv("RAGLINE_MAX_FILE_BYTES", "100")
    handlers._rag.cache_clear()
    aws("s3", moto_url).put_object(Bucket=stack.refs["DocumentsBucket"], Key="uploads/acme/big.txt", Body=b"x" * 500)
    drain_all(stack, moto_url)
    assert "over the 100 B limit" in handlers._rag().registry.get("acme", "big.txt").error


class GoneServer:
    """An API Gateway Management API whose connections are all gone (410 GoneException)."""

    def __init__(self):
        self.posts = 0
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                self.rfile.read(int(self.headers.get("Content-Length", "0")))
                owner.posts += 1
                data = b'{"message": "gone"}'
                self.send_response(410)
                self.send_header("x-amzn-ErrorType", "GoneException")
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"


def test_the_websocket_handler_answers_unchanged_from_a_knowledge_base(stack, moto_url, models, monkeypatch):
    """The template's answerer option: the handler, the connection and the conversation are the same."""
    token, sub = sign_in(stack, moto_url, email="kb@example.com")
    models.passages = [
        {"id": "pdf", "title": "PDF", "tenant": sub, "uri": "s3://kb-docs/pdf.md", "language": "en",
         "text": "Adobe made the PDF specification available free of charge in 1993. PDF became an ISO standard."},
        {"id": "other", "title": "Other", "tenant": "someone-else", "uri": "s3://kb-docs/other.md",
         "language": "en", "text": "Adobe made the PDF specification available free of charge in 2024."}]
    kb = Stack.of(load_template(TEMPLATE),
                  parameters={"KnowledgeBaseId": "KB12345678", "KnowledgeBaseMode": "answerer"})
    kb.refs.update(stack.refs)
    for key in ("RAGLINE_CHAT_MODEL", "RAGLINE_RETRIEVER", "RAGLINE_KNOWLEDGE_BASE_ID"):
        monkeypatch.setenv(key, kb.environment(load_template(TEMPLATE))[key])
    monkeypatch.setenv("RAGLINE_KNOWLEDGE_BASE_TENANT_ATTRIBUTE", "tenant")
    handlers._rag.cache_clear()
    assert handlers.websocket(ws_event("$connect", "conn-kb", token=token))["statusCode"] == 200
    out = handlers.websocket(ws_event("sendMessage", "conn-kb", {"action": "sendMessage", "question": QUESTION}),
                             LambdaContext(30))
    events = posted("conn-kb")
    kinds = [e["type"] for e in events]
    assert out["statusCode"] == 200 and [k for k in kinds if k != "verdict"] == ["sources", "token", "usage", "done"]
    assert "verdict" in kinds
    answer = events[-1]["answer"]
    assert answer["answer"] == "Adobe made the PDF specification available free of charge in 1993 [1]."
    assert [s["doc_id"] for s in answer["sources"]] == ["s3://kb-docs/pdf.md"]
    assert answer["model"] == "knowledge-base:KB12345678:anthropic.claude-3-haiku-20240307-v1:0"
    request = next(r for r in models.requests if r["path"] == "/retrieveAndGenerateStream")
    vector = request["body"]["retrieveAndGenerateConfiguration"]["knowledgeBaseConfiguration"][
        "retrievalConfiguration"]["vectorSearchConfiguration"]
    assert vector["filter"] == {"equals": {"key": "tenant", "value": sub}}


def test_a_gone_connection_stops_the_answer(stack, moto_url, models, monkeypatch):
    s3 = aws("s3", moto_url)
    s3.put_object(Bucket=stack.refs["DocumentsBucket"], Key="uploads/acme/sample.pdf",
                  Body=(FIXTURES / "pdf" / "sample_pdf_1.pdf").read_bytes())
    drain_all(stack, moto_url)
    handlers._rag().registry.connection_put("conn-gone", Identity("acme", "none"))
    gone = GoneServer()
    monkeypatch.setenv("RAGLINE_WEBSOCKET_ENDPOINT", gone.url)
    handlers._rag.cache_clear()
    models.script = ["slow:0.25"]  # 12 tokens: about 3 s if the handler kept going
    started = time.monotonic()
    out = handlers.websocket(ws_event("sendMessage", "conn-gone", {"question": QUESTION}))
    elapsed = time.monotonic() - started
    gone.server.shutdown()
    gone.server.server_close()
    assert out["statusCode"] == 410 and gone.posts == 1
    assert elapsed < 2.0
    assert handlers._rag().registry.connection_identity("conn-gone") is None


def test_malformed_websocket_frames_get_an_error_event(stack, moto_url):
    handlers._rag().registry.connection_put("conn-frames", Identity("acme", "none"))
    for body, message in (("not json", "malformed message"), ("[1, 2]", "send one JSON object per message"),
                          ('{"action": "sendMessage"}', 'send {"action": "sendMessage"')):
        event = ws_event("sendMessage", "conn-frames")
        event["body"] = body
        assert handlers.websocket(event)["statusCode"] == 400
        reply = posted("conn-frames")[-1]
        assert reply["type"] == "error" and reply["error"] == "InputError" and message in reply["message"], reply


@pytest.mark.parametrize(("identity", "reason"), [
    (Identity("jwt:ana", "jwt", expires_at=time.time() - 1), "the token has expired"),
    (Identity("acme", "api_key", key_hash="0" * 64), "the API key was revoked"),
])
def test_a_connection_whose_credential_lapsed_is_told_why_and_closed(stack, moto_url, monkeypatch, identity, reason):
    """A token that expired (or a key revoked) since $connect: the next message gets the reason, and API Gateway's
    DeleteConnection closes the socket. (Closing an idle one within seconds needs the API Gateway stand-in.)"""
    from moto.apigatewaymanagementapi.models import ApiGatewayManagementApiBackend

    closed: dict[str, str] = {}
    keep = ApiGatewayManagementApiBackend.delete_connection

    def delete_connection(self, connection_id):  # what the client saw before API Gateway closed it
        closed[connection_id] = self.connections[connection_id].data.decode()
        keep(self, connection_id)

    monkeypatch.setattr(ApiGatewayManagementApiBackend, "delete_connection", delete_connection)
    handlers._rag().registry.connection_put("conn-lapsed", identity)
    out = handlers.websocket(ws_event("sendMessage", "conn-lapsed", {"question": QUESTION}))
    assert out["statusCode"] == 401
    assert json.loads(closed["conn-lapsed"]) == {"type": "error", "error": "AuthError", "message": reason}
    assert handlers._rag().registry.connection_identity("conn-lapsed") is None


def test_the_http_function_uploads_to_the_bucket_and_answers_with_a_cognito_token(stack, moto_url, monkeypatch):
    """The HTTP function's settings (uploads go to S3; S3 notifications ingest them), on uvicorn."""
    import httpx

    from ragline.compose import Ragline
    from ragline.interfaces.http.app import create_app
    from ragline.settings import Settings

    from conftest import serve

    monkeypatch.setenv("RAGLINE_UPLOADS_BUCKET", stack.refs["DocumentsBucket"])
    token, sub = sign_in(stack, moto_url)
    url, stop = serve(create_app(Ragline(Settings())))
    auth = {"Authorization": f"Bearer {token}"}
    try:
        assert httpx.get(f"{url}/v1/documents", timeout=30).status_code == 401
        pdf = (FIXTURES / "pdf" / "sample_pdf_1.pdf").read_bytes()
        up = httpx.post(f"{url}/v1/documents", headers=auth, files=[("files", ("sample.pdf", pdf))], timeout=30)
        assert up.status_code == 202 and up.json()["status_urls"] == ["/v1/documents/sample.pdf"]
        keys = [o["Key"] for o in aws("s3", moto_url).list_objects_v2(
            Bucket=stack.refs["DocumentsBucket"], Prefix="uploads/")["Contents"]]
        assert keys == [f"uploads/{sub}/sample.pdf"]
        drain_all(stack, moto_url)  # the ingestion function's turn
        assert httpx.get(f"{url}/v1/documents/sample.pdf", headers=auth, timeout=30).json()["status"] == "ready"
        answer = httpx.post(f"{url}/v1/query", headers=auth, json={"question": QUESTION}, timeout=60).json()
        assert answer["citations"][0]["doc_id"] == "sample.pdf"
        assert httpx.delete(f"{url}/v1/documents/sample.pdf", headers=auth, timeout=30).status_code == 200
        assert aws("s3", moto_url).list_objects_v2(Bucket=stack.refs["DocumentsBucket"], Prefix="uploads/")[
            "KeyCount"] == 0
        drain_all(stack, moto_url)  # the removal notification finds nothing left to do
    finally:
        stop()


def unprovisioned(template, parameters):
    """The template's stack with its parameters, and made-up ids for the resources it would create."""
    stack = Stack.of(template, parameters=parameters)
    stack.refs.update(Table="ragline-table", UserPool="us-east-1_pool", UserPoolClient="client", WebSocketApi="ws1",
                      GroundingGuardrail="gr-created")
    stack.arns.update(Table=f"arn:aws:dynamodb:us-east-1:{ACCOUNT}:table/ragline-table",
                      UserPool=f"arn:aws:cognito-idp:us-east-1:{ACCOUNT}:userpool/us-east-1_pool")
    stack.refs.update(SignInDomain="ragline-123456789012")
    return stack


@pytest.mark.parametrize(("parameters", "expected", "statements"), [
    ({}, {"store": "lancedb", "retriever": "store", "chat_model": "bedrock"}, set()),
    ({"KnowledgeBaseId": "KB12345678"}, {"retriever": "knowledge-base", "chat_model": "bedrock"},
     {"HttpFunction:KnowledgeBase", "WebSocketFunction:KnowledgeBase"}),
    ({"KnowledgeBaseId": "KB12345678", "KnowledgeBaseMode": "answerer"},
     {"retriever": "store", "chat_model": "knowledge-base", "knowledge_base_id": "KB12345678"},
     {"HttpFunction:KnowledgeBase", "WebSocketFunction:KnowledgeBase"}),
    ({"KendraIndexId": "0f3e1c2a-4b5d-4e6f-8a9b-0c1d2e3f4a5b"}, {"retriever": "kendra"},
     {"HttpFunction:Kendra", "WebSocketFunction:Kendra"}),
    ({"OpenSearchEndpoint": "https://abc.us-east-1.aoss.amazonaws.com",
      "OpenSearchResourceArn": f"arn:aws:aoss:us-east-1:{ACCOUNT}:collection/abc"},
     {"store": "opensearch", "opensearch_auth": "aoss"},
     {"HttpFunction:OpenSearchServerlessRead", "WebSocketFunction:OpenSearchServerlessRead",
      "IngestFunction:OpenSearchServerlessWrite"}),
    ({"OpenSearchEndpoint": "https://search-d.us-east-1.es.amazonaws.com", "OpenSearchService": "es",
      "OpenSearchResourceArn": f"arn:aws:es:us-east-1:{ACCOUNT}:domain/d"},
     {"store": "opensearch", "opensearch_auth": "es"},
     {"HttpFunction:OpenSearchDomainRead", "WebSocketFunction:OpenSearchDomainRead",
      "IngestFunction:OpenSearchDomainWrite"}),
    ({"GroundingCheck": "guardrail", "Verify": "drop"},
     {"verifier": "guardrail", "verify": "drop", "guardrail_id": "gr-created", "guardrail_version": "DRAFT"},
     {"HttpFunction:GroundingCheck", "WebSocketFunction:GroundingCheck"}),
    ({"RerankModelId": "amazon.rerank-v1:0"}, {"reranker": "bedrock", "rerank_model": "amazon.rerank-v1:0"},
     {"HttpFunction:Rerank", "WebSocketFunction:Rerank", "HttpFunction:RerankModel", "WebSocketFunction:RerankModel"}),
    ({"GroundingCheck": "guardrail", "GuardrailId": "gr-mine", "GuardrailVersion": "3"},
     {"verifier": "guardrail", "guardrail_id": "gr-mine", "guardrail_version": "3"},
     {"HttpFunction:GroundingCheck", "WebSocketFunction:GroundingCheck"}),
])
def test_each_retrieval_option_of_the_template_sets_ragline_and_its_iam(monkeypatch, parameters, expected, statements):
    from ragline.settings import Settings

    template = load_template(TEMPLATE)
    stack = unprovisioned(template, parameters)
    for key, value in stack.environment(template).items():
        monkeypatch.setenv(key, value)
    settings = Settings()
    assert {k: getattr(settings, k) for k in expected} == expected
    optional = {"Kendra", "KnowledgeBase", "OpenSearchServerlessRead", "OpenSearchDomainRead",
                "OpenSearchServerlessWrite", "OpenSearchDomainWrite", "GroundingCheck", "Rerank", "RerankModel"}
    found = set()
    for name in ("HttpFunction", "WebSocketFunction", "IngestFunction"):
        for policy in template["Resources"][name]["Properties"]["Policies"]:
            for statement in stack.resolve(policy["Statement"]):
                if statement is not None and statement["Sid"] in optional:
                    found.add(f"{name}:{statement['Sid']}")
    assert found == statements
    assert ("GroundingGuardrail" in stack.resources(template)) == (expected.get("guardrail_id") == "gr-created")


@pytest.mark.parametrize(("parameters", "auth", "reserved"), [
    ({}, "NONE", None),
    ({"StreamingUrlAuth": "AWS_IAM", "QueryReservedConcurrency": 20}, "AWS_IAM", 20),
])
def test_the_public_urls_exposure_and_the_query_functions_concurrency_are_parameters(parameters, auth, reserved):
    template = load_template(TEMPLATE)
    stack = Stack.of(template, parameters=parameters)
    http, ws = (template["Resources"][name]["Properties"] for name in ("HttpFunction", "WebSocketFunction"))
    assert stack.resolve(http["FunctionUrlConfig"])["AuthType"] == auth
    assert stack.resolve(http["ReservedConcurrentExecutions"]) == reserved
    assert stack.resolve(ws["ReservedConcurrentExecutions"]) == reserved


def test_the_websocket_handler_flags_what_a_hallucinating_model_says(stack, moto_url, monkeypatch):
    """The verification contract behind API Gateway: one verdict per sentence, the corrupted one unsupported."""
    from ragline.testing.hallucinate import HallucinatingOpenAIServer

    s3 = aws("s3", moto_url)
    token, sub = sign_in(stack, moto_url, email="verify@example.com")
    s3.put_object(Bucket=stack.refs["DocumentsBucket"], Key=f"uploads/{sub}/notes/lex.md", Body=(
        b"# Amazon Lex\n\nAmazon Lex stores the utterances of bots for 15 days for the GetUtterancesView operation."
        b"\n\n## Children\n\nBots that are directed at children under age 13 are subject to COPPA.\n"))
    drain_all(stack, moto_url)
    with HallucinatingOpenAIServer(corrupt=(1,)) as model:
        monkeypatch.setenv("RAGLINE_CHAT_MODEL", "openai")
        monkeypatch.setenv("RAGLINE_OPENAI_BASE_URL", model.base_url)
        handlers._rag.cache_clear()
        assert handlers.websocket(ws_event("$connect", "conn-v", token=token))["statusCode"] == 200
        out = handlers.websocket(ws_event("sendMessage", "conn-v", {
            "action": "sendMessage", "question": "How long does Amazon Lex store the utterances of bots?"}),
            LambdaContext(30))
    assert out["statusCode"] == 200
    events = posted("conn-v")
    verdicts = [e for e in events if e["type"] == "verdict"]
    assert verdicts and verdicts[0]["verdict"] == "unsupported" and verdicts[0]["reason"]
    assert model.corrupted[0] in verdicts[0]["text"]
    assert events[-1]["type"] == "done" and events[-1]["answer"]["supported"] < 1


PROFILE = "us.anthropic.claude-3-5-haiku-20241022-v1:0"


@pytest.mark.parametrize(("parameters", "resources", "regions"), [
    ({}, ["arn:aws:bedrock:*::foundation-model/anthropic.claude-3-haiku-20240307-v1:0",
          f"arn:aws:bedrock:*:{ACCOUNT}:inference-profile/anthropic.claude-3-haiku-20240307-v1:0"], ["us-east-1"]),
    ({"ChatModelId": PROFILE, "BedrockRegions": "us-east-1,us-west-2"},
     ["arn:aws:bedrock:*::foundation-model/anthropic.claude-3-5-haiku-20241022-v1:0",
      f"arn:aws:bedrock:*:{ACCOUNT}:inference-profile/{PROFILE}"], ["us-east-1", "us-west-2"]),
])
def test_the_query_functions_may_invoke_the_configured_model_in_its_regions_only(monkeypatch, parameters, resources,
                                                                                 regions):
    """Not every foundation model in every region: the model (or the inference profile and the model behind it),
    and the failover regions (or the stack's own); ragline is told the same regions."""
    from ragline.settings import Settings

    template = load_template(TEMPLATE)
    stack = unprovisioned(template, parameters)
    for function in ("HttpFunction", "WebSocketFunction"):
        statements = stack.resolve(template["Resources"][function]["Properties"]["Policies"][0]["Statement"])
        [models] = [s for s in statements if s and s.get("Sid") == "Models"]
        assert models["Resource"] == resources
        assert models["Condition"] == {"StringEquals": {"aws:RequestedRegion": regions}}
        assert not any("*" in r.rsplit("/", 1)[-1] for s in statements if s and s.get("Sid") == "Models"
                       for r in s["Resource"])
    for key, value in stack.environment(template).items():
        monkeypatch.setenv(key, value)
    settings = Settings()
    assert settings.bedrock_regions == (regions if "BedrockRegions" in parameters else [])
    assert settings.bedrock_model_id == parameters.get("ChatModelId", "anthropic.claude-3-haiku-20240307-v1:0")


@pytest.mark.parametrize(("parameters", "kendra", "knowledge_base"), [
    ({"KendraIndexId": "0" * 36}, None, None),
    ({"KendraIndexId": "0" * 36, "KendraTenantAttribute": "tenant"}, "tenant", None),
    ({"KnowledgeBaseId": "KB12345678", "KnowledgeBaseTenantAttribute": "owner"}, None, "owner"),
])
def test_the_tenant_attribute_of_kendra_and_knowledge_bases_is_a_parameter(monkeypatch, parameters, kendra,
                                                                           knowledge_base):
    """Unset, the managed index is shared by every signed-in user (the README says so); set, each reads their own."""
    from ragline.settings import Settings

    template = load_template(TEMPLATE)
    env = unprovisioned(template, parameters).environment(template)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    settings = Settings()
    assert settings.kendra_tenant_attribute == kendra
    assert settings.knowledge_base_tenant_attribute == knowledge_base


@needs_tesseract()  # the loopback Textract reads with Tesseract
def test_a_scanned_pdf_in_the_bucket_is_read_by_textract_and_answered(stack, moto_url, models):
    """Lambda has no Tesseract: the template's ingestion reads scanned pages with Textract (RAGLINE_OCR=textract)."""
    s3 = aws("s3", moto_url)
    token, sub = sign_in(stack, moto_url)
    s3.put_object(Bucket=stack.refs["DocumentsBucket"], Key=f"uploads/{sub}/scan.pdf",
                  Body=(FIXTURES / "pdf" / "non_text_searchable.pdf").read_bytes())
    results = drain_all(stack, moto_url)
    assert results and all(r["batchItemFailures"] == [] for r, _ in results)
    calls = [r for r in models.requests if r["target"] == "Textract.DetectDocumentText"]
    assert len(calls) == 1 and "Bytes" in calls[0]["body"]["Document"]  # one page, sent as bytes
    record = handlers._rag().registry.get(sub, "scan.pdf")
    assert record is not None and record.status == "ready"
    assert handlers.websocket(ws_event("$connect", "conn-scan", token=token))["statusCode"] == 200
    handlers.websocket(ws_event("sendMessage", "conn-scan", {
        "action": "sendMessage", "question": "What is an example of a non-text-searchable PDF?"}), LambdaContext(30))
    done = posted("conn-scan")[-1]
    assert done["type"] == "done" and done["answer"]["sources"][0]["doc_id"] == "scan.pdf"
    assert done["answer"]["sources"][0]["page"] == 1
