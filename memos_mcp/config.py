"""Settings: built-in defaults < YAML file < seed-compatible aliases < MEMOS_* environment < CLI flags.

The YAML file (``--config`` / ``MEMOS_CONFIG``) may use ``${VAR}`` and ``${VAR:-default}``; an unset
variable without a default fails at once. Secrets come only from the environment: a YAML file may
name them through ``${VAR}`` but never hold one literally. A ``.env`` file in the working
directory is read like the environment.

A name that sets nothing is an error naming it and the closest setting, not a setting silently left
at its default: a key of the YAML file, and a ``MEMOS_<BLOCK>__<FIELD>`` variable (``load_settings``).
Flat ``MEMOS_*`` names are not judged: MemOS's own tools read some (``MEMOS_API_KEY``,
``MEMOS_BASE_URL``), so an unknown one may belong to another program.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from contextvars import ContextVar
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

from dotenv import dotenv_values
from pydantic import BaseModel, Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict, SettingsError

from memos_mcp.errors import ConfigError, InvalidRequest, first_problem
from memos_mcp.known_fields import MAX_NAMED, describe, dotted, known_names, suggestion, unknown_fields

SECRET_SUFFIXES = ("api_key", "password", "admin_key", "token", "secret")
DEFAULT_OPENAI_MODEL = "gpt-4o-mini"
_CONFIG_FILE: ContextVar[Path | None] = ContextVar("memos_config_file", default=None)
_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


class VectorSettings(BaseModel):
    backend: Literal["edge", "qdrant", "pgvector"] = "edge"
    url: str | None = Field(None, description="Qdrant server or cluster URL (backend qdrant); PostgreSQL URL "
                            "(backend pgvector; default: catalog.url)")
    api_key: SecretStr | None = None
    collection: str = Field("memos", description="collection name (pgvector: table vectors_<collection>)")
    path: Path | None = Field(None, description="qdrant-client local mode directory (no url)")
    index_threshold: int = Field(5000, ge=0, description=(
        "points outside the HNSW index past which the index is built (edge: in a background process; "
        "qdrant: the collection's indexing threshold); 0 = never build it (exact full scans)"))
    hnsw_m: int = Field(16, ge=4, le=128, description="HNSW edges per node")
    hnsw_ef_construct: int = Field(100, ge=4, le=1000, description="HNSW candidates while building")
    hnsw_ef: int = Field(128, ge=1, le=4096, description="HNSW candidates per dense search")
    index_threads: int = Field(0, ge=0, description="threads building the HNSW index (0 = every core)")


class CatalogSettings(BaseModel):
    """Where users, cubes, shares, keys, conversations, tasks and history are kept."""

    url: SecretStr | None = Field(None, description="a PostgreSQL database URL (postgresql://user:pass@host:5432/"
                                  "db; DATABASE_URL) shared by every process using it; unset: SQLite in the data "
                                  "directory")


class EmbedderSettings(BaseModel):
    backend: Literal["local", "openai"] = "local"
    model: str | None = Field(None, description="model name for the openai backend")
    base_url: str | None = None
    api_key: SecretStr | None = None
    dimension: int | None = Field(None, gt=0, description="requested output size (openai backend)")
    batch_size: int = Field(8, gt=0, le=2048, description="texts per model run (small runs are fastest on CPU)")
    threads: int | None = Field(None, gt=0, description="ONNX Runtime intra-op threads per model call "
                                "(local backend; default: the cores)")
    inter_threads: int = Field(1, gt=0, le=64, description="ONNX Runtime inter-op threads (local backend; "
                               "used only with parallel)")
    parallel: bool = Field(False, description="ONNX Runtime's parallel execution mode (local backend)")
    spin: bool = Field(False, description="idle ONNX Runtime threads spin-wait for work (local backend): they "
                       "burn CPU that concurrent requests need (twice the CPU per search)")
    batch_max_texts: int = Field(64, ge=1, le=2048, description="texts that concurrent callers' embeddings "
                                 "share in one model call (dynamic batching); 1 turns batching off")
    batch_wait_ms: float = Field(0.0, ge=0, le=100, description="how long a model call waits for other "
                                 "callers' texts before it starts; 0 batches only what arrives during a call")
    query_int8: bool = Field(True, description="search queries run through the local model quantized to int8 "
                             "(about 2.5x faster; stored texts keep the packaged model; local backend)")
    query_threads: int = Field(1, gt=0, le=64, description="ONNX Runtime intra-op threads per query model call "
                               "(local backend with query_int8: one is fastest for short queries)")
    cache_dir: Path | None = Field(None, description="where the int8 query model is kept once made (default "
                                   "$XDG_CACHE_HOME/memos-mcp or ~/.cache/memos-mcp)")
    query_prefix: str = Field("", max_length=100, description="put before each search query, for asymmetric "
                              "models ('query: ' for e5, 'search_query: ' for nomic-embed-text)")
    document_prefix: str = Field("", max_length=100, description="put before each stored text, for asymmetric "
                                 "models ('passage: ' for e5, 'search_document: ' for nomic-embed-text)")


class LLMSettings(BaseModel):
    base_url: str | None = None
    api_key: SecretStr | None = None
    model: str | None = None
    temperature: float = Field(0.7, ge=0, le=2)
    max_tokens: int = Field(1024, gt=0)
    max_turns_window: int = Field(20, gt=0)
    timeout: float = Field(60.0, gt=0, description="seconds per request to the model")
    max_retries: int = Field(3, ge=0, le=10, description="retries (with backoff) on timeouts, 429s, 5xx, "
                             "connection errors")
    json_mode: Literal["json_object", "json_schema", "json_object_schema", "off"] = Field(
        "json_object", description="how extraction asks for JSON: response_format json_object (OpenAI, vLLM, "
        "Ollama), json_schema (OpenAI structured outputs), json_object_schema (llama.cpp's server: json_object "
        "constrained by a schema), or off")
    fold_system: bool = Field(False, description="send system text at the head of the first user turn, for "
                              "chat templates without a system role (Gemma on llama.cpp drops it otherwise)")
    extraction_temperature: float = Field(0.0, ge=0, le=2)
    extraction_max_tokens: int = Field(2048, gt=0)

    @property
    def configured(self) -> bool:
        return bool(self.model and (self.base_url or self.api_key))


class SearchSettings(BaseModel):
    top_k: int = Field(10, gt=0, le=1000)
    pref_top_k: int = Field(6, ge=0, le=1000)
    candidates: int = Field(100, gt=0, le=5000, description="prefetch size of each retriever")
    dense_weight: float = Field(0.35, ge=0, le=1)
    sparse_weight: float = Field(0.65, ge=0, le=1)
    sparse_saturation: float = Field(8.0, gt=0)
    conversation_boost: float = Field(0.1, ge=0, le=1)
    threshold: float = Field(0.0, ge=0, le=1, description="hits below this relativity are dropped")
    context_turns: int = Field(2, ge=0, le=5, description="previous turns indexed with a message")
    dense_context: bool = Field(False, description="embed the previous turns with a message too")
    question_penalty: float = Field(0.07, ge=0, le=1, description="ranking score lost by a memory that ends "
                                    "in a question (it asks more than it tells; 0: none)")
    reranker: str = "none"


class AddSettings(BaseModel):
    """The background add pipeline (used when a language model is configured)."""

    async_mode: bool = Field(True, description="answer an add with a task id at once and extract in the "
                             "background; false waits for the memories")
    concurrency: int = Field(2, gt=0, le=32, description="extraction tasks running at once (one at a time "
                             "per conversation)")
    window_turns: int = Field(6, ge=0, le=50, description="earlier turns of the conversation shown to the model")
    similar_memories: int = Field(8, ge=0, le=50, description="existing memories shown to the model to merge with")
    duplicate_similarity: float = Field(0.92, gt=0, le=1, description="a new memory this close (cosine) to an "
                                        "existing one is a duplicate")
    sync_timeout: float = Field(300.0, gt=0, description="longest wait of an add with async_mode false")
    task_lease: float = Field(60.0, ge=0.5, le=3600, description="seconds a process's claim on a queued add "
                              "holds unless renewed (every third of it): on a shared catalog, another replica "
                              "takes over the task of one that died after this")


class GraphSettings(BaseModel):
    enabled: bool = Field(True, description="extract entities and relations from memories and keep their graph")
    backend: Literal["sqlite", "neo4j"] = "sqlite"
    search: bool = Field(True, description="expand search through the entities a query names, by default")
    depth: Literal[1, 2] = Field(1, description="hops from the query's entities, by default")
    weight: float = Field(0.2, ge=0, le=1, description="how much a graph link adds to a hit's relativity")
    dense_weight: float = Field(0.55, ge=0, le=1, description="dense share of the hybrid score for a query "
                                "whose people the graph resolved (their names leave the text query)")
    decay: float = Field(0.5, ge=0, le=1, description="weight kept per extra hop")
    entity_links: bool = Field(True, description="expand search also through the other entities a query names "
                               "(places, events, titles, dates), not only through people")
    neo4j_uri: str | None = None
    neo4j_user: str = "neo4j"
    neo4j_password: SecretStr | None = None
    neo4j_database: str | None = None


class StorageSettings(BaseModel):
    """The free space kept on the data directory's file system (a full disk must not reach the stores)."""

    min_free_bytes: int = Field(64 * 2**20, ge=0, description="writes answer 507 storage_error, and start-up "
                                "refuses, when the data directory's file system has less free space than this")


