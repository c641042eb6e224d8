"""Chat models for workflow steps, by name, each call behind the step's own retry policy."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ragline.compose import make_chat_model
from ragline.resilience import ResilientChatModel, RetryPolicy
from ragline.settings import Settings

if TYPE_CHECKING:
    from ragline.seams import ChatModel
    from ragline.workflows.run import RetrySpec


class WorkflowModels:
    """Chat models by name for workflow steps.

    One model object per name serves every step; a local model keeps ``concurrency`` llama.cpp instances so
    parallel branches really run at the same time.
    """

    def __init__(self, settings: Settings, concurrency: int) -> None:
        self.settings, self.concurrency = settings, concurrency
        self.models: dict[str, ChatModel] = {}

    def __call__(self, spec: str, retry: RetrySpec) -> ResilientChatModel:
        """The model named ``spec`` behind the retry policy ``retry``."""
        if spec not in self.models:
            self.models[spec] = make_chat_model(spec, self.settings, instances=self.concurrency)
        policy = RetryPolicy(retry.max_attempts, retry.base_delay, retry.max_delay)
        return ResilientChatModel([self.models[spec]], policy)

    def close(self) -> None:
        """Free what the models hold (llama.cpp instances, connections)."""
        for model in self.models.values():
            model.close()
