"""``/v1/history``: a session is a core conversation."""

from __future__ import annotations

import heapq

from memos_mcp.core.models import SearchHit
from memos_mcp.errors import NotFound
from memos_mcp.rest.base import Call
from memos_mcp.rest.memio.dialect import (
    DIALECT,
)
from memos_mcp.rest.memio.models import (
    Deleted,
    MessageOut,
    MessagesAdd,
    MessagesAdded,
    MessagesQuery,
    SessionHit,
    SessionMessages,
    SessionResults,
    Sessions,
    SessionSearch,
    UserQuery,
)

# --- history -------------------------------------------------------------------------------------

@DIALECT.op("POST", "/history/sessions/{sid}/messages", "Add messages", body=MessagesAdd,
            response=MessagesAdded, status=201)
async def add_messages(call: Call[MessagesAdd]) -> MessagesAdded:
    sid = call.path["sid"]
    messages = [{"role": m.role, "content": m.content, "name": m.name, "timestamp": m.timestamp}
                for m in call.body.messages]
    result = await call.run(lambda: call.service.add_memory(call.actor, user_id=call.body.user_id,
                                                            messages=messages, conversation_id=sid,
                                                            async_mode=False))
    return MessagesAdded(session_id=sid, message_ids=result.message_ids, memory_ids=result.added,
                         deduplicated_ids=result.deduplicated)


@DIALECT.op("GET", "/history/sessions/{sid}/messages", "Get messages", query=MessagesQuery,
            response=SessionMessages)
async def get_messages(call: Call[MessagesQuery]) -> SessionMessages:
    sid = call.path["sid"]
    found = await call.run(lambda: call.service.get_messages(call.actor, sid, user_id=call.body.user_id,
                                                             limit=call.body.limit))
    if not found:
        raise NotFound("session", sid, "List sessions with GET /v1/history/sessions.")
    return SessionMessages(session_id=sid, messages=[
        MessageOut(id=m.id, role=m.role, content=m.content, name=m.name, timestamp=m.chat_time or m.created_at)
        for m in found])


@DIALECT.op("GET", "/history/sessions", "List sessions", query=UserQuery, response=Sessions)
async def list_sessions(call: Call[UserQuery]) -> Sessions:
    found = await call.run(lambda: call.service.list_conversations(call.actor, user_id=call.body.user_id))
    return Sessions(sessions=list(dict.fromkeys(str(c["conversation_id"]) for c in found)))


@DIALECT.op("POST", "/history/sessions/{sid}/search", "Search session", body=SessionSearch,
            response=SessionResults)
async def search_session(call: Call[SessionSearch]) -> SessionResults:
    sid, body = call.path["sid"], call.body

    def run() -> list[SearchHit]:
        if not call.service.get_messages(call.actor, sid, user_id=body.user_id, limit=1):
            raise NotFound("session", sid, "List sessions with GET /v1/history/sessions.")
        found = call.service.search(call.actor, body.query, user_id=body.user_id, top_k=body.limit,
                                    pref_top_k=body.limit, filters={"conversation_id": sid})
        # Each list keeps its ranking; the merge takes the head of higher relativity first.
        return list(heapq.merge(found.memories, found.preferences, key=lambda h: -h.relativity))[:body.limit]

    return SessionResults(session_id=sid, results=[
        SessionHit(id=h.id, content=h.memory, role=h.sources[0].role if h.sources else None, score=h.relativity,
                   timestamp=h.event_time or h.created_at) for h in await call.run(run)])


@DIALECT.op("DELETE", "/history/sessions/{sid}", "Delete session", query=UserQuery, response=Deleted)
async def delete_session(call: Call[UserQuery]) -> Deleted:
    sid = call.path["sid"]
    count = await call.run(lambda: call.service.clear_chat_history(call.actor, sid, user_id=call.body.user_id))
    if not count:
        raise NotFound("session", sid, "List sessions with GET /v1/history/sessions.")
    return Deleted(deleted=count)


@DIALECT.op("DELETE", "/history/sessions", "Delete all sessions", query=UserQuery, response=Deleted)
async def delete_sessions(call: Call[UserQuery]) -> Deleted:
    return Deleted(deleted=await call.run(lambda: call.service.clear_chat_history(call.actor,
                                                                                  user_id=call.body.user_id)))
