"""What workflow steps call: chat models by name, each behind the step's own retry policy; S3 objects."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

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


class S3Objects:
    """Objects by ``s3://bucket/key`` URL, through the S3 endpoint the settings name (a map's items and results)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def _client(self) -> Any:
        from ragline.providers.aws.clients import client

        return client("s3", self.settings.aws_region, self.settings.endpoint_for("s3"))

    @staticmethod
    def _split(url: str) -> tuple[str, str]:
        bucket, _, key = url.removeprefix("s3://").partition("/")
        return bucket, key

    def get(self, url: str) -> bytes:
        """The object's bytes."""
        bucket, key = self._split(url)
        data: bytes = self._client().get_object(Bucket=bucket, Key=key)["Body"].read()
        return data

    def put(self, url: str, data: bytes) -> None:
        """Write the object."""
        bucket, key = self._split(url)
        self._client().put_object(Bucket=bucket, Key=key, Body=data, ContentType="application/json")
