"""The query path: the engine, retrieval and fusion, prompts, citations, the answer cache."""
