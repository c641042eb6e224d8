"""What a local cross-encoder costs per query: the ONNX reranker over a MiniLM-L6-sized cross-encoder.

ragline ships no cross-encoder, so this builds one with the compute of ms-marco-MiniLM-L-6-v2 (6 layers, 384 wide)
from the bundled all-MiniLM-L6-v2 int8 model: its encoder reads the (question, passage) pair and a linear head on
the [CLS] state gives the score. The scores are meaningless; the time is what a real model of that size costs
(an fp32 export is slower than this int8 one). For each of the AWS set's first questions, the 20 passages the
hybrid search returns (``RAGLINE_RERANK_DEPTH``'s default) are reranked; p50 and p90 over the questions, with the
retrieval's own time beside it.

    uv run python bench/rerank_cost.py [--questions 30] [--docs 400]
"""

from __future__ import annotations

import argparse
import csv
import statistics
import tempfile
import time
from importlib import resources
from pathlib import Path

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "aws-docs"


def minilm_cross_encoder(folder: Path) -> Path:
    """The bundled MiniLM encoder with a linear head on [CLS]: a cross-encoder's compute, untrained."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    from ragline.providers.local.minilm import _minilm_path

    model = onnx.load(str(_minilm_path()))
    graph = model.graph
    hidden = graph.output[0].name  # last_hidden_state [batch, tokens, 384]
    weight = numpy_helper.from_array(np.random.default_rng(0).normal(size=(384, 1)).astype(np.float32), "head_w")
    index = numpy_helper.from_array(np.array(0, dtype=np.int64), "cls_index")
    graph.initializer.extend([weight, index])
    graph.node.extend([helper.make_node("Gather", [hidden, "cls_index"], ["cls"], axis=1),
                       helper.make_node("MatMul", ["cls", "head_w"], ["logits"])])
    del graph.output[:]
    graph.output.append(helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 1]))
    path = folder / "model.onnx"
    onnx.save(model, str(path))
    with resources.as_file(resources.files("ragline").joinpath("assets/minilm/tokenizer.json")) as vocab:
        (folder / "tokenizer.json").write_bytes(vocab.read_bytes())
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--questions", type=int, default=30)
    parser.add_argument("--docs", type=int, default=400)
    args = parser.parse_args()

    from ragline.compose import Ragline
    from ragline.ingest.pipeline import source_items
    from ragline.providers.local.cross_encoder import CrossEncoderReranker
    from ragline.settings import Settings

    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        reranker = CrossEncoderReranker(str(minilm_cross_encoder(home)), max_tokens=512)
        rag = Ragline(Settings(home=home / "home", chat_model="extractive"))
        items = source_items([DATA / "corpus.jsonl.gz"])
        rag.ingestor.run(item for n, item in zip(range(args.docs), items, strict=False))
        with (DATA / "qa.csv").open(encoding="utf-8") as fh:
            questions = [row["Question"].strip() for row in csv.DictReader(fh)][: args.questions]
        retrieve, rerank = [], []
        reranker.rerank(questions[0], rag.engine.retrieve(questions[0], k=20), k=5)  # warm
        for question in questions:
            started = time.perf_counter()
            hits = rag.engine.retrieve(question, k=20)
            mid = time.perf_counter()
            reranker.rerank(question, hits, k=5)
            retrieve.append(mid - started)
            rerank.append(time.perf_counter() - mid)

    def p(values: list[float], q: int) -> float:
        return 1000 * statistics.quantiles(values, n=10)[q // 10 - 1] if q != 50 else 1000 * statistics.median(values)

    print(f"questions {len(questions)}, 20 passages each, over the first {args.docs} AWS pages")
    print(f"retrieval (hybrid)        p50 {p(retrieve, 50):7.1f} ms   p90 {p(retrieve, 90):7.1f} ms")
    print(f"rerank (MiniLM-L6, ONNX)  p50 {p(rerank, 50):7.1f} ms   p90 {p(rerank, 90):7.1f} ms")


if __name__ == "__main__":
    main()
