"""OpenSearch (Serverless, managed, or self-hosted) as the chunk store, over its REST API.

The index has a ``knn_vector`` field (HNSW, engine faiss, nmslib or lucene), a ``context`` text field for BM25
(english analyzer), and keyword fields for the filters (tenant, language, doc_id, title, tags). Requests to AWS
are signed with SigV4 for ``aoss`` (Serverless) or ``es`` (managed domains) by botocore, with the standard
credential chain; HTTP goes through urllib3. Both come with boto3 already: opensearch-py would add 0.5 s of
import (3.x also grpcio and protobuf) to the query path for what is a handful of JSON requests.

Writes by document, the same contract as the LanceDB store: index the new chunks, then delete the document's
chunks that were not just written. OpenSearch has no transactions, so for a moment a reader may see both
versions (never neither). Serverless vector collections refuse custom document ids, ``_refresh`` and
``_delete_by_query``; the same path works there (auto ids, search then bulk delete) and new chunks become
searchable within seconds rather than at once.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from collections.abc import Iterator, Mapping, Sequence
from functools import cached_property
from typing import Any

from ragline.errors import ConfigError, StoreError
from ragline.resilience import RetryPolicy, read_timeout
from ragline.types import Chunk, Hit, Vectors

ENGINES = {"faiss": "innerproduct", "nmslib": "cosinesimil", "lucene": "cosinesimil"}
KEYWORDS = ("chunk_id", "doc_id", "tenant", "language", "title", "tags")
_COLUMN_FILTERS = {"tenant", "language", "doc_id", "title"}
_TRANSIENT = {429, 502, 503, 504}
_BULK_DOCS = 500
_PAGE = 10_000  # index.max_result_window's default
_AWS_HOST = re.compile(r"\.([a-z0-9-]+)\.(aoss|es)\.amazonaws\.com$")


def _aws_host(url: str) -> re.Match[str] | None:
    """The (region, service) of an AWS OpenSearch endpoint's host name."""
    return _AWS_HOST.search(url.split("://", 1)[-1].split("/", 1)[0].split(":", 1)[0])


def auth_for(url: str, configured: str | None) -> str:
    """The auth mode: as configured, else ``aoss``/``es`` from an AWS endpoint's host name, else ``none``."""
    match = _aws_host(url)
    return configured or (match.group(2) if match else "none")


def region_for(url: str, configured: str | None) -> str | None:
    """The region: as configured, else from an AWS endpoint's host name."""
    match = _aws_host(url)
    return configured or (match.group(1) if match else None)


def filter_clauses(filters: Mapping[str, str]) -> list[dict[str, Any]]:
    """Query DSL filters for ``key=value`` filters: known fields as terms, ``source`` a doc_id prefix, else a tag."""
    clauses: list[dict[str, Any]] = []
    for key, value in sorted(filters.items()):
        if key in _COLUMN_FILTERS:
            clauses.append({"term": {key: value}})
        elif key == "source":
            clauses.append({"prefix": {"doc_id": value}})
        else:
            clauses.append({"term": {"tags": f"{key}={value}"}})
    return clauses


def index_body(dimension: int, engine: str) -> dict[str, Any]:
    """Settings and mappings of the chunk index."""
    keyword = {"type": "keyword"}
    return {
        "settings": {"index": {"knn": True}},
        "mappings": {
            "properties": {
                "vector": {
                    "type": "knn_vector", "dimension": dimension,
                    "method": {"name": "hnsw", "engine": engine, "space_type": ENGINES[engine],
                               "parameters": {"ef_construction": 128, "m": 16}},
                },
                "context": {"type": "text", "analyzer": "english"},
                "text": {"type": "text", "index": False},
                "heading": {"type": "text", "index": False},
                **{name: keyword for name in KEYWORDS},
                "ordinal": {"type": "integer"},
                "page": {"type": "integer"},
            }
        },
    }


def pipeline_body() -> dict[str, Any]:
    """The search pipeline of the ``hybrid`` query: min-max normalisation, then a weighted mean (BM25, vector)."""
    return {
        "description": "ragline hybrid search: BM25 and k-NN scores normalised and combined",
        "phase_results_processors": [{"normalization-processor": {
            "normalization": {"technique": "min_max"},
            "combination": {"technique": "arithmetic_mean", "parameters": {"weights": [0.4, 0.6]}},
        }}],
    }


