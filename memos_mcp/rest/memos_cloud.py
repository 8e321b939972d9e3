"""The MemOS cloud dialect (``/api/openmem/v1``): what the official ``MemOSClient`` sends, JSON bodies by
POST, ``Authorization: Token KEY``, answers in ``{code, message, data}``.

Departures from the hosted service, each because the core does not (yet) do it:

- ``async_mode`` is honoured when a language model is configured (the answer's ``status`` is ``waiting``
  and ``/get/status`` follows the task); without one, extraction is deterministic and quick, so adds
  complete before they answer (``completed``) whatever ``async_mode`` says;
- ``filter`` takes the core's search filters (``memory_type``, ``kind``, ``tags``, ``status``,
  ``conversation_id``, ``time_from``, ``time_to``, ``metadata``), not the hosted service's filter language;
- ``/chat`` answers with the core's chat: ``system_prompt`` opens the system message (the memories
  and the instruction to respect preferences follow it), ``memory_limit_number``,
  ``preference_limit_number`` and ``include_preference`` bound the search; ``add_message_on_answer:
  false`` is refused rather than ignored (every complete exchange is stored). With ``stream`` the
  answer comes as SSE frames: ``reference``, one ``text`` frame per piece of text as the model writes
  it, ``end``; a model failure mid-answer is an ``error`` frame (``{code, message}``), the last, and
  that exchange is not stored. Errors before the answer (no model, the model unreachable) are envelopes;
- ``conversation_limit_number`` of ``/get/message`` is accepted and not applied: one conversation is read;
- the official client sends every field of its methods, most as null or a default: ``agent_id`` and
  ``app_id`` are stored in the memories' metadata by ``/add/message`` and narrow ``/search/memory``,
  ``/get/memory`` and ``/delete/memory`` (by ``agent_id``) to the memories that carry them; ``/chat``
  applies ``temperature`` and ``max_tokens``; there are no tool memories, so ``include_tool_memory`` and
  the limits of what does not exist are accepted as they come; the hosted service's knowledge bases,
  skills, memory views, public sharing, internet search and model choice are not served, and those fields
  are refused unless they carry their neutral value (null, false, the client's default). Any other
  unknown field is refused, naming it.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any, ClassVar, Literal, Self

from pydantic import BaseModel, Field, StrictFloat, StrictInt, StrictStr, model_validator
from pydantic_core import PydanticCustomError
from sse_starlette import EventSourceResponse
from starlette.responses import Response

from memos_mcp.core.chat import ChatEvent, Delta, References
from memos_mcp.core.checks import check_id
from memos_mcp.core.filters import validated
from memos_mcp.core.models import Memory, MemoryKind, MemoryPage, Message, SearchHit, TaskStatus
from memos_mcp.core.service import MemoryService
from memos_mcp.errors import InvalidRequest, MemosError
from memos_mcp.rest.base import Call, CodeEnvelope, Dialect, answer_frames

PREFERENCE_NOTE = (
    "\n# Note:\nFact memory are summaries of facts, while preference memory are summaries of user preferences.\n"
    "Your response must not violate any of the user's preferences, whether explicit or implicit, and briefly "
    "explain why you answer this way to avoid conflicts.\n")
TaskState = Literal["waiting", "in_progress", "completed", "failed"]
_STATUS: dict[TaskStatus, TaskState] = {TaskStatus.QUEUED: "waiting", TaskStatus.RUNNING: "in_progress",
                                        TaskStatus.DONE: "completed", TaskStatus.FAILED: "failed"}


DIALECT = Dialect("MemOS cloud", "/api/openmem/v1", CodeEnvelope())


# --- shapes ------------------------------------------------------------------------------------------
class HostedOnly(BaseModel):
    """A body with fields of the hosted service this server does not serve: each is accepted only with
    its neutral value (``NEUTRAL``: null, an empty list, or the value named there); anything else is
    refused, naming the field, rather than ignored."""

    NEUTRAL: ClassVar[dict[str, Any]] = {}

    @model_validator(mode="after")
    def _refuse_hosted_only(self) -> Self:
        for name, neutral in self.NEUTRAL.items():
            value = getattr(self, name)
            if value is not None and value != [] and value != neutral:
                raise PydanticCustomError("not_supported", "{name}: {value} is not supported by this server; "
                                          "leave it out (or send {neutral})",
                                          {"name": name, "value": json.dumps(value), "neutral": json.dumps(neutral)})
        return self


class CloudMessage(BaseModel):
    """A message as MemOS's ``MessageDict`` has it (role, content, chat_time, message_id) plus the
    speaker's ``name``; any other key is refused by name (a misspelt ``chattime`` was dropped)."""

    role: Literal["user", "assistant", "system", "tool"] = "user"
    content: str
    chat_time: StrictStr | StrictInt | StrictFloat | None = Field(
        None, description="when it was said (ISO 8601, or epoch seconds/ms)")
    message_id: str | None = Field(None, description="the caller's id of the message, kept as its source")
    name: str | None = Field(None, description="the speaker's name")


