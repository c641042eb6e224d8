"""Workflows: prompt chains and parallel prompts as data, run locally or exported to Step Functions."""
