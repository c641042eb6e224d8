"""The ragline pipeline written with LangChain, for the side-by-side benchmark (runs in its own venv).

    python rag.py ask    --db DIR --tokenizer tokenizer.json --base-url URL QUESTION
    python rag.py warm   --db DIR --tokenizer tokenizer.json --base-url URL --questions FILE
    python rag.py ingest --db DIR --tokenizer tokenizer.json --corpus slice.jsonl

The parts both peers share are in ``../common.py``: the all-MiniLM-L6-v2 int8 ONNX model, the hybrid search
over ragline's LanceDB table (vector + BM25, LanceDB's RRF reranker, k=5) and ragline's prompt wording. The
pipeline is LangChain's idiom: a retriever, a prompt template, an OpenAI-compatible chat model through
``langchain-openai`` (streamed) and an output parser, composed with LCEL. ``ingest`` splits with LangChain's
recursive splitter at the same token budget (200 MiniLM tokens, 32 overlap) and writes with LangChain's
LanceDB vector store.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from langchain_core.callbacks import CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.embeddings import Embeddings
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.retrievers import BaseRetriever
from langchain_core.runnables import RunnablePassthrough

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from common import CHUNK_OVERLAP, CHUNK_TOKENS, SYSTEM, USER, MiniLM, hybrid_rows, main, read_jsonl


class MiniLMEmbeddings(Embeddings):
    def __init__(self, tokenizer_path: str) -> None:
        self.model = MiniLM(tokenizer_path)

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return self.model.embed_many(texts)

    def embed_query(self, text: str) -> list[float]:
        return self.model.embed_one(text)


class LanceHybridRetriever(BaseRetriever):
    """Vector + BM25 over the ragline table, fused by LanceDB's RRF reranker."""

    table: Any
    embeddings: Any

    def _get_relevant_documents(self, query: str, *, run_manager: CallbackManagerForRetrieverRun) -> list[Document]:
        rows = hybrid_rows(self.table, self.embeddings.embed_query, query)
        return [Document(page_content=r["text"], metadata={"doc_id": r["doc_id"], "title": r["title"]}) for r in rows]


def format_sources(docs: list[Document]) -> str:
    return "\n\n".join(
        f"[{n}] {d.metadata.get('title') or d.metadata.get('doc_id')}\n{d.page_content}"
        for n, d in enumerate(docs, start=1)
    )


def build(args: argparse.Namespace) -> Callable[[str], Iterable[str]]:
    import lancedb
    from langchain_openai import ChatOpenAI

    table = lancedb.connect(args.db).open_table("chunks")
    retriever = LanceHybridRetriever(table=table, embeddings=MiniLMEmbeddings(args.tokenizer))
    prompt = ChatPromptTemplate.from_messages([("system", SYSTEM), ("human", USER)])
    model = ChatOpenAI(
        base_url=args.base_url, api_key="bench", model="bench", max_tokens=256, temperature=0, streaming=True
    )
    chain = (
        {"sources": retriever | format_sources, "question": RunnablePassthrough()} | prompt | model | StrOutputParser()
    )
    return chain.stream


def ingest(args: argparse.Namespace) -> dict[str, Any]:
    from langchain_community.vectorstores import LanceDB
    from langchain_text_splitters import RecursiveCharacterTextSplitter

    embeddings = MiniLMEmbeddings(args.tokenizer)
    splitter = RecursiveCharacterTextSplitter(
        chunk_size=CHUNK_TOKENS,
        chunk_overlap=CHUNK_OVERLAP,
        length_function=lambda text: len(embeddings.model.tokens(text)),
    )
    docs = [
        Document(page_content=r["text"], metadata={"doc_id": r["_id"], "title": r.get("title", "")})
        for r in read_jsonl(args.corpus)
    ]
    chunks = splitter.split_documents(docs)
    for c in chunks:  # the title goes into what is embedded, as ragline does
        c.page_content = f"{c.metadata['title']}\n{c.page_content}"
    LanceDB.from_documents(chunks, embeddings, uri=args.db, table_name="chunks", distance="cosine")
    return {"pages": len(docs), "chunks": len(chunks)}


if __name__ == "__main__":
    main(build, ingest)