class AddMessageBody(HostedOnly):
    NEUTRAL: ClassVar[dict[str, Any]] = {"allow_public": False, "allow_knowledgebase_ids": None,
                                         "allow_memory_view": None}

    messages: list[CloudMessage] = Field(min_length=1)
    user_id: str
    conversation_id: str | None = None
    info: dict[str, Any] | None = Field(None, description="stored as the memories' metadata")
    tags: list[str] | None = None
    async_mode: bool = Field(True, description="with a language model: answer at once and extract in the "
                             "background (false waits); without one adds always complete before the answer")
    agent_id: str | None = Field(None, description="stored in metadata as agent_id")
    app_id: str | None = Field(None, description="stored in metadata as app_id")
    source: str | None = Field(None, description="stored in metadata as source")
    allow_public: bool | None = Field(None, description="hosted service only: false or null")
    allow_knowledgebase_ids: list[str] | None = Field(None, description="hosted service only: null or empty")
    allow_memory_view: list[str] | None = Field(None, description="hosted service only: null or empty")


class AddMessageData(BaseModel):
    success: bool
    task_id: str
    status: str


class TaskBody(BaseModel):
    task_id: str = Field(min_length=1)


class TaskData(BaseModel):
    task_id: str
    status: TaskState


class SearchBody(HostedOnly):
    NEUTRAL: ClassVar[dict[str, Any]] = {"knowledgebase_ids": None, "include_skill": False,
                                         "include_memory_view": None, "context_format": "memory",
                                         "source": None}

    query: str = Field(min_length=1)
    user_id: str
    conversation_id: str | None = Field(None, description="raises this conversation's weight; excludes nothing")
    agent_id: str | None = Field(None, description="only memories added with this agent_id")
    memory_limit_number: int = Field(6, ge=1, le=1000)
    include_preference: bool = True
    preference_limit_number: int = Field(6, ge=0, le=1000)
    filter: dict[str, Any] | None = None
    relativity: float | None = Field(None, ge=0, le=1, description="the least relevance returned")
    include_tool_memory: bool = Field(False, description="there are no tool memories: none is returned")
    tool_memory_limit_number: int | None = Field(None, ge=0, description="there are no tool memories")
    include_skill: bool | None = Field(None, description="hosted service only: false or null")
    skill_limit_number: int | None = Field(None, ge=0, description="there are no skills")
    knowledgebase_ids: list[str] | None = Field(None, description="hosted service only: null or empty")
    include_memory_view: list[str] | None = Field(None, description="hosted service only: null or empty")
    context_format: str | None = Field(None, description="hosted service only: \"memory\" or null")
    source: str | None = Field(None, description="hosted service only: null")


class MemoryDetail(BaseModel):
    id: str
    memory_key: str
    memory_value: str
    memory_type: str
    create_time: int = Field(description="milliseconds since the epoch")
    conversation_id: str | None
    status: str
    confidence: float
    tags: list[str]
    update_time: int = Field(description="milliseconds since the epoch")
    relativity: float | None = Field(None, description="relevance to the query (search only)")