# --- HTTP server (memos-mcp serve) -----------------------------------------------------------
CORE_THREADS = 4  # measured on 2 cores: see benchmarks/rest-locomo/results.md
SWITCH_INTERVAL = 0.005  # seconds; Python's own default (see ServerSettings.switch_interval)


class ServerSettings(BaseModel):
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535, description="0 picks a free port (logged at start)")
    admin_key: SecretStr | None = Field(None, description="acts as root over HTTP (MEMOS_ADMIN_KEY)")
    allowed_hosts: list[str] = Field(default_factory=list, description="Host headers accepted besides "
                                     "loopback and the bound host; 'name' allows any port, 'name:port' one")
    allowed_origins: list[str] = Field(default_factory=list, description="browser Origins accepted besides "
                                       "the server's own (same origin), e.g. https://app.example.com")
    stateless_http: bool = Field(False, description="every streamable HTTP request stands alone (load balancers)")
    json_response: bool = Field(False, description="answer streamable HTTP POSTs with JSON, not an SSE stream")
    max_sessions_per_user: int = Field(64, ge=1, le=10_000, description="open MCP sessions (streamable HTTP and "
                                       "SSE) one user may hold; one more is answered 429 until one ends or has been "
                                       "idle 30 minutes")
    allow_unauthenticated: bool = Field(False, description="serve a non-loopback host with no API key")
    ui_session_seconds: int = Field(43_200, ge=1, description="how long a web UI sign-in lasts (/ui)")
    ui_max_import_bytes: int = Field(1 << 30, gt=0, description="largest export file the web UI imports (413 beyond)")
    core_threads: int = Field(CORE_THREADS, ge=1, le=1024, description="core calls (searches, adds, ...) of REST "
                              "and MCP over HTTP run at once in worker threads; more wait their turn, first come "
                              "first served")
    switch_interval: float = Field(SWITCH_INTERVAL, ge=1e-6, le=1, allow_inf_nan=False,
                                   description="seconds a thread holding Python's GIL runs before one waiting for "
                                   "it takes it (sys.setswitchinterval, which counts whole microseconds): a search "
                                   "back from the model or SQLite waits up to this long for a thread running Python")

    @field_validator("switch_interval", mode="before")
    @classmethod
    def _seconds_not_a_flag(cls, value: object) -> object:
        if isinstance(value, bool):  # a YAML ``true`` would read as 1 s
            raise ValueError("a number of seconds, not true or false")
        return value
