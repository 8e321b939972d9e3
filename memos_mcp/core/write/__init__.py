"""The write path of memories: adding (``add``), changing and deleting (``change``), and beside
them the ``ingest`` pieces that turn messages and documents into memories."""