class PreferenceDetail(BaseModel):
    id: str
    preference_type: Literal["explicit_preference", "implicit_preference"]
    preference: str
    reasoning: str
    create_time: int
    conversation_id: str | None
    status: str
    update_time: int


class SearchData(BaseModel):
    memory_detail_list: list[MemoryDetail]
    preference_detail_list: list[PreferenceDetail]
    preference_note: str


class GetMemoryBody(HostedOnly):
    NEUTRAL: ClassVar[dict[str, Any]] = {"include_memory_view": None}

    user_id: str
    page: int = Field(1, ge=1)
    size: int = Field(10, ge=1, le=50)
    include_preference: bool = True
    filter: dict[str, Any] | None = None
    agent_id: str | None = Field(None, description="only memories added with this agent_id")
    include_tool_memory: bool = Field(False, description="there are no tool memories: none is returned")
    include_memory_view: list[str] | None = Field(None, description="hosted service only: null or empty")


class MemoryPageData(BaseModel):
    memory_detail_list: list[MemoryDetail]
    preference_detail_list: list[PreferenceDetail]
    total: int
    size: int
    current: int
    pages: int


class GetMessageBody(HostedOnly):
    NEUTRAL: ClassVar[dict[str, Any]] = {"source": None}

    user_id: str
    conversation_id: str = Field(min_length=1)
    conversation_limit_number: int | None = Field(None, ge=1, description="accepted; one conversation is read")
    message_limit_number: int | None = Field(None, ge=1, le=10_000)
    source: str | None = Field(None, description="hosted service only: null")


class MessageDetail(BaseModel):
    id: str
    role: str
    content: str
    conversation_id: str
    create_time: int
    chat_time: int | None


class MessagesData(BaseModel):
    message_detail_list: list[MessageDetail]


class UpdateBody(BaseModel):
    memory_id: str = Field(min_length=1)
    content: str | None = None
    title: str | None = None
    status: Literal["activated", "archived"] | None = None


class DeleteBody(HostedOnly):
    NEUTRAL: ClassVar[dict[str, Any]] = {"memory_type": None}

    memory_ids: list[str] | None = None
    user_id: str | None = None
    agent_id: str | None = Field(None, description="every memory of yours added with this agent_id")
    filter: dict[str, Any] | None = None
    memory_type: str | None = Field(None, description="hosted service only: null")


class SuccessData(BaseModel):
    success: bool


class DeleteData(SuccessData):
    skipped_cube_ids: list[str] = Field(default_factory=list, description="cubes holding matches of the "
                                        "filter that the caller may only read: nothing in them was deleted")


