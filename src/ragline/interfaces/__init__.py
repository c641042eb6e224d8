"""How ragline is reached: the CLI, the HTTP app (JSON, SSE, WebSocket, OpenAI-compatible), the Lambda handlers."""
