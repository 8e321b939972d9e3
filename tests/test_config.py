"""Settings from real YAML files, a real environment and a real ``.env`` in a temporary working
directory: defaults, precedence, interpolation, secrets, seed-compatible aliases, shipped configs."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import BaseModel, SecretStr

from memos_mcp.config import ALIASES, SearchSettings, Settings, load_settings, masked
from memos_mcp.errors import ConfigError, InvalidRequest

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
# Variables the shipped configs read besides the aliases and MEMOS_*.
OTHER_VARIABLES = ("OLLAMA_BASE_URL", "OLLAMA_API_KEY", "LLAMACPP_BASE_URL", "LLAMACPP_MODEL")


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No inherited MEMOS_* or alias variable, HOME and the working directory inside tmp_path."""
    for name in list(os.environ):
        if name.startswith("MEMOS_") or name in ALIASES or name in OTHER_VARIABLES:
            monkeypatch.delenv(name)
    # load_settings(path) writes MEMOS_CONFIG into os.environ: record it so that it is undone.
    monkeypatch.setenv("MEMOS_CONFIG", "")
    monkeypatch.delenv("MEMOS_CONFIG")
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    return home


def write_yaml(tmp_path: Path, text: str, name: str = "config.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def value_at(settings: Settings, dotted: str) -> Any:
    value: Any = settings
    for part in dotted.split("."):
        value = getattr(value, part)
    return value.get_secret_value() if isinstance(value, SecretStr) else value


# --- defaults and the YAML file ------------------------------------------------------------------


def test_defaults_are_the_embedded_edge_store_and_local_embedder_under_home(clean_environment: Path) -> None:
    settings = load_settings()
    assert settings.vector.backend == "edge"
    assert settings.embedder.backend == "local"
    assert settings.graph.backend == "sqlite"
    assert settings.data_dir == clean_environment / ".memos-mcp"
    assert settings.default_user_id == "default"
    assert not settings.llm.configured
    assert settings.search.top_k == 10
    assert settings.effective_import_roots == [(clean_environment / ".memos-mcp" / "imports").resolve()]


def test_values_from_a_yaml_file_apply(tmp_path: Path) -> None:
    path = write_yaml(tmp_path, f"""
data_dir: {tmp_path / "data"}
default_user_id: alice
max_memory_size: 5000
read_only: true
import_roots: [{tmp_path / "docs"}]
vector: {{backend: qdrant, url: "http://vectors:6333", collection: mine}}
embedder: {{backend: openai, model: text-embedding-3-small, dimension: 512}}
llm: {{base_url: "http://llm/v1", model: m1, temperature: 0.1}}
search: {{top_k: 3, dense_weight: 0.7, reranker: cross}}
graph: {{backend: neo4j, neo4j_uri: "bolt://graph:7687", neo4j_user: admin}}
""")
    settings = load_settings(path)
    assert settings.data_dir == tmp_path / "data"
    assert settings.default_user_id == "alice"
    assert settings.max_memory_size == 5000
    assert settings.read_only is True
    assert settings.import_roots == [tmp_path / "docs"]
    assert (settings.vector.backend, settings.vector.url, settings.vector.collection) == (
        "qdrant", "http://vectors:6333", "mine")
    assert (settings.embedder.backend, settings.embedder.model, settings.embedder.dimension) == (
        "openai", "text-embedding-3-small", 512)
    assert (settings.llm.base_url, settings.llm.model, settings.llm.temperature) == ("http://llm/v1", "m1", 0.1)
    assert settings.llm.configured
    assert (settings.search.top_k, settings.search.dense_weight, settings.search.reranker) == (3, 0.7, "cross")
    assert settings.search.candidates == SearchSettings().candidates  # a partial section keeps the other defaults
    assert (settings.graph.backend, settings.graph.neo4j_uri, settings.graph.neo4j_user) == (
        "neo4j", "bolt://graph:7687", "admin")


def test_the_memos_config_variable_names_the_yaml_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("MEMOS_CONFIG", str(write_yaml(tmp_path, "default_user_id: from-variable\n")))
    assert load_settings().default_user_id == "from-variable"


def test_an_empty_yaml_file_gives_the_defaults(tmp_path: Path) -> None:
    settings = load_settings(write_yaml(tmp_path, "# nothing but a comment\n"))
    assert settings.vector.backend == "edge"
    assert settings.default_user_id == "default"


# --- precedence ------------------------------------------------------------------------------------

# (field, YAML text, alias variable, MEMOS_* variable, init kwargs, value at each layer)
LAYERS = [
    ("default_user_id", "default_user_id: from-yaml\n", "DEFAULT_USER_ID", "MEMOS_DEFAULT_USER_ID",
     {"default_user_id": "from-init"}, ("from-yaml", "from-alias", "from-env", "from-init")),
    ("llm.model", "llm: {model: from-yaml}\n", "MOS_CHAT_MODEL", "MEMOS_LLM__MODEL",
     {"llm": {"model": "from-init"}}, ("from-yaml", "from-alias", "from-env", "from-init")),
    ("search.top_k", "search: {top_k: 1}\n", "SEARCH_LIMIT", "MEMOS_SEARCH__TOP_K",
     {"search": {"top_k": 4}}, (1, 2, 3, 4)),
    ("max_memory_size", "max_memory_size: 1000\n", "MAX_MEMORY_SIZE", "MEMOS_MAX_MEMORY_SIZE",
     {"max_memory_size": 4000}, (1000, 2000, 3000, 4000)),
]


@pytest.mark.parametrize(("field", "text", "alias", "env", "init", "expected"), LAYERS,
                         ids=[row[0] for row in LAYERS])
def test_yaml_loses_to_an_alias_which_loses_to_memos_env_which_loses_to_init_kwargs(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, field: str, text: str, alias: str, env: str,
    init: dict[str, Any], expected: tuple[Any, Any, Any, Any],
) -> None:
    path = write_yaml(tmp_path, text)
    assert value_at(load_settings(path), field) == expected[0]
    monkeypatch.setenv(alias, str(expected[1]))
    assert value_at(load_settings(path), field) == expected[1]
    monkeypatch.setenv(env, str(expected[2]))
    assert value_at(load_settings(path), field) == expected[2]
    assert value_at(load_settings(path, **init), field) == expected[3]


def test_data_dir_from_yaml_loses_to_memos_data_dir_which_loses_to_the_data_dir_argument(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
) -> None:
    path = write_yaml(tmp_path, f"data_dir: {tmp_path / 'yaml'}\n")
    assert load_settings(path).data_dir == tmp_path / "yaml"
    monkeypatch.setenv("MEMOS_DATA_DIR", str(tmp_path / "env"))
    assert load_settings(path).data_dir == tmp_path / "env"
    assert load_settings(path, data_dir=tmp_path / "flag").data_dir == tmp_path / "flag"
    # the CLI passes None for flags that were not given: those do not override anything
    assert load_settings(path, data_dir=None).data_dir == tmp_path / "env"


def test_nested_environment_variables_override_one_field_and_keep_the_rest_of_the_yaml_section(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
) -> None:
    path = write_yaml(tmp_path, "llm: {base_url: 'http://llm/v1', model: m1, max_tokens: 99}\n")
    monkeypatch.setenv("MEMOS_LLM__MODEL", "m2")
    settings = load_settings(path)
    assert (settings.llm.base_url, settings.llm.model, settings.llm.max_tokens) == ("http://llm/v1", "m2", 99)


def test_a_data_dir_with_a_tilde_is_expanded_to_the_home_directory(
    monkeypatch: pytest.MonkeyPatch, clean_environment: Path,
) -> None:
    monkeypatch.setenv("MEMOS_DATA_DIR", "~/somewhere")
    assert load_settings().data_dir == clean_environment / "somewhere"


# --- interpolation -------------------------------------------------------------------------------


def test_variables_in_yaml_strings_are_replaced_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
) -> None:
    monkeypatch.setenv("CFGTEST_HOST", "vectors.internal")
    monkeypatch.setenv("CFGTEST_ROOT", str(tmp_path))
    monkeypatch.setenv("CFGTEST_USER", "carol")
    path = write_yaml(tmp_path, """
default_user_id: ${CFGTEST_USER}
vector: {backend: qdrant, url: "http://${CFGTEST_HOST}:6333"}
import_roots: ["${CFGTEST_ROOT}/docs", "${CFGTEST_ROOT}/notes"]
""")
    settings = load_settings(path)
    assert settings.default_user_id == "carol"
    assert settings.vector.url == "http://vectors.internal:6333"
    assert settings.import_roots == [tmp_path / "docs", tmp_path / "notes"]