# --- end of HTTP server settings ----------------------------------------------------------------


# --- REST mirror: rate limits, request size, CORS -----------------------------------------------
class RestSettings(BaseModel):
    rate_limits: list[str] = Field(["100/minute", "20/10 seconds"], description="per user, all enforced, "
                                   "over REST and MCP over HTTP together "
                                   "(limits syntax: '100/minute', '20 per 10 seconds'); [] turns limiting off")
    rate_limit_storage: str = Field("memory://", description="where the rate-limit counts live: memory:// (this "
                                    "process) or redis://host:6379/0 (shared by every replica; needs the "
                                    "redis extra)")
    max_body_bytes: int = Field(1_048_576, gt=0, description="largest request body of a REST route (413 beyond)")
    cors_origins: list[str] = Field(default_factory=list, description="browser origins allowed by CORS "
                                    "('*' for any); empty: no CORS headers")

    @field_validator("rate_limits", mode="after")
    @classmethod
    def _parsable(cls, value: list[str]) -> list[str]:
        from limits import parse  # slow to import: only when limits are configured (defaults are not checked)

        for item in value:
            parse(item)  # ValueError names the bad item
        return value
# --- end of REST mirror settings ----------------------------------------------------------------


def default_data_dir() -> Path:
    return Path.home() / ".memos-mcp"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="MEMOS_", env_nested_delimiter="__", env_file=".env", extra="ignore",
        nested_model_default_partial_update=True,
    )

    data_dir: Path = Field(default_factory=default_data_dir)
    default_user_id: str = "default"
    max_memory_size: int = Field(20_000, gt=0, description="longest memory text, in characters")
    chunk_size: int = Field(1_200, gt=100, description="characters per chunk of long text")
    import_roots: list[Path] = Field(default_factory=list, description="doc_path must resolve inside")
    read_only: bool = False
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = Field(
        "INFO", description="the least severe log record written to stderr (any case)")
    catalog: CatalogSettings = Field(default_factory=CatalogSettings)
    vector: VectorSettings = Field(default_factory=VectorSettings)
    embedder: EmbedderSettings = Field(default_factory=EmbedderSettings)
    llm: LLMSettings = Field(default_factory=LLMSettings)
    search: SearchSettings = Field(default_factory=SearchSettings)
    add: AddSettings = Field(default_factory=AddSettings)
    graph: GraphSettings = Field(default_factory=GraphSettings)
    storage: StorageSettings = Field(default_factory=StorageSettings)
    server: ServerSettings = Field(default_factory=ServerSettings)  # HTTP server block, see ServerSettings
    rest: RestSettings = Field(default_factory=RestSettings)  # REST mirror block, see RestSettings

    @field_validator("data_dir", mode="before")
    @classmethod
    def _given(cls, value: Any) -> Any:
        if isinstance(value, str) and not value.strip():  # Path("") is the working directory
            raise ValueError("is empty: give a directory, or leave it unset for ~/.memos-mcp")
        return value

    @field_validator("log_level", mode="before")
    @classmethod
    def _level_in_any_case(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value

    @field_validator("data_dir", mode="after")
    @classmethod
    def _expand(cls, value: Path) -> Path:
        return value.expanduser()

    @model_validator(mode="after")
    def _default_openai_model(self) -> Settings:
        # An endpoint or key without a model (the seed's OPENAI_API_KEY / OPENAI_API_BASE) gets a default.
        if (self.llm.api_key or self.llm.base_url) and not self.llm.model:
            self.llm.model = DEFAULT_OPENAI_MODEL
        return self

    @property
    def effective_import_roots(self) -> list[Path]:
        return [root.expanduser().resolve() for root in (self.import_roots or [self.data_dir / "imports"])]

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, dotenv_settings, AliasSource(settings_cls),
                YamlSource(settings_cls))


