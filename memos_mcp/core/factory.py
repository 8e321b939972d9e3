"""Building the configured backends. Construction is cheap; connecting and loading happen lazily."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy.exc import ArgumentError

from memos_mcp.config import Settings
from memos_mcp.core.embed_batch import batched
from memos_mcp.core.embedder import Embedder, LocalOnnxEmbedder, OpenAIEmbedder
from memos_mcp.core.graph.store import GraphStore
from memos_mcp.core.stores.catalog import Catalog, catalog_exists
from memos_mcp.core.stores.catalog_db import database_url
from memos_mcp.core.stores.data_dir import CATALOG_FILE, EDGE_DIR, require_store
from memos_mcp.core.stores.vector import IndexConfig, VectorStore
from memos_mcp.errors import ConfigError, InvalidRequest

if TYPE_CHECKING:
    from memos_mcp.core.llm import LanguageModel


def _secret(value: object) -> str | None:
    getter = getattr(value, "get_secret_value", None)
    return (getter() or None) if getter else None  # an empty secret is no secret


def open_catalog(settings: Settings, read_only: bool = False) -> Catalog:
    """The configured catalog, opened: ``catalog.url`` (PostgreSQL) when set, else ``CATALOG_FILE``
    in the data directory. See ``Catalog`` (raises ``StorageError``)."""
    url = _secret(settings.catalog.url)
    return Catalog(url if url else settings.data_dir / CATALOG_FILE, read_only)


def require_existing(settings: Settings, which: str, memories: bool = False) -> None:
    """Raise unless the configured stores already hold a memos-mcp store, creating and changing nothing:
    for a command that works on one and must not make a new, empty one (``which`` says what it does, for
    the hint). The catalog (``CATALOG_FILE`` in the data directory, or the ``catalog.url`` database) must
    hold the catalog's tables; for a command that reads ``memories``, the vector store must hold its
    collection (``VectorStore.collection_exists``) unless it lies in the data directory beside the catalog
    (qdrant-edge): it is made by the first memory, so a store of users and keys only has none yet.
    ``InvalidRequest`` names the setting to correct (``--data-dir``, ``catalog.url``, ``vector.path``,
    ``vector.collection``); ``StorageError`` when a store cannot be read (not a database, unreachable)."""
    url = _secret(settings.catalog.url)
    at_data_dir = f"name the one {which} with --data-dir (or MEMOS_DATA_DIR)"
    if url is None:
        require_store(settings.data_dir, which)
        if not catalog_exists(settings.data_dir / CATALOG_FILE):
            raise InvalidRequest(f"the {CATALOG_FILE} of {settings.data_dir} holds no memos-mcp catalog: {at_data_dir}",
                                 field="--data-dir")
    elif not catalog_exists(url):
        raise InvalidRequest(f"the catalog.url database holds no memos-mcp catalog: name the one {which} with "
                             "catalog.url (DATABASE_URL, MEMOS_CATALOG__URL)", field="catalog.url")
    if not memories or (url is None and settings.vector.backend == "edge"):
        return
    if build_vector_store(settings, read_only=True).collection_exists():
        return
    if settings.vector.backend == "edge":
        raise InvalidRequest(f"the data directory {settings.data_dir} has no {EDGE_DIR}/ (its memories' vectors): "
                             f"{at_data_dir}", field="--data-dir")
    if settings.vector.backend == "qdrant" and not settings.vector.url:
        raise InvalidRequest(f"vector.path {settings.vector.path} holds no collection {settings.vector.collection}: "
                             f"name the one {which} with vector.path (MEMOS_VECTOR__PATH)", field="vector.path")
    vector = settings.vector
    raise InvalidRequest(f"the {vector.backend} vector store holds no collection {vector.collection}: name the one "
                         f"{which} with vector.collection (MEMOS_VECTOR__COLLECTION)", field="vector.collection")


def graph_on_postgres(settings: Settings) -> bool:
    """Whether the embedded graph backend lives in the catalog's PostgreSQL database (``catalog.url``
    names PostgreSQL); a malformed URL answers False (the catalog reports it)."""
    url = _secret(settings.catalog.url)
    if not url:
        return False
    try:
        return database_url(url).get_backend_name() == "postgresql"
    except ArgumentError:
        return False


def build_vector_store(settings: Settings, read_only: bool = False) -> VectorStore:
    """The configured vector store; ``read_only`` for a data directory that may not be written."""
    vector = settings.vector
    index = IndexConfig(threshold=vector.index_threshold, m=vector.hnsw_m, ef_construct=vector.hnsw_ef_construct,
                        ef=vector.hnsw_ef, threads=vector.index_threads)
    if vector.backend == "edge":
        from memos_mcp.core.stores.vector_edge import EdgeVectorStore

        return EdgeVectorStore(settings.data_dir / EDGE_DIR, read_only, index)
    if vector.backend == "pgvector":
        url = vector.url or _secret(settings.catalog.url)
        if not url:
            raise ConfigError("vector backend 'pgvector' needs a PostgreSQL URL: vector.url (MEMOS_VECTOR__URL) "
                              "or the catalog's (MEMOS_CATALOG__URL or DATABASE_URL)")
        from memos_mcp.core.stores.vector_pg import PgVectorStore  # SQLAlchemy's PostgreSQL parts: only when used

        return PgVectorStore(url, vector.collection, read_only)
    if not vector.url and not vector.path:
        raise ConfigError("vector backend 'qdrant' needs vector.url (MEMOS_VECTOR__URL or QDRANT_URL) "
                          "or vector.path for qdrant-client's local mode")
    from memos_mcp.core.stores.vector_client import QdrantClientVectorStore  # a slow import: only when used

    return QdrantClientVectorStore(collection=vector.collection, url=vector.url,
                                   api_key=_secret(vector.api_key),
                                   path=str(vector.path) if vector.path and not vector.url else None,
                                   read_only=read_only, index=index)


def build_embedder(settings: Settings) -> Embedder:
    """The configured embedder behind the dynamic batcher (``embed_batch``) unless batching is off."""
    embedder = settings.embedder
    model: Embedder
    if embedder.backend == "local":
        model = LocalOnnxEmbedder(threads=embedder.threads, batch_size=embedder.batch_size,
                                  inter_threads=embedder.inter_threads, parallel=embedder.parallel,
                                  spin=embedder.spin, query_prefix=embedder.query_prefix,
                                  document_prefix=embedder.document_prefix, query_int8=embedder.query_int8,
                                  query_threads=embedder.query_threads, cache_dir=embedder.cache_dir)
    elif not embedder.model:
        raise ConfigError("embedder backend 'openai' needs embedder.model (MEMOS_EMBEDDER__MODEL or "
                          "MOS_EMBEDDER_MODEL)")
    else:
        model = OpenAIEmbedder(model=embedder.model,
                               base_url=embedder.base_url or settings.llm.base_url,
                               api_key=_secret(embedder.api_key) or _secret(settings.llm.api_key),
                               dimensions=embedder.dimension, batch_size=embedder.batch_size,
                               query_prefix=embedder.query_prefix, document_prefix=embedder.document_prefix)
    return batched(model, embedder.batch_max_texts, embedder.batch_wait_ms)


def build_language_model(settings: Settings) -> LanguageModel | None:
    """The configured language model's client, or None without one."""
    if not settings.llm.configured:
        return None
    from memos_mcp.core.llm import LanguageModel  # imports openai (slow): only when a model is configured

    return LanguageModel(settings.llm)


def build_graph_store(settings: Settings, read_only: bool = False) -> GraphStore:
    """The configured graph store; ``read_only`` (the embedded one only) for a data directory that may
    not be written. The embedded backend keeps its tables in the catalog's database when that is
    PostgreSQL (``graph_on_postgres``), else in ``graph.sqlite3`` under the data directory."""
    graph = settings.graph
    if graph.backend == "sqlite" and graph_on_postgres(settings):
        from memos_mcp.core.graph.postgres_store import PostgresGraphStore

        return PostgresGraphStore(_secret(settings.catalog.url) or "", read_only)
    if graph.backend == "sqlite":
        from memos_mcp.core.graph.sqlite_store import SqliteGraphStore

        return SqliteGraphStore(settings.data_dir / "graph.sqlite3", read_only)
    if not graph.neo4j_uri:
        raise ConfigError("graph backend 'neo4j' needs graph.neo4j_uri (NEO4J_URI or MEMOS_GRAPH__NEO4J_URI)")
    from memos_mcp.core.graph.neo4j_store import Neo4jGraphStore  # the driver: only when used

    return Neo4jGraphStore(graph.neo4j_uri, graph.neo4j_user, _secret(graph.neo4j_password) or "",
                           graph.neo4j_database or "neo4j")
