"""The official MemOS Python client (PyPI MemoryOS, ``memos.api.client.MemOSClient``), unchanged, pointed
at this server's cloud dialect. It lives in its own virtual environment (scripts/setup.sh test makes
``.venv-memos-client``) because its package pulls in the whole MemOS stack; it runs in a subprocess."""

from __future__ import annotations

import json
import subprocess
import textwrap
from pathlib import Path
from typing import Any

from memos_mcp.core.service import ROOT_USER
from tests.openai_server import OpenAIServer
from tests.rest.conftest import RestServe, llm_of

CLIENT_PYTHON = Path(__file__).resolve().parents[2] / ".venv-memos-client" / "bin" / "python"

SCRIPT = textwrap.dedent("""
    import json, sys, time
    from memos.api.client import MemOSClient

    key, base_url = sys.argv[1], sys.argv[2]
    client = MemOSClient(api_key=key, base_url=base_url)
    out = {}
    added = client.add_message(
        messages=[{"role": "user", "content": "I moved to Lisbon in March and I love pastel de nata."}],
        user_id="alice", conversation_id="trip")
    out["add"] = added.model_dump()
    for _ in range(200):  # the model extracts in the background: wait as a client would (bounded)
        out["status"] = client.get_task_status(added.data.task_id).model_dump()
        if out["status"]["data"]["status"] in ("completed", "failed"):
            break
        time.sleep(0.05)
    out["search"] = client.search_memory("Where do I live?", user_id="alice", conversation_id="trip").model_dump()
    out["get"] = client.get_memory(user_id="alice").model_dump()
    first = out["search"]["data"]["memory_detail_list"][0]["id"]
    out["by_id"] = client.get_memory_by_id(first)
    out["messages"] = client.get_message(user_id="alice", conversation_id="trip").model_dump()
    out["chat"] = client.chat(user_id="alice", conversation_id="trip", query="Where do I live?").model_dump()
    out["delete"] = client.delete_memory(memory_ids=[first]).model_dump()
    out["after"] = client.get_memory(user_id="alice").model_dump()
    sys.stdout = sys.__stdout__
    print("RESULT " + json.dumps(out, default=str))
""")


def run_client(key: str, base_url: str) -> dict[str, Any]:
    assert CLIENT_PYTHON.exists(), "the MemOS client is not installed: run scripts/setup.sh test"
    done = subprocess.run([str(CLIENT_PYTHON), "-c", SCRIPT, key, base_url], capture_output=True, text=True,
                          timeout=180, cwd=CLIENT_PYTHON.parents[2])
    assert done.returncode == 0, done.stderr[-3000:]
    line = next(line for line in done.stdout.splitlines() if line.startswith("RESULT "))
    result: dict[str, Any] = json.loads(line.removeprefix("RESULT "))
    return result


def test_the_official_memos_client_works_unchanged(rest_serve: RestServe, model: OpenAIServer) -> None:
    app = rest_serve(admin_key=True, llm=llm_of(model))
    key = app.keys.create(ROOT_USER, "alice").key
    model.replies.append("You live in Lisbon.")
    model.extraction_replies.append(json.dumps({  # what the model extracts in the background
        "facts": [{"key": "Home city", "value": "Alice moved to Lisbon in March 2026.", "sources": [0]}],
        "preferences": [{"preference": "Alice loves pastel de nata.", "type": "explicit", "sources": [0]}]}))

    result = run_client(key, f"{app.url}/api/openmem/v1")

    assert result["add"]["data"]["success"] is True
    assert result["status"]["data"]["task_id"] == result["add"]["data"]["task_id"]
    assert result["status"]["data"]["status"] == "completed"
    facts = result["search"]["data"]["memory_detail_list"]
    assert "Lisbon" in facts[0]["memory_value"]
    assert any("pastel de nata" in p["preference"] for p in result["search"]["data"]["preference_detail_list"])
    assert result["get"]["data"]["total"] >= 1
    assert result["by_id"]["data"]["id"] == facts[0]["id"]
    assert result["messages"]["data"]["message_detail_list"][0]["content"].startswith("I moved")
    assert result["chat"]["data"]["response"] == "You live in Lisbon."
    assert result["delete"]["data"]["success"] is True
    assert all(m["id"] != facts[0]["id"] for m in result["after"]["data"]["memory_detail_list"])
