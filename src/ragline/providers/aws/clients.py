"""boto3 clients built once per process, with the timeouts and retry budget ragline owns.

botocore's own retries are switched off (one attempt): ragline's RetryPolicy retries throttling with full jitter
and within the caller's deadline, and fails over to the next region or model. The read timeout is the settings'
``request_timeout``, which the Lambda template keeps shorter than the function's timeout.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from functools import lru_cache
from typing import Any

from ragline.errors import ConfigError, ModelUnavailableError, RaglineError

_lock = threading.Lock()


@lru_cache(maxsize=64)
def client(service: str, region: str | None = None, endpoint_url: str | None = None,
           read_timeout: float = 30.0, connect_timeout: float = 5.0) -> Any:
    """A boto3 client (shared: boto3 clients are thread-safe, building one costs ~50 ms)."""
    try:
        import boto3
        from botocore.config import Config
    except ImportError as err:
        raise ConfigError("the AWS providers need boto3: pip install 'ragline[aws]'") from err
    config = Config(
        connect_timeout=min(connect_timeout, read_timeout), read_timeout=read_timeout,
        retries={"total_max_attempts": 1, "mode": "standard"}, max_pool_connections=32,
    )
    with _lock:  # boto3's default session is not safe to use from several threads at once
        return boto3.session.Session().client(
            service, region_name=region, endpoint_url=endpoint_url, config=config  # type: ignore[call-overload]
        )


def error_code(err: BaseException) -> str:
    """The AWS error code of a botocore ClientError or EventStreamError ('' for anything else)."""
    response = getattr(err, "response", None)
    if isinstance(response, dict):
        return str(response.get("Error", {}).get("Code", ""))
    return ""


def model_arn(model_id: str, region: str | None, who: str) -> str:
    """A foundation model's ARN from its id (an ARN is kept as it is); ``who`` needs it, for the error."""
    if model_id.startswith("arn:"):
        return model_id
    if not region:
        raise ConfigError(f"{who} needs a region for the model ARN: set RAGLINE_AWS_REGION")
    return f"arn:aws:bedrock:{region}::foundation-model/{model_id}"


def call_mapped(call: Callable[[], Any], what: str, *, transient: set[str],
                permanent: type[RaglineError] = RaglineError) -> Any:
    """``call()``, with botocore's errors raised as ragline's.

    An invalid request and other refusals become ``permanent``; throttling and outages (codes in ``transient``, or
    no answer at all) become ModelUnavailableError, which the retry policy retries.
    """
    from botocore.exceptions import BotoCoreError, ClientError, ParamValidationError

    try:
        return call()
    except ParamValidationError as err:
        raise permanent(f"{what}: invalid request: {err}") from err
    except (ClientError, BotoCoreError) as err:
        message = f"{what} failed: {err}"
        if error_code(err) in transient or not isinstance(err, ClientError):
            raise ModelUnavailableError(message) from err
        raise permanent(message) from err
