"""``memos-mcp setup CLIENT``: the MCP client entry that launches this installation, printed or merged
into the client's configuration file.

An entry runs the absolute path of this installation's ``memos-mcp`` with ``stdio`` and passes the data
directory, the user (and the configuration file, if one was given) as environment variables, so that it
works whatever the client's working directory and ``PATH``. ``--http URL`` gives the remote form
instead (streamable HTTP at ``URL/mcp`` with a placeholder API key), for printing only.

Writing merges: every other server and every other key of the file stay as they were, the file is
replaced atomically, the previous version is kept as ``FILE.bak``, and a second identical run changes
nothing.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from memos_mcp.errors import ConfigError, InvalidRequest
from memos_mcp.files import rename_target

#: What a printed remote entry carries instead of a real key.
KEY_PLACEHOLDER = "<YOUR_MEMOS_MCP_API_KEY>"


@dataclass(frozen=True)
class Client:
    """One MCP client: the key of its server table, whether entries name their transport, where its
    user-level configuration lives (relative to the folders ``config_file`` resolves)."""

    name: str
    servers_key: str
    typed: bool
    location: str

    def config_file(self, platform: str | None = None, environ: dict[str, str] | None = None) -> Path:
        """The client's user-level configuration file on ``platform`` (``sys.platform`` by default)."""
        platform = platform or sys.platform
        env = os.environ if environ is None else environ
        home = Path(env.get("HOME") or env.get("USERPROFILE") or Path.home())
        if self.location in ("home", "cursor"):
            return home / (".claude.json" if self.location == "home" else ".cursor/mcp.json")
        if platform == "darwin":
            base = home / "Library" / "Application Support"
        elif platform.startswith("win"):
            base = Path(env.get("APPDATA") or home / "AppData" / "Roaming")
        else:
            base = Path(env.get("XDG_CONFIG_HOME") or home / ".config")
        if self.location == "claude":
            return base / "Claude" / "claude_desktop_config.json"
        return base / "Code" / "User" / "mcp.json"


CLIENTS: dict[str, Client] = {
    "claude-desktop": Client("Claude Desktop", "mcpServers", typed=False, location="claude"),
    "claude-code": Client("Claude Code", "mcpServers", typed=True, location="home"),
    "cursor": Client("Cursor", "mcpServers", typed=False, location="cursor"),
    "vscode": Client("VS Code", "servers", typed=True, location="vscode"),
}


def command_path() -> Path:
    """The absolute path of this installation's ``memos-mcp`` console script (beside the interpreter,
    as pip installs it; not resolved through symlinks, which would leave a virtual environment)."""
    folder = Path(sys.executable).absolute().parent
    for name in ("memos-mcp", "memos-mcp.exe"):
        if (folder / name).is_file():
            return folder / name
    found = shutil.which("memos-mcp")
    if found is None:
        raise ConfigError(f"the memos-mcp command is not installed beside {sys.executable}: pip install memos-mcp")
    return Path(found).absolute()


def stdio_entry(client: str, data_dir: Path, user_id: str, config_file: Path | None = None) -> dict[str, Any]:
    """The server entry for ``client`` that runs ``memos-mcp stdio`` on ``data_dir`` as ``user_id``."""
    env = {"MEMOS_DATA_DIR": str(data_dir.expanduser().absolute()), "MEMOS_USER_ID": user_id}
    if config_file is not None:
        env["MEMOS_CONFIG"] = str(config_file.expanduser().absolute())
    entry: dict[str, Any] = {"command": str(command_path()), "args": ["stdio"], "env": env}
    return {"type": "stdio", **entry} if CLIENTS[client].typed else entry


def http_entry(client: str, url: str) -> dict[str, Any]:
    """The remote entry for ``client``: streamable HTTP at ``url``'s ``/mcp`` with a placeholder key.
    Claude Desktop reaches remote servers through the ``mcp-remote`` bridge (npm)."""
    if not url.startswith(("http://", "https://")):
        raise InvalidRequest(f"--http must be an http:// or https:// URL, got {url!r}", field="http")
    endpoint = url.rstrip("/")
    endpoint = endpoint if endpoint.endswith("/mcp") else endpoint + "/mcp"
    authorization = f"Bearer {KEY_PLACEHOLDER}"
    if client == "claude-desktop":
        return {"command": "npx", "args": ["-y", "mcp-remote", endpoint, "--header", f"Authorization:{authorization}"]}
    entry: dict[str, Any] = {"url": endpoint, "headers": {"Authorization": authorization}}
    return {"type": "http", **entry} if CLIENTS[client].typed else entry


def snippet(client: str, name: str, entry: dict[str, Any]) -> dict[str, Any]:
    """The smallest configuration document holding ``entry`` as server ``name``."""
    return {CLIENTS[client].servers_key: {name: entry}}


def _read(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {}
    text = path.read_text(encoding="utf-8")
    if not text.strip():
        return {}
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path} is not plain JSON ({exc}); it was left unchanged. Add the entry by hand "
                          "(memos-mcp setup ... --print shows it) or give another file with --file.",
                          file=str(path)) from exc
    if not isinstance(document, dict):
        raise ConfigError(f"{path} does not hold a JSON object; it was left unchanged", file=str(path))
    return document


def write_entry(client: str, path: Path, name: str, entry: dict[str, Any]) -> bool:
    """Merge ``entry`` as server ``name`` into the JSON file ``path`` (created with its folders if missing).

    Returns False when the file already holds exactly this entry (nothing is written), True after a
    write. The previous file, if any, is kept as ``path`` + ``.bak``. Raises ConfigError, leaving the
    file as it was, when it is not a JSON object or its server table is not an object."""
    key = CLIENTS[client].servers_key
    document = _read(path)
    servers = document.setdefault(key, {})
    if not isinstance(servers, dict):
        raise ConfigError(f"'{key}' in {path} is not a JSON object; the file was left unchanged", file=str(path))
    if servers.get(name) == entry:
        return False
    servers[name] = entry
    target = rename_target(path)
    if target is None:
        raise ConfigError(f"{path} is not a regular file; name the client's JSON configuration file with --file",
                          file=str(path))
    path = target  # a linked file stays linked: the file the link names is written, its backup beside it
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists():
        shutil.copy2(path, path.with_name(path.name + ".bak"))
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            json.dump(document, out, indent=2, ensure_ascii=False)
            out.write("\n")
        if path.exists():
            shutil.copymode(path, temporary)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return True
