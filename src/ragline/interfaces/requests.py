"""What a caller may ask, validated once for every interface, and the one place a ``Query`` is built from it.

The HTTP routes, both WebSockets, the OpenAI-compatible endpoint, the Lambda handlers and the CLI send a
``QueryRequest``; ``query_for`` fills what it leaves out from the settings and clamps its deadline to the time
the caller has left (a Lambda's remaining time).
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator

from ragline.errors import InputError
from ragline.settings import Settings
from ragline.types import MAX_IMAGE_BYTES, Image, Message, Query

# standard base64, padded, not empty
BASE64 = r"^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{4}|[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)$"


STRICT = ConfigDict(strict=True)  # JSON types as the schema says: true is not 1, "5" is not 5


def _integral(value: object) -> object:
    """JSON Schema's integers include 5.0; pydantic's strict ones do not."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


# (the bounds sit inside the type, where pydantic writes them into the JSON schema as minimum and maximum)
Passages = Annotated[int, Field(ge=1, le=100), BeforeValidator(_integral)]
Tokens = Annotated[int, Field(ge=1, le=8192), BeforeValidator(_integral)]


class ImageIn(BaseModel):
    """A picture sent with the question (base64), for models that take images."""

    model_config = STRICT

    media_type: Literal["image/png", "image/jpeg", "image/gif", "image/webp"]
    data: str = Field(description="base64 of the image bytes",
                      json_schema_extra={"pattern": BASE64, "maxLength": (MAX_IMAGE_BYTES + 2) // 3 * 4})

    @field_validator("data")
    @classmethod
    def _is_base64(cls, value: str) -> str:
        if not re.fullmatch(BASE64, value):
            raise ValueError("not valid base64 (the standard alphabet, with its padding)")
        return value

    def image(self) -> Image:
        """The decoded image."""
        try:
            raw = base64.b64decode(self.data, validate=True)
        except (binascii.Error, ValueError) as err:  # ValueError: characters outside ASCII
            raise InputError("images[].data is not valid base64") from err
        return Image.from_bytes(raw, "image." + self.media_type.split("/")[1])


class QueryRequest(BaseModel):
    """A question and how to answer it; every field but the question has a default from the settings."""

    model_config = STRICT

    question: str = Field(min_length=1)
    filters: dict[str, str] = Field(default_factory=dict)
    k: Passages | None = None
    mode: Literal["hybrid", "vector", "bm25"] | None = None
    max_tokens: Tokens | None = None
    deadline: float | None = Field(None, gt=0, le=3600, allow_inf_nan=False)
    stream: bool = False
    use_cache: bool = True
    images: list[ImageIn] = Field(default_factory=list, max_length=5)

    @field_validator("question")
    @classmethod
    def _question_is_text(cls, value: str) -> str:
        return unicode_text(value, "question")

    @field_validator("filters")
    @classmethod
    def _filters_are_text(cls, value: dict[str, str]) -> dict[str, str]:
        for key, item in value.items():
            unicode_text(key, "a filter key")
            unicode_text(item, f"the filter {key.encode('utf-8', 'backslashreplace').decode()}")
        return value


def unicode_text(value: str, what: str) -> str:
    """``value``, if it is valid Unicode text (a lone surrogate, which JSON can carry as an escape, is not)."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as err:
        bad = value[err.start:err.end].encode("utf-8", "backslashreplace").decode()
        raise ValueError(f"{what} is not valid Unicode text (a lone surrogate {bad} at character {err.start})") \
            from err
    return value


def query_for(settings: Settings, request: QueryRequest, history: tuple[Message, ...] = (), *,
              time_left: float | None = None, show_prompt: bool = False) -> Query:
    """The Query a request asks for; its deadline never exceeds ``time_left`` (seconds the caller has)."""
    deadline = request.deadline or settings.deadline
    if time_left is not None:
        deadline = max(1.0, min(deadline or time_left, time_left))
    return Query(
        request.question, request.filters, request.k or settings.k, request.mode or settings.retrieval, history,
        request.max_tokens or settings.max_tokens, deadline, request.use_cache, [i.image() for i in request.images],
        show_prompt,
    )