# --- seed-compatible environment names -------------------------------------------------------

def _embedder_backend(value: str) -> str:
    return "local" if value.lower() in {"local", "sentence_transformer", "onnx"} else "openai"


def _qdrant_host(value: str) -> str:
    return value if "://" in value else f"http://{value}:6333"


# alias -> (path in Settings, converter). MEMOS_* names win over these; these win over YAML.
ALIASES: dict[str, tuple[tuple[str, ...], Callable[[str], Any]]] = {
    "OPENAI_API_KEY": (("llm", "api_key"), str),
    "OPENAI_API_BASE": (("llm", "base_url"), str),
    "MOS_CHAT_MODEL": (("llm", "model"), str),
    "MOS_MAX_TOKENS": (("llm", "max_tokens"), int),
    "MOS_CHAT_TEMPERATURE": (("llm", "temperature"), float),
    "MOS_MAX_TURNS_WINDOW": (("llm", "max_turns_window"), int),
    "MOS_EMBEDDER_BACKEND": (("embedder", "backend"), _embedder_backend),
    "MOS_EMBEDDER_MODEL": (("embedder", "model"), str),
    "MOS_EMBEDDER_API_BASE": (("embedder", "base_url"), str),
    "MOS_EMBEDDER_API_KEY": (("embedder", "api_key"), str),
    "EMBEDDING_DIMENSION": (("embedder", "dimension"), int),
    "MOS_TOP_K": (("search", "candidates"), int),
    "SEARCH_LIMIT": (("search", "top_k"), int),
    "MOS_RERANKER_BACKEND": (("search", "reranker"), str),
    "DATABASE_URL": (("catalog", "url"), str),
    "QDRANT_URL": (("vector", "url"), str),
    "QDRANT_HOST": (("vector", "url"), _qdrant_host),
    "QDRANT_API_KEY": (("vector", "api_key"), str),
    "NEO4J_URI": (("graph", "neo4j_uri"), str),
    "NEO4J_USER": (("graph", "neo4j_user"), str),
    "NEO4J_PASSWORD": (("graph", "neo4j_password"), str),
    "NEO4J_DATABASE": (("graph", "neo4j_database"), str),
    "DEFAULT_USER_ID": (("default_user_id",), str),
    "MEMOS_USER_ID": (("default_user_id",), str),
    "MAX_MEMORY_SIZE": (("max_memory_size",), int),
    "REDIS_URL": (("rest", "rate_limit_storage"), str),
    # HTTP server: the admin key. Later entries win, so MEMOS_ADMIN_KEY beats the seed's names.
    "API_KEY": (("server", "admin_key"), str),
    "MEMIO_API_KEY": (("server", "admin_key"), str),
    "MEMOS_ADMIN_KEY": (("server", "admin_key"), str),
}


