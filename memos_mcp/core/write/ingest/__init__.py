"""Ingest: the rule and model extractors, documents and the background add queue and worker."""
