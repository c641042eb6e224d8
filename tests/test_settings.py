from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from ragline.settings import Settings


def test_precedence_argument_env_file_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "ragline.toml"
    config.write_text('k = 7\nchat_model = "extractive"\ntenant = "from-file"\n', encoding="utf-8")
    monkeypatch.setenv("RAGLINE_CONFIG", str(config))
    assert (Settings().k, Settings().chat_model, Settings().max_tokens) == (7, "extractive", 256)  # file > default
    monkeypatch.setenv("RAGLINE_K", "9")
    assert Settings().k == 9  # env > file
    assert Settings(k=3).k == 3  # argument > env
    assert Settings().tenant == "from-file"


def test_bad_values_fail_with_the_valid_choices() -> None:
    with pytest.raises(ValidationError, match="Input should be 'hybrid', 'vector' or 'bm25'"):
        Settings(retrieval="semantic")
    with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
        Settings(chunk_size=100)