def _set_path(target: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    for key in path[:-1]:
        target = target.setdefault(key, {})
    target[path[-1]] = value


class AliasSource(PydanticBaseSettingsSource):
    """Reads the seed documents' variable names (from the environment, then ``.env``)."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        found = environment()
        result: dict[str, Any] = {}
        for name, (path, convert) in ALIASES.items():
            raw = found.get(name)
            if raw is None or raw == "":
                continue
            try:
                _set_path(result, path, convert(raw))
            except ValueError as exc:
                raise ConfigError(f"environment variable {name}={raw!r} is not valid: {exc}") from exc
        if "url" in result.get("vector", {}):
            result["vector"]["backend"] = "qdrant"
        if "neo4j_uri" in result.get("graph", {}):
            result["graph"]["backend"] = "neo4j"
        return result


def environment() -> dict[str, str]:
    """The process environment over the ``.env`` file of the working directory."""
    found = {k: v for k, v in dotenv_values(".env").items() if v is not None}
    found.update(os.environ)
    return found


def interpolate(value: Any, where: str = "", env: dict[str, str] | None = None) -> Any:
    """Replace ``${VAR}`` / ``${VAR:-default}`` in every string of a YAML tree."""
    env = environment() if env is None else env
    if isinstance(value, dict):
        return {k: interpolate(v, f"{where}.{k}" if where else str(k), env) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, f"{where}[{i}]", env) for i, v in enumerate(value)]
    if not isinstance(value, str):
        return value

    def substitute(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        if name in env:
            return env[name]
        if default is not None:
            return default
        raise ConfigError(f"config value {where} uses ${{{name}}} but {name} is not set", variable=name)

    return _VAR.sub(substitute, value)


def _refuse_literal_secrets(raw: Any, where: str = "") -> None:
    if isinstance(raw, dict):
        for key, value in raw.items():
            path = f"{where}.{key}" if where else str(key)
            if (str(key).endswith(SECRET_SUFFIXES) and isinstance(value, str) and value
                    and not _VAR.fullmatch(value)):
                raise ConfigError(
                    f"config value {path} holds a secret literally; write ${{SOME_VARIABLE}} and set "
                    "the variable in the environment", field=path)
            _refuse_literal_secrets(value, path)


class YamlSource(PydanticBaseSettingsSource):
    """The YAML file named by ``MEMOS_CONFIG`` (the CLI's ``--config`` sets it)."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        chosen = _CONFIG_FILE.get() or os.environ.get("MEMOS_CONFIG")
        return load_yaml(Path(chosen)) if chosen else {}


def load_yaml(path: Path) -> dict[str, Any]:
    import yaml  # only when a config file is given

    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}", path=str(path)) from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {path} is not valid YAML: {exc}", path=str(path)) from exc
    if not isinstance(raw, dict):
        raise ConfigError(f"config file {path} must hold a mapping at the top", path=str(path))
    unknown = unknown_fields(Settings, raw)
    if unknown:
        raise ConfigError(f"config file {path}: {describe(unknown, 'setting')}", path=str(path),
                          settings=[dotted(loc) for loc, _ in unknown])
    _refuse_literal_secrets(raw)
    result: dict[str, Any] = interpolate(raw)
    return result