def chunk_source(chunk: Chunk, vector: Sequence[float]) -> dict[str, Any]:
    """The indexed document of one chunk."""
    return {
        "chunk_id": chunk.id, "doc_id": chunk.doc_id, "ordinal": chunk.ordinal, "text": chunk.text,
        "context": chunk.context_text(), "title": chunk.title, "heading": chunk.heading, "page": chunk.page,
        "tenant": chunk.tenant, "language": chunk.language, "tags": list(chunk.tags), "vector": list(vector),
    }


def chunk_from_source(source: Mapping[str, Any]) -> Chunk:
    """A chunk from an indexed document."""
    return Chunk(
        id=source["chunk_id"], doc_id=source["doc_id"], ordinal=int(source.get("ordinal") or 0),
        text=source.get("text", ""), title=source.get("title") or "", heading=source.get("heading") or "",
        page=source.get("page"), tenant=source.get("tenant", "default"), language=source.get("language", "en"),
        tags=tuple(source.get("tags") or ()),
    )


def similarity(score: float, engine: str) -> float:
    """OpenSearch's k-NN score as (1 + cosine) / 2, the LanceDB store's scale (vectors are L2-normalised)."""
    if ENGINES[engine] == "cosinesimil":
        return score  # OpenSearch scores cosinesimil as (2 - (1 - cos)) / 2
    cosine = score - 1.0 if score >= 1.0 else 1.0 - 1.0 / score  # innerproduct: 1 + dot, or 1 / (1 - dot)
    return (1.0 + cosine) / 2.0


class OpenSearchError(StoreError):
    """OpenSearch answered with an error."""

    def __init__(self, message: str, status: int = 0, kind: str = "") -> None:
        super().__init__(message)
        self.status, self.kind = status, kind


