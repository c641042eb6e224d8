"""An OpenAI-compatible chat server on 127.0.0.1 that streams a fixed answer at once (standard library only).

    python bench/peers/llm_server.py [--port 0]     # prints its base URL, serves until killed

Every framework in the side-by-side benchmark talks to it, so the model costs nothing and only the frameworks
differ. Chunks carry every field of the ``chat.completion.chunk`` object, so strict clients accept them.
"""

from __future__ import annotations

import argparse
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

ANSWER = ("Amazon", " Lex", " is", " an", " AWS", " service", " for", " building", " chatbots", " [1].")


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    last_messages: ClassVar[list[dict]] = []  # the messages of the last request, so the benchmark can show each prompt

    def log_message(self, *args: object) -> None:
        """Quiet."""

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", "0"))) or b"{}")
        Handler.last_messages = body.get("messages", [])
        base = {
            "id": "chatcmpl-bench",
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": body.get("model", "bench"),
        }
        if not body.get("stream"):
            data = json.dumps(
                {
                    **base,
                    "object": "chat.completion",
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": "".join(ANSWER)},
                            "finish_reason": "stop",
                        }
                    ],
                    "usage": {"prompt_tokens": 50, "completion_tokens": len(ANSWER), "total_tokens": 50 + len(ANSWER)},
                }
            )
            self._send(200, "application/json", data.encode())
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Connection", "close")
        self.end_headers()
        events = [
            {**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}]}
        ]
        events += [
            {**base, "choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": None}]} for piece in ANSWER
        ]
        events.append({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
        events.append(
            {
                **base,
                "choices": [],
                "usage": {"prompt_tokens": 50, "completion_tokens": len(ANSWER), "total_tokens": 50 + len(ANSWER)},
            }
        )
        payload = "".join(f"data: {json.dumps(e)}\n\n" for e in events) + "data: [DONE]\n\n"
        self.wfile.write(payload.encode())
        self.wfile.flush()
        self.close_connection = True

    def _send(self, status: int, kind: str, data: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def start(port: int = 0) -> tuple[ThreadingHTTPServer, str]:
    """Serve in a daemon thread; returns the server and its ``/v1`` base URL."""
    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}/v1"


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=0)
    server, url = start(parser.parse_args().port)
    print(url, flush=True)
    threading.Event().wait()
