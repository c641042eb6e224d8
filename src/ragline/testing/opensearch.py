"""A loopback OpenSearch for tests where no real one can run: the REST calls the store makes, checked and served.

It refuses what a real cluster would refuse: request bodies outside the documented query DSL and index mapping
(``parsing_exception``, ``mapper_parsing_exception``), unsigned or wrongly signed requests in SigV4 modes, and in
``aoss`` mode what Serverless vector collections do not support (custom document ids, ``_refresh``,
``_delete_by_query``). Responses have the documented shapes (``hits.total.value``, ``_bulk`` items, ``_count``).

Search is real enough for the store contract tests: k-NN by exact cosine/inner product (efficient filtering for
faiss and lucene, post-filtering for nmslib), BM25 (k1 1.2, b 0.75) over a lower-casing, stop-word-dropping,
suffix-stripping analyzer (a stand-in for the english analyzer), and the ``hybrid`` query with min-max
normalisation and a weighted arithmetic mean. Writes become visible at ``_refresh`` as in OpenSearch (at once in
``aoss`` mode, which refreshes by itself).
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import re
import uuid
from collections.abc import Mapping, Sequence
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, urlsplit

from ragline.testing.fakes import Loopback, QuietServer

_STOP = {  # Lucene's english stop words
    "a", "an", "and", "are", "as", "at", "be", "but", "by", "for", "if", "in", "into", "is", "it", "no", "not", "of",
    "on", "or", "such", "that", "the", "their", "then", "there", "these", "they", "this", "to", "was", "will", "with",
}
_TOKEN = re.compile(r"\w+")
_SPACES = {"faiss": {"innerproduct", "l2"}, "nmslib": {"cosinesimil", "l2", "innerproduct"},
           "lucene": {"cosinesimil", "l2", "innerproduct"}}
_FIELD_TYPES = {"knn_vector", "text", "keyword", "integer"}


_LEAVES: dict[str, Any] = {  # term-level queries: (the field's values, the query's value) -> match
    "term": lambda values, value: value in values,
    "terms": lambda values, wanted: bool(set(values) & set(wanted)),
    "prefix": lambda values, value: any(str(v).startswith(value) for v in values),
}


class DSLError(Exception):
    """A request OpenSearch would refuse with 400."""

    def __init__(self, kind: str, reason: str) -> None:
        super().__init__(reason)
        self.kind, self.reason = kind, reason


def analyze(text: str) -> list[str]:
    """Lower-case words without stop words, with plural and -ing/-ed endings stripped."""
    out = []
    for word in _TOKEN.findall(text.lower()):
        if word in _STOP:
            continue
        suffix = next((x for x in ("ing", "ed", "es", "s") if len(word) > len(x) + 2 and word.endswith(x)), "")
        out.append(word[: len(word) - len(suffix)])
    return out


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _one(clause: Mapping[str, Any], what: str) -> tuple[str, Any]:
    if not isinstance(clause, dict) or len(clause) != 1:
        raise DSLError("parsing_exception", f"[{what}] query malformed, must have exactly one field")
    return next(iter(clause.items()))


class _Index:
    def __init__(self, body: Mapping[str, Any]) -> None:
        settings = body.get("settings", {}).get("index", {})
        properties = body.get("mappings", {}).get("properties", {})
        vector = [(name, spec) for name, spec in properties.items() if spec.get("type") == "knn_vector"]
        if settings.get("knn") is not True or len(vector) != 1:
            raise DSLError("mapper_parsing_exception", "expected index.knn: true and one knn_vector field")
        for name, spec in properties.items():
            if spec.get("type") not in _FIELD_TYPES:
                raise DSLError("mapper_parsing_exception", f"no handler for type [{spec.get('type')}] of [{name}]")
        self.vector_field, spec = vector[0]
        method = spec.get("method", {})
        self.dimension, self.engine = spec.get("dimension"), method.get("engine", "nmslib")
        self.space = method.get("space_type", "l2")
        if not isinstance(self.dimension, int) or method.get("name") != "hnsw" or (
            self.space not in _SPACES.get(self.engine, set())
        ):
            raise DSLError("mapper_parsing_exception", f"invalid knn_vector method {method} or dimension")
        self.body = body
        self.properties = properties
        self.docs: dict[str, dict[str, Any]] = {}
        self.visible: dict[str, dict[str, Any]] = {}

    def check_source(self, source: Mapping[str, Any]) -> None:
        unknown = set(source) - set(self.properties)
        if unknown:  # the real index would map them dynamically; here they mean the store and mapping drifted
            raise DSLError("strict_dynamic_mapping_exception", f"fields {sorted(unknown)} are not in the mapping")
        vector = source.get(self.vector_field)
        if not isinstance(vector, list) or len(vector) != self.dimension:
            raise DSLError("mapper_parsing_exception",
                           f"Vector dimension mismatch. Expected: {self.dimension}, Given: {len(vector or [])}")


class FakeOpenSearch(Loopback):
    """OpenSearch on 127.0.0.1. ``service`` is ``aoss`` or ``es`` (SigV4 with that name) or ``none``.

    ``script`` injects failures, one entry per request, ``ok`` once it is used up: an HTTP status (``429``).
    Requests are recorded as (method, path, params, body).
    """

    def __init__(self, service: str = "none", region: str = "us-east-1", script: Sequence[str] = ()) -> None:
        self.service, self.region = service, region
        self.script = list(script)
        self.indices: dict[str, _Index] = {}
        self.pipelines: dict[str, dict[str, Any]] = {}
        self.requests: list[tuple[str, str, dict[str, str], Any]] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                """Quiet."""

            def _serve(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                status, payload = owner.handle(self.command, self.path, dict(self.headers.items()), raw)
                data = b"" if self.command == "HEAD" else json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _serve

        self._server = QuietServer(Handler)


    # --- dispatch ---------------------------------------------------------------------------------------------

    def handle(self, method: str, target: str, headers: Mapping[str, str], raw: bytes) -> tuple[int, Any]:
        """One request: (status, JSON body)."""
        parts = urlsplit(target)
        path = parts.path.strip("/")
        params = {k: v[0] for k, v in parse_qs(parts.query).items()}
        headers = {k.lower(): v for k, v in headers.items()}
        try:
            lines = [json.loads(line) for line in raw.splitlines() if line.strip()]
        except ValueError:
            return _error(400, "parse_exception", "request body is not JSON")
        body = lines if path.endswith("_bulk") else (lines[0] if lines else None)
        self.requests.append((method, path, params, body))
        denied = self._check_auth(headers, raw)
        if denied:
            return 403, {"message": denied}
        if self.script:
            step = self.script.pop(0)
            if step.isdigit():
                return _error(int(step), "rejected_execution_exception" if step == "429" else "injected",
                              f"injected {step}")
        try:
            return self._route(method, path, params, body)
        except DSLError as err:
            return _error(400, err.kind, err.reason)

    def _check_auth(self, headers: Mapping[str, str], raw: bytes) -> str:
        if self.service == "none":
            return ""
        auth = headers.get("authorization", "")
        scope = re.search(r"Credential=[^/]+/\d{8}/([^/]+)/([^/]+)/aws4_request", auth)
        if not auth.startswith("AWS4-HMAC-SHA256 ") or not scope or "SignedHeaders=" not in auth:
            return "Missing Authentication Token"
        if scope.groups() != (self.region, self.service):
            return f"Credential should be scoped to region {self.region} and service {self.service}"
        if self.service == "aoss" and headers.get("x-amz-content-sha256") != hashlib.sha256(raw).hexdigest():
            return "The request signature we calculated does not match: x-amz-content-sha256 is required"
        return ""

    def _route(self, method: str, path: str, params: dict[str, str], body: Any) -> tuple[int, Any]:
        segments = path.split("/")
        if segments[:2] == ["_search", "pipeline"] and method == "PUT":
            return self._put_pipeline(segments[2], body)
        if segments == ["_bulk"] and method == "POST":
            return 200, self._bulk(body)
        name, op = segments[0], segments[1] if len(segments) > 1 else ""
        if op in ("_refresh", "_delete_by_query") and self.service == "aoss":
            return _error(404, "unsupported_operation", f"{op} is not supported in OpenSearch Serverless")
        if not op and method == "PUT":
            return self._create(name, body)
        index = self.indices.get(name)
        if index is None:
            return _error(404, "index_not_found_exception", f"no such index [{name}]")
        return self._index_op(index, name, f"{method} {op}".strip(), params, body or {})

    def _index_op(self, index: _Index, name: str, op: str, params: dict[str, str],
                  body: dict[str, Any]) -> tuple[int, Any]:
        if op == "HEAD":
            return 200, {}
        if op == "GET _mapping":
            return 200, {name: {"mappings": copy.deepcopy(index.body["mappings"])}}
        if op == "POST _refresh":
            index.visible = dict(index.docs)
            return 200, {"_shards": {"total": 1, "successful": 1, "failed": 0}}
        if op == "POST _count":
            return 200, {"count": len(self._evaluate(index, body.get("query", {"match_all": {}}), params))}
        if op == "POST _search":
            return 200, self._search(index, body, params)
        return _error(405, "method_not_allowed", f"{op} on {name} is not served by this fake")

    def _create(self, name: str, body: Any) -> tuple[int, Any]:
        if name in self.indices:
            return _error(400, "resource_already_exists_exception", f"index [{name}] already exists")
        self.indices[name] = _Index(body or {})
        return 200, {"acknowledged": True, "shards_acknowledged": True, "index": name}

    def _put_pipeline(self, name: str, body: Any) -> tuple[int, Any]:
        processors = (body or {}).get("phase_results_processors", [])
        spec = processors[0].get("normalization-processor") if processors else None
        if not spec or spec.get("normalization", {}).get("technique") not in ("min_max", "l2") or (
            spec.get("combination", {}).get("technique") not in ("arithmetic_mean", "geometric_mean", "harmonic_mean")
        ):
            raise DSLError("parsing_exception", "expected a normalization-processor with normalization and combination")
        self.pipelines[name] = spec
        return 200, {"acknowledged": True}

    # --- writes -----------------------------------------------------------------------------------------------

    def _bulk(self, lines: list[Any]) -> dict[str, Any]:
        items: list[dict[str, Any]] = []
        pending = iter(lines)
        for action in pending:
            op, meta = _one(action, "bulk")
            index = self.indices.get(meta.get("_index", ""))
            if op == "index":
                source = next(pending)
                if "_id" in meta and self.service == "aoss":
                    raise DSLError("illegal_argument_exception",
                                   "Document ID is not supported in create/index operation request")
                if index is None:
                    items.append({op: {"status": 404, "error": {"type": "index_not_found_exception"}}})
                    continue
                try:
                    index.check_source(source)
                except DSLError as err:
                    items.append({op: {"_id": meta.get("_id"), "status": 400,
                                       "error": {"type": err.kind, "reason": err.reason}}})
                    continue
                doc_id = meta.get("_id") or uuid.uuid4().hex[:20]
                created = doc_id not in index.docs
                index.docs[doc_id] = source
                items.append({op: {"_index": meta["_index"], "_id": doc_id, "_version": 1,
                                   "result": "created" if created else "updated", "status": 201 if created else 200}})
            elif op == "delete":
                found = index is not None and index.docs.pop(meta["_id"], None) is not None
                items.append({op: {"_index": meta.get("_index"), "_id": meta["_id"],
                                   "result": "deleted" if found else "not_found", "status": 200 if found else 404}})
            else:
                raise DSLError("illegal_argument_exception", f"Malformed action/metadata line [{op}]")
        if self.service == "aoss":
            for index in self.indices.values():
                index.visible = dict(index.docs)
        errors = any(next(iter(item.values()))["status"] >= 300 for item in items)
        return {"took": 1, "errors": errors, "items": items}

    # --- search -----------------------------------------------------------------------------------------------

    def _search(self, index: _Index, body: Mapping[str, Any], params: Mapping[str, str]) -> dict[str, Any]:
        unknown = set(body) - {"size", "query", "_source"}
        if unknown:
            raise DSLError("parsing_exception", f"unknown key(s) {sorted(unknown)} in the search body")
        scores = self._evaluate(index, body.get("query", {"match_all": {}}), params)
        ranked = sorted(scores.items(), key=lambda item: (-item[1], item[0]))[: int(body.get("size", 10))]
        hits = []
        for doc_id, score in ranked:
            hit: dict[str, Any] = {"_index": "", "_id": doc_id, "_score": score}
            source = _source(index.visible[doc_id], body.get("_source", True))
            if source is not None:
                hit["_source"] = source
            hits.append(hit)
        return {"took": 1, "timed_out": False, "_shards": {"total": 1, "successful": 1, "skipped": 0, "failed": 0},
                "hits": {"total": {"value": len(scores), "relation": "eq"},
                         "max_score": ranked[0][1] if ranked else None, "hits": hits}}

    def _evaluate(self, index: _Index, query: Mapping[str, Any], params: Mapping[str, str]) -> dict[str, float]:
        """Matching visible documents with their scores."""
        kind, spec = _one(query, "query")
        compound = {"bool": self._bool, "knn": self._knn, "hybrid": self._hybrid}
        if kind in compound:
            return compound[kind](index, spec, params)
        if kind == "match_all":
            return dict.fromkeys(index.visible, 1.0)
        if kind == "match":
            field, text = _one(spec, "match")
            return self._bm25(index, field, text["query"] if isinstance(text, dict) else text)
        if kind == "ids":
            return {i: 0.0 for i in index.visible if i in set(spec["values"])}
        if kind not in _LEAVES:
            raise DSLError("parsing_exception", f"unknown query [{kind}]")
        field, value = _one(spec, kind)
        value = value["value"] if isinstance(value, dict) else value
        test = _LEAVES[kind]
        return {i: 0.0 for i, d in index.visible.items() if test(_as_list(d.get(field)), value)}

    def _bool(self, index: _Index, spec: Mapping[str, Any], params: Mapping[str, str]) -> dict[str, float]:
        unknown = set(spec) - {"must", "filter", "should", "must_not", "minimum_should_match"}
        if unknown:
            raise DSLError("parsing_exception", f"[bool] query does not support {sorted(unknown)}")
        result = dict.fromkeys(index.visible, 0.0)
        for clause in _as_list(spec.get("must", [])):
            matched = self._evaluate(index, clause, params)
            result = {i: s + matched[i] for i, s in result.items() if i in matched}
        for clause in _as_list(spec.get("filter", [])):
            matched = self._evaluate(index, clause, params)
            result = {i: s for i, s in result.items() if i in matched}
        for clause in _as_list(spec.get("must_not", [])):
            matched = self._evaluate(index, clause, params)
            result = {i: s for i, s in result.items() if i not in matched}
        should = _as_list(spec.get("should", []))
        if should:
            matches = [self._evaluate(index, clause, params) for clause in should]
            need = int(spec.get("minimum_should_match", 0 if spec.get("must") or spec.get("filter") else 1))
            result = {i: s + sum(m.get(i, 0.0) for m in matches) for i, s in result.items()
                      if sum(i in m for m in matches) >= need}
        return result

    def _bm25(self, index: _Index, field: str, text: str) -> dict[str, float]:
        if index.properties.get(field, {}).get("type") != "text" or index.properties[field].get("index") is False:
            raise DSLError("query_shard_exception", f"field [{field}] is not an indexed text field")
        analyzed = {i: analyze(str(d.get(field, ""))) for i, d in index.visible.items()}
        if not analyzed:
            return {}
        average = sum(map(len, analyzed.values())) / len(analyzed)
        terms = set(analyze(text))
        frequency = {t: sum(t in words for words in analyzed.values()) for t in terms}
        scores = {}
        for doc_id, words in analyzed.items():
            score = 0.0
            for term in terms:
                tf = words.count(term)
                if tf:
                    idf = math.log(1 + (len(analyzed) - frequency[term] + 0.5) / (frequency[term] + 0.5))
                    score += idf * tf * 2.2 / (tf + 1.2 * (0.25 + 0.75 * len(words) / max(average, 1e-9)))
            if score > 0:
                scores[doc_id] = score
        return scores

    def _knn(self, index: _Index, spec: Mapping[str, Any], params: Mapping[str, str]) -> dict[str, float]:
        field, clause = _one(spec, "knn")
        unknown = set(clause) - {"vector", "k", "filter"}
        if field != index.vector_field or unknown or not isinstance(clause.get("k"), int):
            raise DSLError("parsing_exception", f"[knn] expects {{{index.vector_field}: {{vector, k, filter?}}}}")
        if len(clause["vector"]) != index.dimension:
            raise DSLError("illegal_argument_exception", "Query vector has invalid dimension")
        if "filter" in clause and index.engine == "nmslib":
            raise DSLError("illegal_argument_exception", "Engine [NMSLIB] does not support filters")
        allowed = self._evaluate(index, clause["filter"], params) if "filter" in clause else index.visible
        query = clause["vector"]
        scores = {i: _score(query, index.visible[i][field], index.space) for i in allowed}
        best = sorted(scores.items(), key=lambda item: -item[1])[: clause["k"]]
        return dict(best)

    def _hybrid(self, index: _Index, spec: Mapping[str, Any], params: Mapping[str, str]) -> dict[str, float]:
        pipeline = self.pipelines.get(params.get("search_pipeline", ""))
        if pipeline is None:
            raise DSLError("illegal_argument_exception", "hybrid query needs a search pipeline with a "
                           "normalization-processor (search_pipeline parameter)")
        results = [self._evaluate(index, q, params) for q in spec["queries"]]
        weights = pipeline.get("combination", {}).get("parameters", {}).get("weights") or [1.0] * len(results)
        combined: dict[str, float] = {}
        for result, weight in zip(results, weights, strict=True):
            if not result:
                continue
            low, high = min(result.values()), max(result.values())
            for doc_id, score in result.items():
                normal = (score - low) / (high - low) if high > low else 1.0
                combined[doc_id] = combined.get(doc_id, 0.0) + weight * normal / sum(weights)
        return combined


def _score(query: Sequence[float], vector: Sequence[float], space: str) -> float:
    dot = sum(a * b for a, b in zip(query, vector, strict=True))
    if space == "innerproduct":
        return 1.0 + dot if dot >= 0 else 1.0 / (1.0 - dot)
    if space == "cosinesimil":
        norms = math.sqrt(sum(a * a for a in query)) * math.sqrt(sum(b * b for b in vector))
        return (2.0 - (1.0 - dot / max(norms, 1e-12))) / 2.0
    return 1.0 / (1.0 + sum((a - b) ** 2 for a, b in zip(query, vector, strict=True)))


def _source(document: Mapping[str, Any], spec: Any) -> dict[str, Any] | None:
    if spec is False:
        return None
    if isinstance(spec, dict):
        excluded = set(spec.get("excludes", []))
        return {k: v for k, v in document.items() if k not in excluded}
    return dict(document)


def _error(status: int, kind: str, reason: str) -> tuple[int, Any]:
    return status, {"error": {"root_cause": [{"type": kind, "reason": reason}], "type": kind, "reason": reason},
                    "status": status}