class ChatBody(HostedOnly):
    NEUTRAL: ClassVar[dict[str, Any]] = {
        "internet_search": False, "force_stop": False, "use_mem_os_cube": False, "source": None, "model_name": None,
        "knowledgebase_ids": None, "filter": None, "app_id": None, "agent_id": None, "async_mode": True,
        "tags": None, "info": None, "allow_public": False, "allow_knowledgebase_ids": None, "top_p": 0.95,
        "include_tool_memory": False, "relativity": None}

    user_id: str
    conversation_id: str = Field(min_length=1)
    query: str = Field(min_length=1)
    stream: bool = False
    memory_limit_number: int | None = Field(None, ge=1, le=1000,
                                            description="facts to retrieve (default: the server's)")
    preference_limit_number: int | None = Field(None, ge=0, le=1000, description="preferences to retrieve")
    include_preference: bool = True
    system_prompt: str | None = Field(None, description="your instructions; the memories follow them")
    add_message_on_answer: bool = Field(True, description="the exchange is always stored: false is refused")
    max_tokens: int | None = Field(None, ge=1, description="the longest answer, in tokens (default: the server's)")
    temperature: float | None = Field(None, ge=0, le=2, description="sampling temperature (default: the server's)")
    tool_memory_limit_number: int | None = Field(None, ge=0, description="there are no tool memories")
    async_mode: bool | None = Field(None, description="the exchange is always remembered in the background")
    top_p: float | None = Field(None, description="hosted service only: null or 0.95 (the client's default)")
    internet_search: bool | None = Field(None, description="hosted service only: false or null")
    force_stop: bool | None = Field(None, description="hosted service only: false or null")
    use_mem_os_cube: bool | None = Field(None, description="hosted service only: false or null")
    include_tool_memory: bool | None = Field(None, description="there are no tool memories: false or null")
    source: str | None = Field(None, description="hosted service only: null")
    model_name: str | None = Field(None, description="the server's model answers: null")
    knowledgebase_ids: list[str] | None = Field(None, description="hosted service only: null or empty")
    filter: dict[str, Any] | None = Field(None, description="not applied by chat: null")
    app_id: str | None = Field(None, description="not applied by chat: null")
    agent_id: str | None = Field(None, description="not applied by chat: null")
    tags: list[str] | None = Field(None, description="not applied by chat: null")
    info: dict[str, Any] | None = Field(None, description="not applied by chat: null")
    allow_public: bool | None = Field(None, description="hosted service only: false or null")
    allow_knowledgebase_ids: list[str] | None = Field(None, description="hosted service only: null or empty")
    relativity: float | None = Field(None, description="not applied by chat: null")


class ChatData(BaseModel):
    response: str


# --- conversions -------------------------------------------------------------------------------------
def _ms(value: datetime) -> int:
    return int(value.timestamp() * 1000)


def memory_detail(m: Memory) -> MemoryDetail:
    return MemoryDetail(id=m.id, memory_key=m.key, memory_value=m.memory, memory_type=m.memory_type.value,
                        create_time=_ms(m.created_at), conversation_id=m.conversation_id, status=m.status.value,
                        confidence=m.confidence, tags=m.tags, update_time=_ms(m.updated_at),
                        relativity=m.relativity if isinstance(m, SearchHit) else None)


def preference_detail(m: Memory) -> PreferenceDetail:
    return PreferenceDetail(id=m.id, preference_type=m.preference_type or "explicit_preference",
                            preference=m.memory, reasoning=m.reasoning or "", create_time=_ms(m.created_at),
                            conversation_id=m.conversation_id, status=m.status.value, update_time=_ms(m.updated_at))


def _message_detail(m: Message) -> MessageDetail:
    return MessageDetail(id=m.id, role=m.role, content=m.content, conversation_id=m.conversation_id,
                         create_time=_ms(m.created_at), chat_time=_ms(m.chat_time) if m.chat_time else None)


def _with_agent(given: dict[str, Any] | None, agent_id: str | None) -> dict[str, Any] | None:
    """The caller's filter (checked here, so that an error names this dialect's ``filter``, not the
    core's ``filters``) narrowed to the memories added with ``agent_id`` (kept in their metadata)."""
    validated(given, field="filter")
    if agent_id is None:
        return given
    flt = dict(given or {})
    metadata = flt.get("metadata") or {}
    if not isinstance(metadata, dict):
        raise InvalidRequest("filter.metadata: give an object of keys and values", field="filter.metadata")
    flt["metadata"] = {**metadata, "agent_id": agent_id}
    return flt


def _with_kinds(given: dict[str, Any] | None, kinds: list[str]) -> dict[str, Any] | None:
    """The caller's filter narrowed to ``kinds`` (intersected with a ``kind`` it names itself); None when
    the intersection is empty: nothing can match."""
    flt = dict(given or {})
    asked = flt.get("kind")
    if asked is not None:
        asked = [asked] if isinstance(asked, str) else asked
        if not isinstance(asked, list):
            raise InvalidRequest("filter.kind: give a kind or a list of kinds", field="filter.kind")
        kinds = [k for k in kinds if k in asked]
    flt["kind"] = kinds
    return flt if kinds else None