def load_settings(config_file: Path | None = None, **overrides: Any) -> Settings:
    """Build the settings once (the CLI calls this); ``overrides`` are CLI flags (highest), each named
    like its setting (``log_level`` is ``--log-level``; None: not given). A bad flag is
    ``InvalidRequest`` naming the flag; a bad or unknown setting from the file or the environment
    (``unknown_variables``) is ``ConfigError`` naming it."""
    unknown = unknown_variables(environment())
    if unknown:
        more = f"; and {len(unknown) - MAX_NAMED} more" if len(unknown) > MAX_NAMED else ""
        raise ConfigError("; ".join(unknown[:MAX_NAMED]) + more, variables=unknown)
    given = {k: v for k, v in overrides.items() if v is not None}
    token = _CONFIG_FILE.set(config_file)
    try:
        return Settings(**given)
    except ValidationError as exc:
        where, problem = first_problem(exc)
        if where in given:
            flag = "--" + where.replace("_", "-")
            raise InvalidRequest(f"{flag} {str(given[where])!r}: {problem}", field=where) from exc
        raise ConfigError(f"invalid setting {where}: {problem}", errors=exc.errors()) from exc
    except SettingsError as exc:
        raise _not_json(exc) from exc
    finally:
        _CONFIG_FILE.reset(token)