class OpenSearchStore:
    """Chunks in one OpenSearch index."""

    def __init__(
        self, url: str, index: str, dimension: int, *, auth: str | None = None, region: str | None = None,
        engine: str = "faiss", hybrid: str = "ragline", username: str | None = None, password: str | None = None,
        timeout: float = 10.0, policy: RetryPolicy | None = None,
    ) -> None:
        if not url:
            raise ConfigError("store 'opensearch' needs RAGLINE_OPENSEARCH_URL")
        self.url = url.rstrip("/")
        self.index = index
        self.dimension = dimension
        self.auth = auth_for(self.url, auth)
        if self.auth not in ("aoss", "es", "basic", "none"):
            raise ConfigError(f"unknown OpenSearch auth {self.auth!r}; valid: aoss, es, basic, none")
        self.region = region_for(self.url, region)
        self.engine, self.hybrid = engine, hybrid
        if engine not in ENGINES:
            raise ConfigError(f"unknown OpenSearch k-NN engine {engine!r}; valid: {', '.join(ENGINES)}")
        self.pipeline = f"{index}-hybrid"
        self._basic = (username, password or "") if username else None
        self._timeout = timeout
        self._policy = policy or RetryPolicy()
        self._ready = False
        self._lock = threading.Lock()

    @property
    def serverless(self) -> bool:
        """OpenSearch Serverless: no custom ids, no refresh, no delete-by-query."""
        return self.auth == "aoss"

    def __repr__(self) -> str:
        return f"OpenSearchStore({self.url}/{self.index}, auth={self.auth})"

    # --- HTTP -------------------------------------------------------------------------------------------------

    @cached_property
    def _http(self) -> Any:
        import urllib3

        return urllib3.PoolManager(
            maxsize=16, retries=False, timeout=urllib3.Timeout(connect=min(5.0, self._timeout), read=self._timeout)
        )

    @cached_property
    def _credentials(self) -> Any:
        try:
            import botocore.session
        except ImportError as err:
            raise ConfigError("SigV4 signing for OpenSearch needs botocore: pip install 'ragline[aws]'") from err
        session = botocore.session.get_session()
        credentials = session.get_credentials()
        if credentials is None:
            raise ConfigError("OpenSearch on AWS needs credentials (the standard AWS chain found none)")
        if self.region is None:
            self.region = session.get_config_variable("region")
        if not self.region:
            raise ConfigError("OpenSearch on AWS needs a region: set RAGLINE_AWS_REGION")
        return credentials

    def _headers(self, method: str, url: str, body: bytes, content_type: str) -> dict[str, str]:
        headers = {"Content-Type": content_type} if body else {}
        if self.auth in ("aoss", "es"):
            from botocore.auth import SigV4Auth
            from botocore.awsrequest import AWSRequest

            # Serverless requires the payload hash header; botocore signs it with the rest.
            headers["x-amz-content-sha256"] = hashlib.sha256(body).hexdigest()
            request = AWSRequest(method=method, url=url, data=body, headers=headers)
            credentials = self._credentials.get_frozen_credentials()
            SigV4Auth(credentials, self.auth, self.region or "").add_auth(request)
            return dict(request.headers.items())
        if self._basic is not None:
            import urllib3

            headers.update(urllib3.make_headers(basic_auth=f"{self._basic[0]}:{self._basic[1]}"))
        return headers

    def request(self, method: str, path: str, body: Any = None, *, ndjson: Sequence[Any] | None = None,
                params: Mapping[str, str] | None = None) -> Any:
        """One REST call; throttling and unavailability are retried with full jitter, other errors raised."""
        from urllib.parse import urlencode

        import urllib3

        url = f"{self.url}/{path.lstrip('/')}" + (f"?{urlencode(dict(params))}" if params else "")
        if ndjson is not None:
            data = ("\n".join(json.dumps(line) for line in ndjson) + "\n").encode()
            content_type = "application/x-ndjson"
        else:
            data, content_type = (b"" if body is None else json.dumps(body).encode()), "application/json"

        def once() -> Any:
            headers = self._headers(method, url, data, content_type)  # signed anew: SigV4 signatures expire
            try:
                response = self._http.request(method, url, body=data or None, headers=headers, timeout=urllib3.Timeout(
                    connect=min(5.0, self._timeout), read=read_timeout(self._timeout)))
            except urllib3.exceptions.HTTPError as err:
                raise OpenSearchError(f"OpenSearch at {self.url}: cannot connect ({err})", 0) from err
            if response.status >= 400:
                raise self._error(response.status, response.data)
            return json.loads(response.data) if response.data and method != "HEAD" else {}

        return self._policy.run(once, transient=lambda err: isinstance(err, OpenSearchError) and (
            err.status == 0 or err.status in _TRANSIENT))

    def _error(self, status: int, data: bytes) -> OpenSearchError:
        try:
            body = json.loads(data)
        except ValueError:
            body = {"message": data.decode(errors="replace")[:200]}
        error = body.get("error", {}) if isinstance(body, dict) else {}
        kind, reason = (error.get("type", ""), error.get("reason", "")) if isinstance(error, dict) else ("", error)
        reason = reason or (body.get("message", "") if isinstance(body, dict) else "")  # AWS's own 403s
        if status in (401, 403):
            hint = {
                "aoss": "the collection's data access policy must grant this role aoss:*Index and aoss:*Document",
                "es": "the domain's access policy must allow es:ESHttp*",
            }.get(self.auth, f"requests are sent with auth {self.auth}; set RAGLINE_OPENSEARCH_AUTH")
            return OpenSearchError(f"OpenSearch at {self.url}: access denied ({hint}): {reason}", status, kind)
        if status in _TRANSIENT:
            return OpenSearchError(f"OpenSearch at {self.url}: {status} throttled or unavailable: {reason}",
                                   status, kind)
        return OpenSearchError(f"OpenSearch at {self.url}: {status} {kind}: {reason}", status, kind)

    # --- index ------------------------------------------------------------------------------------------------

    def describe(self) -> str:
        """Whether the index exists, its vector dimension and chunk count (for ``ragline doctor``)."""
        mapping = self._mapping()
        if mapping is None:
            return f"reachable (auth {self.auth}); the index is created at the first ingest"
        return f"{self.count({}):,} chunks, {mapping} dimensions (auth {self.auth})"

    def _mapping(self) -> int | None:
        """The index's vector dimension, or None when the index does not exist."""
        try:
            mappings = self.request("GET", f"{self.index}/_mapping")
        except OpenSearchError as err:
            if err.status == 404:
                return None
            raise
        properties = next(iter(mappings.values()))["mappings"].get("properties", {})
        return int(properties.get("vector", {}).get("dimension", 0))

    def _ensure_index(self) -> None:
        if self._ready:
            return
        with self._lock:
            if self._ready:
                return
            width = self._mapping()
            if width is None:
                try:
                    self.request("PUT", self.index, index_body(self.dimension, self.engine))
                except OpenSearchError as err:
                    if err.kind != "resource_already_exists_exception":
                        raise
            elif width != self.dimension:
                raise StoreError(
                    f"the OpenSearch index {self.index} holds {width}-dimensional vectors but the embedder makes "
                    f"{self.dimension}; vectors of different models are not comparable: use another index "
                    "(RAGLINE_OPENSEARCH_INDEX) or re-ingest into an empty one"
                )
            if self.hybrid == "pipeline":
                self.request("PUT", f"_search/pipeline/{self.pipeline}", pipeline_body())
            self._ready = True

    # --- writes -----------------------------------------------------------------------------------------------

    def replace_documents(
        self, tenant: str, doc_ids: Sequence[str], chunks: Sequence[Chunk], vectors: Vectors, *, fresh: bool
    ) -> None:
        """Index the new chunks, then delete whatever else the documents had (``fresh`` changes nothing here)."""
        if not doc_ids:
            return
        self._ensure_index()
        written = self._bulk_index(chunks, vectors)
        self._delete_where(tenant, doc_ids, keep=written)

    def _bulk_index(self, chunks: Sequence[Chunk], vectors: Vectors) -> set[str]:
        """Index the chunks in batches; returns the document ids OpenSearch gave them."""
        written: set[str] = set()
        for start in range(0, len(chunks), _BULK_DOCS):
            lines: list[Any] = []
            for chunk, vector in zip(chunks[start:start + _BULK_DOCS], vectors[start:start + _BULK_DOCS],
                                     strict=True):
                action: dict[str, Any] = {"_index": self.index}
                if not self.serverless:
                    action["_id"] = chunk.id  # writing a chunk again overwrites it
                lines += [{"index": action}, chunk_source(chunk, vector.tolist())]
            written |= self._bulk(lines, "index")
        return written

    def _bulk(self, lines: list[Any], op: str) -> set[str]:
        response = self.request("POST", "_bulk", ndjson=lines)
        ids = set()
        for item in response.get("items", []):
            result = item.get(op, {})
            status = int(result.get("status", 200))
            if status >= 300 and not (op == "delete" and status == 404):
                error = result.get("error", {})
                reason = error.get("reason", error) if isinstance(error, dict) else error
                raise OpenSearchError(f"OpenSearch at {self.url}: bulk {op} failed ({status}): {reason}", status)
            ids.add(str(result.get("_id", "")))
        return ids

    def _ids_where(self, tenant: str, doc_ids: Sequence[str], keep: set[str]) -> Iterator[list[str]]:
        query: dict[str, Any] = {"bool": {"filter": [{"term": {"tenant": tenant}},
                                                     {"terms": {"doc_id": list(doc_ids)}}]}}
        if keep:
            query["bool"]["must_not"] = [{"ids": {"values": sorted(keep)}}]
        while True:
            try:
                response = self.request("POST", f"{self.index}/_search",
                                        {"size": _PAGE, "_source": False, "query": query})
            except OpenSearchError as err:
                if err.status == 404:
                    return
                raise
            ids = [hit["_id"] for hit in response["hits"]["hits"]]
            if ids:
                yield ids
            if len(ids) < _PAGE:
                return
            self.refresh_indexes()  # the next page must not see what was just deleted

    def _delete_where(self, tenant: str, doc_ids: Sequence[str], keep: set[str]) -> None:
        for ids in self._ids_where(tenant, doc_ids, keep):
            for start in range(0, len(ids), _BULK_DOCS):
                self._bulk([{"delete": {"_index": self.index, "_id": i}} for i in ids[start:start + _BULK_DOCS]],
                           "delete")

    def delete_document(self, tenant: str, doc_id: str) -> None:
        """Remove every chunk of one document; searches stop finding it now (Serverless: within seconds)."""
        self._delete_where(tenant, [doc_id], keep=set())
        self.refresh_indexes()

    def refresh_indexes(self) -> None:
        """Make the writes searchable now (Serverless does this by itself within seconds)."""
        if not self.serverless:
            try:
                self.request("POST", f"{self.index}/_refresh")
            except OpenSearchError as err:
                if err.status != 404:
                    raise

    # --- reads ------------------------------------------------------------------------------------------------

    def count(self, filters: Mapping[str, str] | None = None) -> int:
        """Chunks matching ``filters``."""
        try:
            response = self.request("POST", f"{self.index}/_count",
                                    {"query": {"bool": {"filter": filter_clauses(filters or {})}}})
        except OpenSearchError as err:
            if err.status == 404:
                return 0
            raise
        return int(response["count"])

    def knn_query(self, vector: Vectors, k: int, filters: Mapping[str, str]) -> dict[str, Any]:
        """The k-NN clause; faiss and lucene filter while searching, nmslib only after (see the README)."""
        clause: dict[str, Any] = {"vector": [float(x) for x in vector], "k": k}
        clauses = filter_clauses(filters)
        if clauses and self.engine != "nmslib":
            clause["filter"] = {"bool": {"filter": clauses}}
        query: dict[str, Any] = {"knn": {"vector": clause}}
        if clauses and self.engine == "nmslib":
            query = {"bool": {"must": [query], "filter": clauses}}
        return query

    @staticmethod
    def text_query(text: str, filters: Mapping[str, str]) -> dict[str, Any]:
        """The BM25 clause over the context field."""
        return {"bool": {"must": [{"match": {"context": text}}], "filter": filter_clauses(filters)}}

    def _search(self, body: dict[str, Any], name: str, vector_scores: bool,
                params: Mapping[str, str] | None = None) -> list[Hit]:
        body["_source"] = {"excludes": ["vector", "context"]}
        try:
            response = self.request("POST", f"{self.index}/_search", body, params=params)
        except OpenSearchError as err:
            if err.status == 404:
                return []  # nothing ingested yet
            raise
        hits = []
        for hit in response["hits"]["hits"]:
            score = float(hit.get("_score") or 0.0)
            hits.append(Hit(chunk_from_source(hit["_source"]),
                            similarity(score, self.engine) if vector_scores else score, (name,)))
        return hits

    def passages(self, filters: Mapping[str, str], limit: int) -> list[Chunk]:
        """Chunks matching ``filters``, in reading order."""
        hits = self._search({"size": limit, "query": {"bool": {"filter": filter_clauses(filters)}}}, "scan", False)
        return sorted((h.chunk for h in hits), key=lambda c: (c.doc_id, c.ordinal))

    def search_vector(self, vector: Vectors, k: int, filters: Mapping[str, str]) -> list[Hit]:
        """Nearest chunks by cosine similarity (HNSW)."""
        return self._search({"size": k, "query": self.knn_query(vector, k, filters)}, "vector", True)

    def search_text(self, text: str, k: int, filters: Mapping[str, str]) -> list[Hit]:
        """Best chunks by BM25 over title, breadcrumb and text."""
        if not text.strip():
            return []
        return self._search({"size": k, "query": self.text_query(text, filters)}, "bm25", False)

    def search_hybrid(self, text: str, vector: Vectors, k: int, filters: Mapping[str, str]) -> list[Hit]:
        """BM25 and k-NN combined by OpenSearch's ``hybrid`` query and the search pipeline (made at ingest)."""
        body = {"size": k, "query": {"hybrid": {"queries": [self.text_query(text, filters),
                                                            self.knn_query(vector, k, filters)]}}}
        return self._search(body, "hybrid", False, params={"search_pipeline": self.pipeline})