# --- operations --------------------------------------------------------------------------------------
@DIALECT.op("POST", "/add/message", "Add messages (extracted in the background with async_mode)",
            body=AddMessageBody, response=AddMessageData)
async def add_message(call: Call[AddMessageBody]) -> AddMessageData:
    b = call.body
    meta = dict(b.info or {})
    meta |= {k: check_id(k, v) for k, v in (("agent_id", b.agent_id), ("app_id", b.app_id)) if v is not None}
    meta |= {"source": b.source} if b.source is not None else {}
    messages = [m.model_dump(exclude_none=True) for m in b.messages]
    result = await call.run(lambda: call.service.add_memory(
        call.actor, user_id=b.user_id, messages=messages, conversation_id=b.conversation_id,
        metadata=meta, tags=b.tags, async_mode=b.async_mode))
    if result.task_id is None:  # the core records every add; without its task there is nothing to report
        raise MemosError("the add completed but the core recorded no task for it")
    return AddMessageData(success=True, task_id=result.task_id, status=_STATUS[result.status])


@DIALECT.op("POST", "/get/status", "The status of an add task", body=TaskBody, response=TaskData)
async def get_status(call: Call[TaskBody]) -> TaskData:
    task = await call.run(lambda: call.service.get_task(call.actor, call.body.task_id))
    return TaskData(task_id=task.task_id, status=_STATUS[task.status])


@DIALECT.op("POST", "/search/memory", "Search facts and preferences", body=SearchBody, response=SearchData)
async def search_memory(call: Call[SearchBody]) -> SearchData:
    b = call.body
    found = await call.run(lambda: call.service.search(
        call.actor, b.query, user_id=b.user_id, conversation_id=b.conversation_id, top_k=b.memory_limit_number,
        include_preference=b.include_preference, pref_top_k=b.preference_limit_number,
        filters=_with_agent(b.filter, b.agent_id), threshold=b.relativity))
    prefs = [preference_detail(p) for p in found.preferences]
    return SearchData(memory_detail_list=[memory_detail(m) for m in found.memories],
                      preference_detail_list=prefs, preference_note=PREFERENCE_NOTE if prefs else "")


@DIALECT.op("POST", "/get/memory", "A page of the user's memories", body=GetMemoryBody, response=MemoryPageData)
async def get_memories(call: Call[GetMemoryBody]) -> MemoryPageData:
    b = call.body
    facts = [MemoryKind.FACT.value, MemoryKind.DOCUMENT.value]

    def listed(flt: dict[str, Any] | None) -> MemoryPage:
        if flt is None:  # the kinds asked for are none of this list's: still a check of the rest
            call.service.list_memories(call.actor, user_id=b.user_id, page=b.page, size=1,
                                       filters={k: v for k, v in (given or {}).items() if k != "kind"})
            return MemoryPage(memories=[], total=0, page=b.page, size=b.size)
        return call.service.list_memories(call.actor, user_id=b.user_id, page=b.page, size=b.size, filters=flt)

    given = _with_agent(b.filter, b.agent_id)

    def run() -> MemoryPageData:
        page = listed(_with_kinds(given, facts))
        prefs = listed(_with_kinds(given, [MemoryKind.PREFERENCE.value])).memories if b.include_preference else []
        return MemoryPageData(memory_detail_list=[memory_detail(m) for m in page.memories],
                              preference_detail_list=[preference_detail(p) for p in prefs],
                              total=page.total, size=page.size, current=page.page, pages=page.pages)
    return await call.run(run)


@DIALECT.op("GET", "/get/memory/{memory_id}", "One memory by id", response=MemoryDetail)
async def get_memory(call: Call[Any]) -> MemoryDetail:
    memory = await call.run(lambda: call.service.get_memory(call.actor, call.path["memory_id"]))
    return memory_detail(memory)