def test_a_default_in_a_variable_reference_applies_only_when_the_variable_is_unset(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
) -> None:
    path = write_yaml(tmp_path, "default_user_id: ${CFGTEST_USER:-fallback}\nllm: {model: '${CFGTEST_MODEL:-}'}\n")
    settings = load_settings(path)
    assert settings.default_user_id == "fallback"
    assert settings.llm.model == ""
    monkeypatch.setenv("CFGTEST_USER", "set-user")
    assert load_settings(path).default_user_id == "set-user"


def test_an_unset_variable_without_default_raises_config_error_naming_the_variable(tmp_path: Path) -> None:
    path = write_yaml(tmp_path, "llm:\n  model: ${CFGTEST_NOT_SET_ANYWHERE}\n")
    with pytest.raises(ConfigError, match="CFGTEST_NOT_SET_ANYWHERE") as caught:
        load_settings(path)
    assert caught.value.details["variable"] == "CFGTEST_NOT_SET_ANYWHERE"
    assert "llm.model" in caught.value.message


# --- secrets ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "field", "secret"), [
    ("llm: {api_key: sk-123}\n", "llm.api_key", "sk-123"),
    ("embedder: {api_key: sk-456}\n", "embedder.api_key", "sk-456"),
    ("vector: {api_key: qdrant-secret}\n", "vector.api_key", "qdrant-secret"),
    ("llm: {api_key: 'sk-${CFGTEST_SUFFIX:-x}'}\n", "llm.api_key", "sk-"),
])
def test_a_secret_written_literally_in_yaml_raises_config_error_without_repeating_it(
    tmp_path: Path, text: str, field: str, secret: str,
) -> None:
    with pytest.raises(ConfigError, match="secret literally") as caught:
        load_settings(write_yaml(tmp_path, text))
    assert caught.value.details["field"] == field
    assert secret not in str(caught.value)


