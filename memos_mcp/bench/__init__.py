"""Benchmarks run by ``memos-mcp bench``."""
