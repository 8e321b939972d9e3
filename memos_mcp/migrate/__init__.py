"""``memos-mcp migrate``: an embedded data directory copied into PostgreSQL (see ``migrate.run``)."""
