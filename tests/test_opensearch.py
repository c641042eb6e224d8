"""OpenSearch as the store, beyond the shared store contract (tests/test_retrieval.py, tests/test_ingest.py run
over it too): the documented request shapes, SigV4 for ``aoss`` and ``es``, what Serverless refuses, the native
hybrid query, throttling, and the CLI unchanged on top of it."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from ragline.errors import ConfigError, StoreError
from ragline.providers.opensearch import OpenSearchStore, auth_for, chunk_from_source, region_for, similarity
from ragline.query.engine import Query
from ragline.testing.opensearch import FakeOpenSearch
from ragline.types import Chunk

from conftest import write

pytestmark = pytest.mark.usefixtures("aws_env")

DOCS = {
    "errors.md": "# Error codes\n\nWhen the gateway returns QZX-7741 the upstream certificate has expired.",
    "billing.md": "# Billing\n\nInvoices are issued on the first business day of each month.",
    "pets.md": "# Pets\n\nCats sleep for most of the day and are active at dawn and dusk.",
}


def ingest(app, folder, **kw):
    from ragline.ingest.pipeline import expand_paths, source_items

    return app.ingestor.run(source_items(expand_paths([str(folder)])), **kw)


def opensearch_app(make_app, fake, **kw):
    return make_app(store="opensearch", opensearch_url=fake.url, opensearch_auth=fake.service,
                    aws_region="us-east-1", **kw)


@pytest.fixture
def folder(tmp_path):
    for name, text in DOCS.items():
        write(tmp_path / "kb", name, text)
    return tmp_path / "kb"


def test_auth_and_region_come_from_the_aws_host_name():
    assert auth_for("https://abc123.us-west-2.aoss.amazonaws.com", None) == "aoss"
    assert auth_for("https://search-docs-x1.eu-west-1.es.amazonaws.com:443", None) == "es"
    assert auth_for("http://localhost:9200", None) == "none"
    assert auth_for("http://localhost:9200", "basic") == "basic"
    assert region_for("https://abc123.us-west-2.aoss.amazonaws.com", None) == "us-west-2"
    assert region_for("https://abc123.us-west-2.aoss.amazonaws.com", "eu-west-1") == "eu-west-1"


def test_the_index_and_queries_follow_the_documented_dsl(make_app, folder):
    with FakeOpenSearch(service="es") as fake:
        app = opensearch_app(make_app, fake)
        ingest(app, folder, tags=("team=ops",))
        app.engine.retrieve("QZX-7741", k=3, filters={"team": "ops", "language": "en"})
    created = next(body for method, path, _, body in fake.requests if method == "PUT" and path == "ragline-chunks")
    assert created["settings"] == {"index": {"knn": True}}
    vector = created["mappings"]["properties"]["vector"]
    assert vector["type"] == "knn_vector" and vector["dimension"] == 384
    assert vector["method"]["name"] == "hnsw" and vector["method"]["engine"] == "faiss"
    assert vector["method"]["space_type"] == "innerproduct"  # the embedder's vectors are L2-normalised
    assert created["mappings"]["properties"]["context"] == {"type": "text", "analyzer": "english"}
    bulk = next(body for method, path, _, body in fake.requests if path == "_bulk")
    assert bulk[0] == {"index": {"_index": "ragline-chunks", "_id": bulk[1]["chunk_id"]}}  # idempotent rewrite
    searches = [body for _, path, _, body in fake.requests if path.endswith("_search") and "size" in body
                and body.get("_source") != False]  # noqa: E712
    knn, match = searches[-2]["query"], searches[-1]["query"]
    filters = [{"term": {"language": "en"}}, {"term": {"tags": "team=ops"}}, {"term": {"tenant": "default"}}]
    assert set(knn["knn"]["vector"]) == {"vector", "k", "filter"}
    assert knn["knn"]["vector"]["filter"] == {"bool": {"filter": filters}}  # efficient filtering while searching
    assert match == {"bool": {"must": [{"match": {"context": "QZX-7741"}}], "filter": filters}}
    assert fake.requests[-1][0] == "POST"


def test_serverless_gets_no_custom_ids_no_refresh_and_signed_payloads(make_app, folder):
    with FakeOpenSearch(service="aoss") as fake:  # it answers 403 to a request not signed for aoss
        app = opensearch_app(make_app, fake)
        ingest(app, folder)
        (folder / "pets.md").write_text("# Pets\n\nDogs like long walks.", encoding="utf-8")
        ingest(app, folder)
        assert app.engine.retrieve("cats sleep", k=3, mode="bm25") == []
        assert [h.chunk.text for h in app.engine.retrieve("dogs walks", k=1, mode="bm25")] == [
            "Dogs like long walks."]
        doc_id = next(r.doc_id for r in app.registry.list("default") if r.doc_id.endswith("pets.md"))
        assert app.ingestor.remove(doc_id) and app.store.count({"doc_id": doc_id}) == 0
    paths = {path for _, path, _, _ in fake.requests}
    assert not any(p.endswith(("_refresh", "_delete_by_query")) for p in paths)
    for _, path, _, body in fake.requests:
        if path == "_bulk":
            assert all("_id" not in line.get("index", {}) for line in body)


def test_a_request_signed_for_the_wrong_service_is_refused_with_the_policy_hint(make_app, folder):
    with FakeOpenSearch(service="aoss") as fake:
        app = make_app(store="opensearch", opensearch_url=fake.url, opensearch_auth="es", aws_region="us-east-1")
        with pytest.raises(StoreError, match=r"access denied \(the domain's access policy.*service aoss"):
            app.store.count()
        unsigned = make_app(store="opensearch", opensearch_url=fake.url, opensearch_index="other")
        with pytest.raises(StoreError, match=r"access denied .*auth none; set RAGLINE_OPENSEARCH_AUTH.*Missing"):
            unsigned.store.count()


def test_throttling_is_retried_then_reported(make_app, folder):
    with FakeOpenSearch(service="es", script=["429", "503"]) as fake:
        app = opensearch_app(make_app, fake, retry_base_delay=0.0)
        assert ingest(app, folder).added == 3  # two faults absorbed by the retry policy
        fake.script = ["429"] * 3
        with pytest.raises(StoreError, match="429 throttled or unavailable"):
            app.store.count()
    assert fake.requests[0][1] == "ragline-chunks/_mapping"


def test_an_index_of_another_dimension_is_refused(make_app, folder):
    with FakeOpenSearch() as fake:
        other = OpenSearchStore(fake.url, "ragline-chunks", 64)
        other.replace_documents("default", ["a"], [Chunk("a#0", "a", 0, "alpha")],
                                np.ones((1, 64), dtype=np.float32) / 8, fresh=True)
        other.refresh_indexes()
        app = opensearch_app(make_app, fake)
        with pytest.raises(StoreError, match="holds 64-dimensional vectors but the embedder makes 384"):
            ingest(app, folder)
        assert app.store.count() == 1  # nothing written


@pytest.mark.parametrize("engine", ["nmslib", "lucene"])
def test_other_engines_keep_filters_and_tenants(make_app, folder, engine):
    with FakeOpenSearch(service="es") as fake:
        app = opensearch_app(make_app, fake, opensearch_engine=engine)
        ingest(app, folder)
        hits = app.engine.retrieve("cats sleep all day", k=2, mode="vector")
        assert hits[0].chunk.doc_id.endswith("pets.md") and 0.5 < hits[0].score <= 1.0
        assert opensearch_app(make_app, fake, opensearch_engine=engine, tenant="acme").engine.retrieve(
            "cats sleep all day", k=2, mode="vector") == []
    vector = fake.indices["ragline-chunks"].body["mappings"]["properties"]["vector"]
    assert (vector["method"]["engine"], vector["method"]["space_type"]) == (engine, "cosinesimil")


def test_native_hybrid_query_through_the_search_pipeline(make_app, folder):
    with FakeOpenSearch(service="es") as fake:
        app = opensearch_app(make_app, fake, opensearch_hybrid="pipeline")
        ingest(app, folder)
        assert app.engine.retrieve("QZX-7741", k=1)[0].chunk.doc_id.endswith("errors.md")
        assert app.engine.retrieve("how do I get charged?", k=1)[0].chunk.doc_id.endswith("billing.md")
        answer = app.engine.ask(Query("What does QZX-7741 mean?", k=2))
    pipeline = fake.pipelines["ragline-chunks-hybrid"]
    assert pipeline["normalization"] == {"technique": "min_max"}
    hybrid = [(params, body) for _, path, params, body in fake.requests if path.endswith("_search")
              and "hybrid" in body.get("query", {})]
    assert hybrid and all(params == {"search_pipeline": "ragline-chunks-hybrid"} for params, _ in hybrid)
    assert answer.sources[0].doc_id.endswith("errors.md") and answer.citations


def test_a_documented_search_hit_decodes_to_a_chunk():
    # the shape of a hit in OpenSearch's k-NN search response
    hit = json.loads('{"_index": "ragline-chunks", "_id": "1", "_score": 1.8, "_source": {"chunk_id": "d#0", '
                     '"doc_id": "d", "ordinal": 0, "text": "t", "title": "T", "heading": "H", "page": null, '
                     '"tenant": "acme", "language": "en", "tags": ["team=ops"]}}')
    chunk = chunk_from_source(hit["_source"])
    assert (chunk.id, chunk.tenant, chunk.tags, chunk.page) == ("d#0", "acme", ("team=ops",), None)
    assert similarity(1.8, "faiss") == pytest.approx(0.9)  # innerproduct 1 + 0.8 → cosine 0.8
    assert similarity(0.9, "nmslib") == pytest.approx(0.9)  # cosinesimil is already (1 + cos) / 2
    assert similarity(0.5, "faiss") == pytest.approx(0.0)  # 1 / (1 - dot) with dot = -1


def test_settings_errors_are_clear():
    with pytest.raises(ConfigError, match="RAGLINE_OPENSEARCH_URL"):
        OpenSearchStore("", "i", 384)
    with pytest.raises(ConfigError, match="unknown OpenSearch k-NN engine 'annoy'"):
        OpenSearchStore("http://127.0.0.1:1", "i", 384, engine="annoy")


def test_the_cli_works_unchanged_on_opensearch(tmp_path, folder):
    with FakeOpenSearch(service="aoss") as fake:
        env = {k: v for k, v in os.environ.items() if not k.startswith("RAGLINE_")}
        env.update(RAGLINE_CONFIG=str(tmp_path / "absent.toml"), RAGLINE_STORE="opensearch",
                   RAGLINE_OPENSEARCH_URL=fake.url, RAGLINE_OPENSEARCH_AUTH="aoss", RAGLINE_AWS_REGION="us-east-1",
                   RAGLINE_CHAT_MODEL="extractive", RAGLINE_HOME=str(tmp_path / "home"))

        def run(*args: str) -> subprocess.CompletedProcess[str]:
            proc = subprocess.run([sys.executable, "-m", "ragline", *args], capture_output=True, text=True,
                                  env=env, timeout=300, check=False)
            assert proc.returncode == 0, proc.stderr
            return proc

        assert "3 added" in run("ingest", str(folder)).stdout
        answer = json.loads(run("ask", "--json", "Which code means the certificate expired?").stdout)
    assert answer["sources"][0]["doc_id"].endswith("errors.md")
    assert any(path == "_bulk" for _, path, _, _ in fake.requests)  # signed for aoss, or the fake answers 403
