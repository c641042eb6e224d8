"""Deterministic fakes, loopback servers speaking real wire formats, stand-ins; never imported by production code."""
