"""The ingest path: parse, chunk, embed, store; the durable job queue."""
