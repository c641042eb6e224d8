"""The HTTP function: the same ASGI app as ``ragline serve``, run by uvicorn behind the AWS Lambda Web Adapter.

The adapter (a Lambda extension in the image) starts this process, waits for ``/healthz``, and forwards each
invocation to it as HTTP; with ``AWS_LWA_INVOKE_MODE=response_stream`` and a Function URL in RESPONSE_STREAM
mode, Server-Sent Events reach the client token by token. Chosen over Mangum, which buffers whole responses
and so cannot stream, and which would need a second code path for the app's lifespan.
"""

from __future__ import annotations

import os


def main() -> None:
    """Serve the app on $HOST:$PORT (127.0.0.1:8080 by default, where the adapter forwards invocations)."""
    import uvicorn

    from ragline.interfaces.http.app import create_app

    port = int(os.environ.get("PORT", "8080"))  # set by the Lambda Web Adapter's contract
    host = os.environ.get("HOST", "127.0.0.1")  # ECS behind a load balancer: 0.0.0.0
    uvicorn.run(create_app(), host=host, port=port, log_level="warning", timeout_keep_alive=75)


if __name__ == "__main__":
    main()
