"""The graph's tables on PostgreSQL: the embedded SQLite store's four tables (``sqlite_store``),
prefixed ``graph_`` so that they sit beside the catalog's in one database.

``graph_entities`` (unique by cube and normalised key), ``graph_aliases`` (unique by cube and alias
key), ``graph_relations`` (subject and object hold entity keys; at most one relation still open,
``invalid_at`` null, per cube, subject, object and normalised predicate) and ``graph_links``: a
relation's provenance, one row per memory in the order linked (``seq``, an identity column), unique
by relation and memory, repeating the relation's entity keys so that "the memories linked to an
entity, newest first" is one index walk. Times are epoch seconds (double precision). The migrations
in ``graph_migrations`` make this schema (``HEAD`` names their newest revision)."""

from __future__ import annotations

import sqlalchemy as sa

HEAD = "g0001"
VERSION_TABLE = "graph_alembic_version"

_TIME: sa.Double[float] = sa.Double()

metadata = sa.MetaData()

entities = sa.Table(
    "graph_entities", metadata,
    sa.Column("cube_id", sa.Text, primary_key=True), sa.Column("key", sa.Text, primary_key=True),
    sa.Column("name", sa.Text, nullable=False), sa.Column("type", sa.Text, nullable=False, server_default=""))

aliases = sa.Table(
    "graph_aliases", metadata,
    sa.Column("cube_id", sa.Text, primary_key=True), sa.Column("alias_key", sa.Text, primary_key=True),
    sa.Column("alias", sa.Text, nullable=False), sa.Column("entity_key", sa.Text, nullable=False),
    sa.Index("graph_aliases_entity", "cube_id", "entity_key"))

relations = sa.Table(
    "graph_relations", metadata,
    sa.Column("id", sa.Text, primary_key=True), sa.Column("cube_id", sa.Text, nullable=False),
    sa.Column("subject", sa.Text, nullable=False), sa.Column("predicate", sa.Text, nullable=False),
    sa.Column("object", sa.Text, nullable=False), sa.Column("predicate_key", sa.Text, nullable=False),
    sa.Column("confidence", _TIME, nullable=False), sa.Column("valid_at", _TIME), sa.Column("invalid_at", _TIME),
    sa.Column("created_at", _TIME, nullable=False),
    sa.Index("graph_relations_subject", "cube_id", "subject"),
    sa.Index("graph_relations_object", "cube_id", "object"),
    sa.Index("graph_relations_open", "cube_id", "subject", "object", "predicate_key", unique=True,
             postgresql_where=sa.text("invalid_at IS NULL")))

links = sa.Table(
    "graph_links", metadata,
    sa.Column("seq", sa.BigInteger, sa.Identity(), primary_key=True),
    sa.Column("relation_id", sa.Text, nullable=False), sa.Column("cube_id", sa.Text, nullable=False),
    sa.Column("memory_id", sa.Text, nullable=False), sa.Column("subject", sa.Text, nullable=False),
    sa.Column("object", sa.Text, nullable=False),
    sa.UniqueConstraint("relation_id", "memory_id", name="graph_links_relation_memory"),
    sa.Index("graph_links_memory", "cube_id", "memory_id"),
    sa.Index("graph_links_subject", "cube_id", "subject", "seq"),
    sa.Index("graph_links_object", "cube_id", "object", "seq"))