def unknown_variables(env: dict[str, str]) -> list[str]:
    """The ``MEMOS_*`` names of ``env`` (any case, as pydantic-settings reads them) that set nothing,
    each as ``NAME sets nothing: ...``: a ``MEMOS_<BLOCK>__<FIELD>`` name with the closest block or
    setting, and a flat name that spells a nested setting with one underscore (``MEMOS_EMBEDDER_MODEL``)
    with its two-underscore form; and any name whose prefix has two underscores (``MEMOS__LOG_LEVEL``),
    with its one-underscore form. Other flat ``MEMOS_*`` names are left alone: they may be another
    program's (MemOS's own client reads ``MEMOS_API_KEY``)."""
    blocks = {name: field.annotation for name, field in Settings.model_fields.items()
              if isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel)}
    found: list[str] = []
    for name in env:
        if name.upper().startswith("MEMOS__"):
            found.append(f"{name} sets nothing: the prefix takes one underscore, "
                         f"MEMOS_{name.upper().removeprefix('MEMOS__')}")
            continue
        head, _, rest = name.upper().partition("__")
        if not head.startswith("MEMOS_"):
            continue
        if not rest:
            if meant := _nested_form(head.removeprefix("MEMOS_").lower(), blocks):
                found.append(f"{name} sets nothing: a nested setting takes two underscores, {meant}")
            continue
        block, field = head.removeprefix("MEMOS_").lower(), rest.lower()
        if block not in blocks:
            found.append(f"{name} sets nothing: there is no setting {block}.{field}{suggestion(block, list(blocks))}")
        elif field not in (known := known_names(blocks[block])):
            found.append(f"{name} sets nothing: there is no setting {block}.{field}{suggestion(field, known)}")
    return sorted(found)


def _nested_form(flat: str, blocks: dict[str, Any]) -> str | None:
    """``MEMOS_<BLOCK>__<FIELD>`` when ``flat`` (a name without its ``MEMOS_``, lower case) is a block and
    one of its fields joined by one underscore, and is no top-level setting; else None."""
    if flat in Settings.model_fields:
        return None
    for block, model in blocks.items():
        field = flat.removeprefix(f"{block}_")
        if field != flat and field in known_names(model):
            return f"MEMOS_{block.upper()}__{field.upper()}"
    return None


def _not_json(exc: SettingsError) -> ConfigError:
    """pydantic-settings' error for a list or mapping setting whose variable is not JSON names only the
    top-level field ("rest"): the error names the variables under it whose values are not JSON."""
    match = re.search(r'field "(\w+)"', str(exc))
    prefix = f"MEMOS_{match.group(1)}".upper() if match else None

    def suspect(name: str, value: str) -> bool:
        if prefix is None or not (name.upper() == prefix or name.upper().startswith(f"{prefix}__")):
            return False
        try:
            json.loads(value)
        except ValueError:
            return True
        return False

    names = sorted(name for name, value in os.environ.items() if suspect(name, value))
    where = " or ".join(names) if names else str(exc)
    return ConfigError(f"invalid setting {where}: a list or mapping is written in JSON, e.g. "
                       "MEMOS_REST__RATE_LIMITS='[\"100/minute\"]'", variables=names)


def masked(settings: Settings) -> dict[str, Any]:
    """The effective configuration with every secret masked: pydantic renders SecretStr as stars, and
    the password of any URL (``redis://:pw@host``, ``postgresql://user:pw@host/db``) becomes ``***``."""
    shown: dict[str, Any] = _mask_urls(settings.model_dump(mode="json"))
    return shown


def _mask_urls(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _mask_urls(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_mask_urls(item) for item in value]
    if isinstance(value, str) and "://" in value and "@" in value:
        parts = urlsplit(value)
        if parts.password:
            user = f"{parts.username}:" if parts.username else ":"
            return urlunsplit(parts._replace(netloc=f"{user}***@{parts.netloc.rsplit('@', 1)[1]}"))
    return value
