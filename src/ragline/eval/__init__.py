"""Evaluation: BEIR retrieval metrics, answer quality on question sets, and the HTML report."""