def test_a_neo4j_password_written_literally_in_yaml_raises_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="secret literally"):
        load_settings(write_yaml(tmp_path, "graph: {neo4j_password: hunter2}\n"))


def test_a_secret_named_through_a_variable_is_read_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
) -> None:
    monkeypatch.setenv("CFGTEST_KEY", "sk-from-env")
    settings = load_settings(write_yaml(tmp_path, "llm: {api_key: '${CFGTEST_KEY}', model: m}\n"))
    assert settings.llm.api_key is not None
    assert settings.llm.api_key.get_secret_value() == "sk-from-env"


def test_masked_settings_never_contain_a_secret_value(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    secrets = {"OPENAI_API_KEY": "sk-llm-secret", "MOS_EMBEDDER_API_KEY": "sk-embedder-secret",
               "QDRANT_API_KEY": "qdrant-secret", "NEO4J_PASSWORD": "neo4j-secret"}
    for name, value in secrets.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("MEMOS_VECTOR__URL", "http://vectors:6333")
    settings = load_settings()
    shown = masked(settings)
    rendered = json.dumps(shown) + yaml.safe_dump(shown)
    for value in secrets.values():
        assert value not in rendered
    assert shown["llm"]["api_key"] == shown["embedder"]["api_key"] == "**********"
    assert shown["vector"]["api_key"] == shown["graph"]["neo4j_password"] == "**********"
    assert shown["vector"]["url"] == "http://vectors:6333"  # what is not secret stays readable
    assert settings.llm.api_key is not None
    assert settings.llm.api_key.get_secret_value() == "sk-llm-secret"  # while the settings keep it


# --- seed-compatible aliases -------------------------------------------------------------------------

# (variables, expected values by dotted path)
ALIAS_CASES: list[tuple[dict[str, str], dict[str, Any]]] = [
    ({"OPENAI_API_KEY": "sk-a"}, {"llm.api_key": "sk-a", "llm.model": "gpt-4o-mini", "llm.configured": True}),
    ({"OPENAI_API_BASE": "http://llm:8000/v1"}, {"llm.base_url": "http://llm:8000/v1"}),
    ({"MOS_CHAT_MODEL": "qwen"}, {"llm.model": "qwen"}),
    ({"MOS_MAX_TOKENS": "77"}, {"llm.max_tokens": 77}),
    ({"MOS_CHAT_TEMPERATURE": "0.25"}, {"llm.temperature": 0.25}),
    ({"MOS_MAX_TURNS_WINDOW": "7"}, {"llm.max_turns_window": 7}),
    ({"MOS_EMBEDDER_BACKEND": "universal_api"}, {"embedder.backend": "openai"}),
    ({"MOS_EMBEDDER_BACKEND": "sentence_transformer"}, {"embedder.backend": "local"}),
    ({"MOS_EMBEDDER_BACKEND": "ONNX"}, {"embedder.backend": "local"}),
    ({"MOS_EMBEDDER_MODEL": "text-embedding-3-small"}, {"embedder.model": "text-embedding-3-small"}),
    ({"MOS_EMBEDDER_API_BASE": "http://emb/v1"}, {"embedder.base_url": "http://emb/v1"}),
    ({"MOS_EMBEDDER_API_KEY": "sk-e"}, {"embedder.api_key": "sk-e"}),
    ({"EMBEDDING_DIMENSION": "256"}, {"embedder.dimension": 256}),
    ({"MOS_TOP_K": "50"}, {"search.candidates": 50}),
    ({"SEARCH_LIMIT": "5"}, {"search.top_k": 5}),
    ({"MOS_RERANKER_BACKEND": "cross_encoder"}, {"search.reranker": "cross_encoder"}),
    ({"QDRANT_URL": "https://cluster:6333"}, {"vector.url": "https://cluster:6333", "vector.backend": "qdrant"}),
    ({"DATABASE_URL": "postgresql://memos:pw@db:5432/memos"}, {"catalog.url": "postgresql://memos:pw@db:5432/memos"}),
    ({"QDRANT_HOST": "qd"}, {"vector.url": "http://qd:6333", "vector.backend": "qdrant"}),
    ({"QDRANT_HOST": "https://qd.cloud:6333"}, {"vector.url": "https://qd.cloud:6333", "vector.backend": "qdrant"}),
    ({"QDRANT_API_KEY": "qk"}, {"vector.api_key": "qk", "vector.backend": "edge"}),
    ({"NEO4J_URI": "bolt://graph:7687"}, {"graph.neo4j_uri": "bolt://graph:7687", "graph.backend": "neo4j"}),
    ({"NEO4J_USER": "admin"}, {"graph.neo4j_user": "admin", "graph.backend": "sqlite"}),
    ({"NEO4J_PASSWORD": "pw"}, {"graph.neo4j_password": "pw"}),
    ({"NEO4J_DATABASE": "memories"}, {"graph.neo4j_database": "memories"}),
    ({"DEFAULT_USER_ID": "dora"}, {"default_user_id": "dora"}),
    ({"MEMOS_USER_ID": "erin"}, {"default_user_id": "erin"}),
    ({"MAX_MEMORY_SIZE": "5000"}, {"max_memory_size": 5000}),
    ({"REDIS_URL": "redis://cache:6379/2"}, {"rest.rate_limit_storage": "redis://cache:6379/2"}),
    ({"API_KEY": "ak"}, {"server.admin_key": "ak"}),
    ({"MEMIO_API_KEY": "mk"}, {"server.admin_key": "mk"}),
    ({"MEMOS_ADMIN_KEY": "sk", "API_KEY": "ak", "MEMIO_API_KEY": "mk"}, {"server.admin_key": "sk"}),
    ({"OPENAI_API_KEY": "sk-a", "MOS_CHAT_MODEL": "gpt-4.1"}, {"llm.model": "gpt-4.1"}),
    ({"OPENAI_API_KEY": ""}, {"llm.api_key": None, "llm.model": None, "llm.configured": False}),
]


def _case_id(case: tuple[dict[str, str], dict[str, Any]]) -> str:
    return "+".join(f"{k}={v}" for k, v in case[0].items())


@pytest.mark.parametrize(("variables", "expected"), ALIAS_CASES, ids=[_case_id(c) for c in ALIAS_CASES])
def test_each_seed_alias_variable_maps_to_its_setting(
    monkeypatch: pytest.MonkeyPatch, variables: dict[str, str], expected: dict[str, Any],
) -> None:
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    settings = load_settings()
    assert {path: value_at(settings, path) for path in expected} == expected


def test_every_alias_in_the_table_is_covered_by_a_case() -> None:
    covered = {name for variables, _ in ALIAS_CASES for name in variables}
    assert covered == set(ALIASES)


@pytest.mark.parametrize("name", ["MAX_MEMORY_SIZE", "MOS_MAX_TOKENS", "MOS_CHAT_TEMPERATURE", "EMBEDDING_DIMENSION"])
def test_a_non_numeric_alias_value_raises_config_error_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, name: str,
) -> None:
    monkeypatch.setenv(name, "lots")
    with pytest.raises(ConfigError, match=name):
        load_settings()


