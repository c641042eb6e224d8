"""The Lambda entry points: ingestion from SQS, the API Gateway WebSocket, and the HTTP function."""
