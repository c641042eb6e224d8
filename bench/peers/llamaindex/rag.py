"""The ragline pipeline written with LlamaIndex, for the side-by-side benchmark (runs in its own venv).

    python rag.py ask    --db DIR --tokenizer tokenizer.json --base-url URL QUESTION
    python rag.py warm   --db DIR --tokenizer tokenizer.json --base-url URL --questions FILE
    python rag.py ingest --db DIR --tokenizer tokenizer.json --corpus slice.jsonl

The parts both peers share are in ``../common.py``: the all-MiniLM-L6-v2 int8 ONNX model, the hybrid search
over ragline's LanceDB table (vector + BM25, LanceDB's RRF reranker, k=5) and ragline's prompt wording. The
pipeline is LlamaIndex's idiom for cited answers: a retriever feeding a ``CitationQueryEngine`` (numbered
sources, a compact response synthesizer, streamed) with an OpenAI-compatible LLM through
``llama-index-llms-openai-like``. ``ingest`` splits with LlamaIndex's ``SentenceSplitter`` at the same token
budget (200 MiniLM tokens, 32 overlap) and writes through ``VectorStoreIndex`` into LlamaIndex's LanceDB
vector store.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from llama_index.core.base.embeddings.base import BaseEmbedding
from llama_index.core.base.llms.types import ChatMessage, MessageRole
from llama_index.core.prompts import ChatPromptTemplate
from llama_index.core.query_engine import CitationQueryEngine
from llama_index.core.response_synthesizers import ResponseMode, get_response_synthesizer
from llama_index.core.retrievers import BaseRetriever
from llama_index.core.schema import NodeWithScore, QueryBundle, TextNode
from pydantic import PrivateAttr

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from common import CHUNK_OVERLAP, CHUNK_TOKENS, SYSTEM, USER, MiniLM, hybrid_rows, main, read_jsonl


class MiniLMEmbedding(BaseEmbedding):
    _model: Any = PrivateAttr()

    def __init__(self, tokenizer_path: str) -> None:
        super().__init__(model_name="all-MiniLM-L6-v2-int8")
        self._model = MiniLM(tokenizer_path)

    def _get_query_embedding(self, query: str) -> list[float]:
        return self._model.embed_one(query)

    def _get_text_embedding(self, text: str) -> list[float]:
        return self._model.embed_one(text)

    def _get_text_embeddings(self, texts: list[str]) -> list[list[float]]:
        return self._model.embed_many(texts)

    async def _aget_query_embedding(self, query: str) -> list[float]:
        return self._get_query_embedding(query)


class LanceHybridRetriever(BaseRetriever):
    """Vector + BM25 over the ragline table, fused by LanceDB's RRF reranker."""

    def __init__(self, table: Any, embed_model: MiniLMEmbedding) -> None:
        super().__init__()
        self.table = table
        self.embed_model = embed_model

    def _retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        query = query_bundle.query_str
        rows = hybrid_rows(self.table, self.embed_model.get_query_embedding, query)
        # each source is its title and text, numbered by the citation engine ("Source 1:"), as ragline's "[1] title"
        return [
            NodeWithScore(
                node=TextNode(
                    text=f"{r['title'] or r['doc_id']}\n{r['text']}",
                    metadata={"doc_id": r["doc_id"]},
                    excluded_llm_metadata_keys=["doc_id"],
                ),
                score=r.get("_relevance_score"),
            )
            for r in rows
        ]


def build(args: argparse.Namespace) -> Callable[[str], Iterable[str]]:
    import lancedb
    from llama_index.llms.openai_like import OpenAILike

    table = lancedb.connect(args.db).open_table("chunks")
    llm = OpenAILike(
        api_base=args.base_url,
        api_key="bench",
        model="bench",
        is_chat_model=True,
        context_window=8192,
        max_tokens=256,
        temperature=0,
    )
    template = ChatPromptTemplate(
        message_templates=[
            ChatMessage(role=MessageRole.SYSTEM, content=SYSTEM),
            ChatMessage(role=MessageRole.USER, content=USER.format(sources="{context_str}", question="{query_str}")),
        ]
    )
    synthesizer = get_response_synthesizer(
        llm=llm, text_qa_template=template, response_mode=ResponseMode.COMPACT, streaming=True
    )
    engine = CitationQueryEngine(
        retriever=LanceHybridRetriever(table, MiniLMEmbedding(args.tokenizer)),
        llm=llm,
        response_synthesizer=synthesizer,
    )

    def stream(question: str) -> Iterable[str]:
        return engine.query(question).response_gen  # type: ignore[union-attr]

    return stream


def ingest(args: argparse.Namespace) -> dict[str, Any]:
    from llama_index.core import Document, StorageContext, VectorStoreIndex
    from llama_index.core.node_parser import SentenceSplitter
    from llama_index.vector_stores.lancedb import LanceDBVectorStore

    embed_model = MiniLMEmbedding(args.tokenizer)
    splitter = SentenceSplitter(
        chunk_size=CHUNK_TOKENS, chunk_overlap=CHUNK_OVERLAP, tokenizer=embed_model._model.tokens
    )
    # the title goes into what is embedded (LlamaIndex's metadata mode), as ragline does; the id does not
    docs = [
        Document(
            text=r["text"],
            metadata={"doc_id": r["_id"], "title": r.get("title", "")},
            excluded_embed_metadata_keys=["doc_id"],
            excluded_llm_metadata_keys=["doc_id"],
        )
        for r in read_jsonl(args.corpus)
    ]
    nodes = splitter.get_nodes_from_documents(docs)
    store = LanceDBVectorStore(uri=args.db, table_name="chunks", mode="overwrite")
    VectorStoreIndex(nodes, storage_context=StorageContext.from_defaults(vector_store=store), embed_model=embed_model)
    return {"pages": len(docs), "chunks": len(nodes)}


if __name__ == "__main__":
    main(build, ingest)
