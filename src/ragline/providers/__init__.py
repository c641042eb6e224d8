"""Providers, grouped by backend: local (offline), openai, opensearch, aws. Each backend is one optional extra."""
