"""The offline backend: MiniLM (ONNX), llama.cpp, the extractive answerer, LanceDB and SQLite."""
