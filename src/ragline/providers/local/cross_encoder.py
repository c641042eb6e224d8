"""A cross-encoder reranker from an ONNX file the user points to, run offline with onnxruntime.

``RAGLINE_RERANKER=onnx`` with ``RAGLINE_RERANK_MODEL=/path/model.onnx`` and the model's ``tokenizer.json`` (Hugging
Face tokenizers format) beside it, or named by ``RAGLINE_RERANK_TOKENIZER``. Any BERT-style cross-encoder exported
to ONNX fits (ms-marco-MiniLM-L-6-v2, bge-reranker-base, mxbai-rerank, ...): inputs ``input_ids`` and
``attention_mask`` (and ``token_type_ids`` when the model takes them), question and passage encoded as one pair;
output logits of shape ``[batch, 1]`` (a relevance score) or ``[batch, 2]`` (the second class is "relevant").
Nothing is downloaded: ragline ships no such model (none that PyPI packages carry has a clear licence and no
download at run time), so the user brings one.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ragline.errors import ConfigError
from ragline.types import Deadline, Hit


class CrossEncoderReranker:
    """Orders hits by a cross-encoder reading the question and each passage together."""

    def __init__(self, model: str, tokenizer: str | None = None, *, max_tokens: int = 512, batch_size: int = 16,
                 threads: int = 0) -> None:
        path = Path(model).expanduser()
        vocab = Path(tokenizer).expanduser() if tokenizer else path.with_name("tokenizer.json")
        for what, file in (("the cross-encoder (RAGLINE_RERANK_MODEL)", path),
                           ("its tokenizer.json (RAGLINE_RERANK_TOKENIZER)", vocab)):
            if not file.is_file():
                raise ConfigError(f"{what} is not a file: {file}")
        import onnxruntime as ort
        from tokenizers import Tokenizer

        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        try:
            self._session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as err:  # onnxruntime raises its own classes for a file that is not a model
            raise ConfigError(f"{path} is not an ONNX model onnxruntime can load: {err}") from err
        self._inputs = {i.name for i in self._session.get_inputs()}
        if not {"input_ids", "attention_mask"} <= self._inputs:
            raise ConfigError(f"{path}: a cross-encoder takes input_ids and attention_mask; this model takes "
                              f"{sorted(self._inputs)}")
        self._tokenizer = Tokenizer.from_file(str(vocab))
        self._tokenizer.enable_truncation(max_tokens, strategy="only_second")  # the question is kept whole
        self._tokenizer.enable_padding()
        self._path, self.batch_size = path, batch_size

    @property
    def name(self) -> str:
        """``onnx:FILE``."""
        return f"onnx:{self._path.name}"

    def scores(self, question: str, texts: Sequence[str]) -> list[float]:
        """The model's relevance score of each text for the question."""
        out: list[float] = []
        for start in range(0, len(texts), self.batch_size):
            pairs = [(question, t) for t in texts[start:start + self.batch_size]]
            encoded = self._tokenizer.encode_batch(pairs)
            feed: dict[str, Any] = {
                "input_ids": np.array([e.ids for e in encoded], dtype=np.int64),
                "attention_mask": np.array([e.attention_mask for e in encoded], dtype=np.int64),
            }
            if "token_type_ids" in self._inputs:
                feed["token_type_ids"] = np.array([e.type_ids for e in encoded], dtype=np.int64)
            logits = np.asarray(self._session.run(None, feed)[0], dtype=np.float32)
            logits = logits.reshape(len(pairs), -1)
            out += (logits[:, -1] if logits.shape[1] > 1 else logits[:, 0]).tolist()
        return out

    def rerank(self, question: str, hits: Sequence[Hit], k: int, deadline: Deadline | None = None) -> list[Hit]:
        """The best ``k`` of ``hits`` by the model's score (local: the deadline does not apply)."""
        if not hits:
            return []
        scores = self.scores(question, [h.chunk.context_text() for h in hits])
        order = sorted(range(len(hits)), key=lambda i: -scores[i])[:k]
        return [Hit(hits[i].chunk, scores[i], (*hits[i].found_by, "rerank")) for i in order]