def test_an_alias_value_out_of_range_raises_config_error_naming_the_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAX_MEMORY_SIZE", "0")
    with pytest.raises(ConfigError, match="max_memory_size"):
        load_settings()


def test_an_invalid_memos_variable_raises_config_error_naming_the_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MEMOS_SEARCH__TOP_K", "many")
    with pytest.raises(ConfigError, match=r"search\.top_k"):
        load_settings()


def test_openai_api_key_does_not_replace_the_model_named_in_yaml(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-a")
    assert load_settings(write_yaml(tmp_path, "llm: {model: gpt-4.1}\n")).llm.model == "gpt-4.1"


# --- .env -------------------------------------------------------------------------------------------


def test_a_dotenv_file_in_the_working_directory_is_read_for_memos_and_alias_names() -> None:
    Path(".env").write_text("MEMOS_DEFAULT_USER_ID=from-dotenv\nMOS_CHAT_MODEL=dotenv-model\n"
                            "OPENAI_API_KEY=sk-dotenv\nMEMOS_SEARCH__TOP_K=4\n", encoding="utf-8")
    settings = load_settings()
    assert settings.default_user_id == "from-dotenv"
    assert settings.llm.model == "dotenv-model"
    assert settings.llm.api_key is not None
    assert settings.llm.api_key.get_secret_value() == "sk-dotenv"
    assert settings.search.top_k == 4


def test_the_environment_wins_over_the_dotenv_file(monkeypatch: pytest.MonkeyPatch) -> None:
    Path(".env").write_text("MEMOS_DEFAULT_USER_ID=from-dotenv\nMOS_CHAT_MODEL=dotenv-model\n", encoding="utf-8")
    monkeypatch.setenv("MEMOS_DEFAULT_USER_ID", "from-env")
    monkeypatch.setenv("MOS_CHAT_MODEL", "env-model")
    settings = load_settings()
    assert (settings.default_user_id, settings.llm.model) == ("from-env", "env-model")


def test_a_dotenv_file_elsewhere_is_not_read(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("MEMOS_DEFAULT_USER_ID=parent\nDEFAULT_USER_ID=parent\n", encoding="utf-8")
    assert load_settings().default_user_id == "default"


def test_a_yaml_variable_reference_can_be_satisfied_by_the_dotenv_file(tmp_path: Path) -> None:
    Path(".env").write_text("CFGTEST_DOTENV_KEY=sk-dotenv\n", encoding="utf-8")
    settings = load_settings(write_yaml(tmp_path, "llm: {api_key: '${CFGTEST_DOTENV_KEY}'}\n"))
    assert settings.llm.api_key is not None


# --- broken files ----------------------------------------------------------------------------------


def test_invalid_yaml_raises_config_error_naming_the_file(tmp_path: Path) -> None:
    path = write_yaml(tmp_path, "llm: {model: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML") as caught:
        load_settings(path)
    assert caught.value.details["path"] == str(path)


@pytest.mark.parametrize("text", ["- a\n- b\n", "just a string\n", "42\n"])
def test_yaml_that_is_not_a_mapping_raises_config_error(tmp_path: Path, text: str) -> None:
    with pytest.raises(ConfigError, match="must hold a mapping"):
        load_settings(write_yaml(tmp_path, text))


def test_a_missing_config_file_raises_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_settings(tmp_path / "absent.yaml")


def test_a_yaml_value_of_the_wrong_type_raises_config_error_naming_the_setting(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"vector\.backend"):
        load_settings(write_yaml(tmp_path, "vector: {backend: milvus}\n"))


@pytest.mark.parametrize("value, problem", [
    ("true", "not true or false"),  # would read as 1 second
    ("1.0e-9", "greater than or equal to 0.000001"),  # below a microsecond: Python would keep 0
    (".nan", "finite number"),
    ("0", "greater than or equal to 0.000001"),
])
def test_a_switch_interval_python_cannot_keep_is_refused_naming_the_setting(tmp_path: Path, value: str,
                                                                           problem: str) -> None:
    with pytest.raises(ConfigError, match=rf"server\.switch_interval.*{problem}"):
        load_settings(write_yaml(tmp_path, f"server: {{switch_interval: {value}}}\n"))
    assert load_settings(write_yaml(tmp_path, "server: {switch_interval: 0.000001}\n")).server.switch_interval == 1e-6


@pytest.mark.parametrize("text, where, hint", [
    ("nonsense_key: 1\n", "unknown setting 'nonsense_key'", "the known names are data_dir"),
    ("serch: {top_k: 3}\n", "unknown setting 'serch'", "did you mean 'search'?"),
    ("search: {topk: 3}\n", "unknown field 'search.topk'", "did you mean 'top_k'?"),
    ("llm: {modle: gpt-4.1}\n", "unknown field 'llm.modle'", "did you mean 'model'?"),
])
def test_a_yaml_key_that_sets_nothing_raises_config_error_naming_it_and_the_closest_setting(
        tmp_path: Path, text: str, where: str, hint: str) -> None:
    path = write_yaml(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_settings(path)
    assert str(path) in caught.value.message and where in caught.value.message and hint in caught.value.message


def test_a_nested_memos_variable_that_sets_nothing_raises_config_error_naming_it(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MEMOS_SEARCH__TOPK", "3")
    with pytest.raises(ConfigError, match=r"MEMOS_SEARCH__TOPK sets nothing: there is no setting search\.topk; "
                                          r"did you mean 'top_k'\?"):
        load_settings()
    monkeypatch.delenv("MEMOS_SEARCH__TOPK")
    monkeypatch.setenv("memos_serch__top_k", "3")  # read in any case, so judged in any case
    with pytest.raises(ConfigError, match=r"memos_serch__top_k sets nothing.*did you mean 'search'\?"):
        load_settings()


def test_a_nested_memos_name_in_the_dotenv_file_that_sets_nothing_raises_config_error() -> None:
    Path(".env").write_text("MEMOS_LLM__MODLE=gpt-4.1\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"MEMOS_LLM__MODLE.*did you mean 'model'\?"):
        load_settings()


def test_a_flat_memos_variable_of_another_program_is_left_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MEMOS_BASE_URL", "https://memos.example.com")  # MemOS's own client reads these
    monkeypatch.setenv("MEMOS_API_KEY", "mpg-key")
    monkeypatch.setenv("MEMOS_SEARCH__TOP_K", "4")
    assert load_settings().search.top_k == 4


@pytest.mark.parametrize("name, meant", [
    ("MEMOS_EMBEDDER_MODEL", "MEMOS_EMBEDDER__MODEL"),
    ("MEMOS_SEARCH_TOP_K", "MEMOS_SEARCH__TOP_K"),
    ("memos_graph_enabled", "MEMOS_GRAPH__ENABLED"),  # read in any case, so judged in any case
    ("MEMOS_SERVER_ADMIN_KEY", "MEMOS_SERVER__ADMIN_KEY"),
    ("MEMOS__EMBEDDER__MODEL", "MEMOS_EMBEDDER__MODEL"),  # the prefix takes one underscore
    ("MEMOS__DATA_DIR", "MEMOS_DATA_DIR"),
])
def test_a_flat_memos_variable_naming_a_nested_setting_raises_config_error_naming_the_nested_form(
        monkeypatch: pytest.MonkeyPatch, name: str, meant: str) -> None:
    monkeypatch.setenv(name, "0")
    with pytest.raises(ConfigError, match=rf"{name} sets nothing: .* underscores?, {meant}"):
        load_settings()


def test_a_flat_top_level_memos_variable_still_sets_its_setting(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MEMOS_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("MEMOS_LOG_LEVEL", "debug")
    settings = load_settings()
    assert settings.data_dir == tmp_path and settings.log_level == "DEBUG"


def test_the_log_level_is_a_level_name_in_any_case(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert load_settings(write_yaml(tmp_path, "log_level: debug\n")).log_level == "DEBUG"
    assert load_settings(log_level="warning").log_level == "WARNING"
    with pytest.raises(InvalidRequest, match=r"--log-level 'SHOUT': Input should be 'DEBUG'"):
        load_settings(log_level="SHOUT")
    monkeypatch.setenv("MEMOS_LOG_LEVEL", "loud")
    with pytest.raises(ConfigError, match="invalid setting log_level"):
        load_settings()


# --- the shipped configs/ --------------------------------------------------------------------------

# file -> (variables it needs, expected values by dotted path)
SHIPPED: dict[str, tuple[dict[str, str], dict[str, Any]]] = {
    "default.yaml": ({}, {
        "vector.backend": "edge", "embedder.backend": "local", "graph.backend": "sqlite", "llm.configured": False,
        "search.top_k": 10, "search.candidates": SearchSettings().candidates,
        "search.dense_weight": SearchSettings().dense_weight, "search.reranker": "none",
    }),
    "openai.yaml": ({"OPENAI_API_KEY": "sk-openai-test"}, {
        "llm.base_url": "https://api.openai.com/v1", "llm.model": "gpt-4o-mini", "llm.api_key": "sk-openai-test",
        "llm.configured": True, "embedder.backend": "openai", "embedder.model": "text-embedding-3-small",
        "embedder.base_url": "https://api.openai.com/v1", "embedder.api_key": "sk-openai-test",
        "vector.backend": "edge",
    }),
    "ollama.yaml": ({}, {
        "llm.base_url": "http://localhost:11434/v1", "llm.model": "qwen2.5:7b-instruct", "llm.configured": True,
        "embedder.backend": "openai", "embedder.model": "nomic-embed-text",
        "embedder.base_url": "http://localhost:11434/v1", "vector.backend": "edge",
    }),
    "llamacpp.yaml": ({}, {
        "llm.base_url": "http://127.0.0.1:8080/v1", "llm.model": "local", "llm.configured": True,
        "llm.json_mode": "json_object_schema", "llm.fold_system": True, "add.concurrency": 1,
        "embedder.backend": "local", "vector.backend": "edge",
    }),
    "server.yaml": ({"QDRANT_URL": "http://qdrant:6333", "NEO4J_URI": "bolt://neo4j:7687", "NEO4J_PASSWORD": "pw"}, {
        "vector.backend": "qdrant", "vector.url": "http://qdrant:6333", "graph.backend": "neo4j",
        "graph.neo4j_uri": "bolt://neo4j:7687", "graph.neo4j_user": "neo4j", "graph.neo4j_password": "pw",
        "embedder.backend": "local",
    }),
}


def test_every_shipped_config_is_covered() -> None:
    assert sorted(p.name for p in CONFIGS.glob("*.yaml")) == sorted(SHIPPED)


def test_the_shipped_default_config_is_exactly_the_built_in_defaults(clean_environment: Path) -> None:
    assert load_settings(CONFIGS / "default.yaml").model_dump() == Settings().model_dump()


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_each_shipped_config_loads_with_the_variables_it_needs(
    monkeypatch: pytest.MonkeyPatch, clean_environment: Path, name: str,
) -> None:
    variables, expected = SHIPPED[name]
    for variable, value in variables.items():
        monkeypatch.setenv(variable, value)
    settings = load_settings(CONFIGS / name)
    assert {path: value_at(settings, path) for path in expected} == expected
    assert settings.data_dir == clean_environment / ".memos-mcp"
    monkeypatch.setenv("MEMOS_DATA_DIR", "/srv/memos")
    assert load_settings(CONFIGS / name).data_dir == Path("/srv/memos")


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_each_shipped_config_starts_with_a_comment_naming_the_variables_it_needs(name: str) -> None:
    text = (CONFIGS / name).read_text(encoding="utf-8")
    assert text.startswith("# ")
    header = "".join(line for line in text.splitlines(keepends=True) if line.startswith("#"))
    for variable in SHIPPED[name][0]:
        assert variable in header


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_each_shipped_config_uses_only_keys_that_exist_in_settings(name: str) -> None:
    def check(model: type[BaseModel], tree: dict[str, Any], where: str) -> None:
        for key, value in tree.items():
            assert key in model.model_fields, f"{name}: {where}{key} is not a setting"
            annotation = model.model_fields[key].annotation
            if isinstance(value, dict):
                assert isinstance(annotation, type) and issubclass(annotation, BaseModel), f"{where}{key}"
                check(annotation, value, f"{where}{key}.")

    check(Settings, yaml.safe_load((CONFIGS / name).read_text(encoding="utf-8")), "")


@pytest.mark.parametrize(("name", "variable"), [
    (name, variable) for name, (variables, _) in sorted(SHIPPED.items()) for variable in variables])
def test_a_shipped_config_without_a_required_variable_raises_config_error_naming_it(
    monkeypatch: pytest.MonkeyPatch, name: str, variable: str,
) -> None:
    for other, value in SHIPPED[name][0].items():
        if other != variable:
            monkeypatch.setenv(other, value)
    with pytest.raises(ConfigError, match=variable):
        load_settings(CONFIGS / name)
