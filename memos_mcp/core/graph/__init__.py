"""Graph memory: entities and relations per cube, behind the ``GraphStore`` port."""

from memos_mcp.core.graph.store import Entity, GraphStore, Relation, normalise

__all__ = ["Entity", "GraphStore", "Relation", "normalise"]