@DIALECT.op("POST", "/get/message", "The messages of a conversation", body=GetMessageBody, response=MessagesData)
async def get_message(call: Call[GetMessageBody]) -> MessagesData:
    b = call.body
    messages = await call.run(lambda: call.service.get_messages(
        call.actor, b.conversation_id, user_id=b.user_id, limit=b.message_limit_number or 100))
    return MessagesData(message_detail_list=[_message_detail(m) for m in messages])


@DIALECT.op("POST", "/update/memory", "Change a memory's content, title (key) or status", body=UpdateBody,
            response=MemoryDetail)
async def update_memory(call: Call[UpdateBody]) -> MemoryDetail:
    b = call.body
    memory = await call.run(lambda: call.service.update_memory(call.actor, b.memory_id, memory=b.content,
                                                               key=b.title, status=b.status))
    return memory_detail(memory)


@DIALECT.op("POST", "/delete/memory", "Delete memories by ids, of a user, or matching a filter", body=DeleteBody,
            response=DeleteData)
async def delete_memory(call: Call[DeleteBody]) -> DeleteData:
    b = call.body
    given = [name for name, value in (("memory_ids", b.memory_ids), ("user_id", b.user_id),
                                      ("agent_id", b.agent_id), ("filter", b.filter)) if value is not None]
    if len(given) != 1:
        raise InvalidRequest("give exactly one of memory_ids, user_id, agent_id or filter"
                             + (f" (got {', '.join(given)})" if given else ""), field="body")
    if b.memory_ids is not None and not b.memory_ids:
        raise InvalidRequest("memory_ids is empty", field="memory_ids")
    skipped = await call.run(lambda: _delete(call.service, call.actor, b))
    return DeleteData(success=True, skipped_cube_ids=skipped)


def _delete(service: MemoryService, actor: str, b: DeleteBody) -> list[str]:
    """Deletes all or nothing: ids are each checked first, a filter reaches only writable cubes (the
    read-only ones holding matches are returned), a user's cubes are all its own."""
    if b.user_id is not None:
        for cube in service.list_cubes(actor, b.user_id):
            if cube.owner_id == b.user_id:
                service.delete_all(actor, cube.cube_id)
        return []
    if b.memory_ids is not None:
        service.delete_memories(actor, b.memory_ids)
        return []
    return service.delete_matching(actor, _with_agent(b.filter, b.agent_id), field="filter")[1]


def _chat_frames(event: ChatEvent) -> list[dict[str, str]]:
    """reference first, a text frame per piece of the answer, then end."""
    if isinstance(event, References):
        return [{"data": json.dumps({"type": "reference", "data": [memory_detail(m).model_dump() for m in event.all]})}]
    if isinstance(event, Delta):
        return [{"data": json.dumps({"type": "text", "data": event.text})}]
    return [{"data": json.dumps({"type": "end"})}]


def _error_frame(failure: MemosError) -> dict[str, str]:
    return {"data": json.dumps({"type": "error", "data": {"code": failure.status, "message": failure.message}})}


@DIALECT.op("POST", "/chat", "Answer grounded in memory; the exchange is stored", body=ChatBody,
            response=ChatData, raw=True)
async def chat(call: Call[ChatBody]) -> Response:
    b = call.body
    if not b.add_message_on_answer:
        raise InvalidRequest("add_message_on_answer: false is not supported: every exchange is stored",
                             field="add_message_on_answer")
    options: dict[str, Any] = {
        "conversation_id": b.conversation_id, "user_id": b.user_id, "system_prompt": b.system_prompt,
        "top_k": b.memory_limit_number, "include_preference": b.include_preference,
        "pref_top_k": b.preference_limit_number, "temperature": b.temperature, "max_tokens": b.max_tokens}
    if not b.stream:
        reply = await call.run(lambda: call.service.chat(call.actor, b.query, **options))
        return DIALECT.envelope.ok({"response": reply.answer}, "Success", 200)
    stream = await call.run(lambda: call.service.chat_stream(call.actor, b.query, **options))
    return EventSourceResponse(answer_frames(stream, _chat_frames, _error_frame))

