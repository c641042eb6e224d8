"""How a remote chat model proves it answers, for ``ragline doctor``: one token, as the first answer would ask."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ragline.types import Message, Token

if TYPE_CHECKING:
    from ragline.seams import ChatModel


def one_token_reply(model: ChatModel) -> str:
    """Send "Say OK." with a one-token budget and report the reply."""
    text = "".join(e.text for e in model.stream([Message("user", "Say OK.")], max_tokens=1) if isinstance(e, Token))
    return f"answered a one-token request ({text.strip()!r})"
