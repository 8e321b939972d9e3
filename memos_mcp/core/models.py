"""Domain models of the memory core: users, cubes, memories, messages, history, search results."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, computed_field, field_validator, model_validator
from pydantic_core import PydanticCustomError

from memos_mcp.core.timeparse import Time


def utcnow() -> datetime:
    return datetime.now(UTC)


class Role(StrEnum):
    ROOT = "root"
    ADMIN = "admin"
    USER = "user"
    GUEST = "guest"


class Permission(StrEnum):
    READ = "read"
    WRITE = "write"


class MemoryType(StrEnum):
    WORKING = "WorkingMemory"
    LONG_TERM = "LongTermMemory"
    USER = "UserMemory"


class MemoryKind(StrEnum):
    FACT = "fact"
    PREFERENCE = "preference"
    DOCUMENT = "document"


class MemoryStatus(StrEnum):
    ACTIVATED = "activated"
    ARCHIVED = "archived"


class SourceKind(StrEnum):
    CHAT = "chat"
    DOCUMENT = "document"
    API = "api"


PreferenceType = Literal["explicit_preference", "implicit_preference"]


class User(BaseModel):
    user_id: str
    user_name: str
    role: Role
    created_at: datetime

    @property
    def is_admin(self) -> bool:
        return self.role in (Role.ROOT, Role.ADMIN)


class Cube(BaseModel):
    cube_id: str
    name: str
    owner_id: str
    created_at: datetime
    is_default: bool = False
    permission: Literal["owner", "read", "write", "admin"] | None = Field(
        None, description="what the asking user may do with this cube")
    shared_with: dict[str, Permission] = Field(default_factory=dict, description="accepted shares")
    # Shares offered and not yet accepted: they reach only calls naming the cube, and are never shown
    # (a pending share would tell its owner whether a user id exists).
    offered_to: dict[str, Permission] = Field(default_factory=dict, exclude=True)
    # The owner's role: an admin acts on the cubes of users not above them (never on root's).
    owner_role: Role | None = Field(None, exclude=True)


ShareState = Literal["pending", "accepted"]


class Share(BaseModel):
    """A cube shared with the asking user: offered (``pending``) until accepted; declined ones are gone."""

    cube_id: str
    cube_name: str
    owner_id: str
    permission: Permission
    state: ShareState
    shared_at: datetime


class MemorySource(BaseModel):
    """Where a memory came from: a message of a conversation, a document chunk, or an API call."""

    model_config = ConfigDict(extra="allow")

    type: SourceKind
    message_id: str | None = None
    conversation_id: str | None = None
    role: str | None = None
    name: str | None = None
    chat_time: Time | None = None
    doc_path: str | None = None
    chunk_index: int | None = Field(None, ge=0, le=2**53, description="the chunk's place in its text, from 0")
    content: str | None = None
    gap: str | None = Field(None, description="a chunk of a text: the whitespace before it in that text")
    tail: str | None = Field(None, description="the last chunk of a text: the whitespace after it")


class Memory(BaseModel):
    id: str
    cube_id: str
    user_id: str
    memory: str
    key: str = ""
    memory_type: MemoryType = MemoryType.LONG_TERM
    kind: MemoryKind = MemoryKind.FACT
    preference_type: PreferenceType | None = None
    reasoning: str | None = None
    tags: list[str] = Field(default_factory=list)
    confidence: float = Field(1.0, ge=0, le=1)
    background: str = ""
    source: SourceKind = SourceKind.API
    sources: list[MemorySource] = Field(default_factory=list)
    conversation_id: str | None = None
    status: MemoryStatus = MemoryStatus.ACTIVATED
    event_time: Time | None = None
    created_at: Time
    updated_at: Time
    metadata: dict[str, Any] = Field(default_factory=dict)
    embedding: list[float] | None = None

    @computed_field  # type: ignore[prop-decorator]
    @property
    def ref_id(self) -> str:
        """The handle a chat answer cites: ``[`` + the first 8 characters of the id + ``]``."""
        return f"[{self.id[:8]}]"


class SearchHit(Memory):
    relativity: float = Field(ge=0, le=1, description="relevance to the query, 1 is best")


class SearchResult(BaseModel):
    memories: list[SearchHit]
    preferences: list[SearchHit]
    cube_ids: list[str]


_MESSAGE_ALIASES = {"message_id": ("message_id", "id", "dia_id"),
                    "chat_time": ("chat_time", "timestamp", "time", "created_at")}


MessageRole = Literal["user", "assistant", "system", "tool"]


class MessageIn(BaseModel):
    """A message handed to ``add_memory``; ``message_id`` also accepts ``id`` and ``dia_id``, and
    ``chat_time`` ``timestamp``, ``time`` and ``created_at`` (the names other memory APIs use). Two
    names of one field in the same message are refused (one value would be dropped)."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    role: MessageRole = "user"
    content: str
    name: str | None = None
    message_id: str | None = Field(None, validation_alias=AliasChoices(*_MESSAGE_ALIASES["message_id"]))
    chat_time: Time | None = Field(None, validation_alias=AliasChoices(*_MESSAGE_ALIASES["chat_time"]))

    @model_validator(mode="before")
    @classmethod
    def _one_name_per_field(cls, data: Any) -> Any:
        if isinstance(data, dict):
            for names in _MESSAGE_ALIASES.values():
                given = [n for n in names if data.get(n) is not None]
                if len(given) > 1:
                    raise PydanticCustomError("alias_conflict", "{given} name the same field: give one of them",
                                              {"given": " and ".join(given)})
        return data

    @field_validator("message_id", mode="before")
    @classmethod
    def _stringify(cls, value: Any) -> str | None:
        return None if value is None else str(value)


class Message(BaseModel):
    id: str
    cube_id: str
    conversation_id: str
    user_id: str
    role: str
    content: str
    name: str | None = None
    message_id: str | None = None
    chat_time: Time | None = None
    created_at: Time


class HistoryEvent(BaseModel):
    memory_id: str
    cube_id: str
    event: Literal["ADD", "UPDATE", "ARCHIVE", "DELETE"]
    actor: str
    at: datetime
    old_memory: str | None = None
    new_memory: str | None = None
    step: str | None = Field(None, exclude=True, description="the background task's step that made the event "
                             "(task id and memory id): a step is recorded once")


class TaskStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


class AddJob(BaseModel):
    """What an add of messages still has to do: its stored messages, how to extract them and how to label
    what comes out."""

    message_ids: list[str]
    conversation_id: str
    metadata: dict[str, Any] = Field(default_factory=dict)
    tags: list[str] = Field(default_factory=list)
    memory_type: MemoryType | None = None
    extractor: Literal["llm", "rules"] = Field(
        "llm", description="rules: the deterministic extractor only (an add without a language model, or with "
                           "mem0's infer=False), which a restart makes exactly as the add would have")


class Task(BaseModel):
    """A unit of add work: queued, running, done with the memory changes, or failed with the
    reason. A failed extraction still stores the deterministic extractor's memories (``added``)."""

    task_id: str
    user_id: str
    cube_id: str
    status: TaskStatus
    created_at: datetime
    updated_at: datetime
    conversation_id: str | None = None
    added: list[str] = Field(default_factory=list)
    updated: list[str] = Field(default_factory=list, description="existing memories the model revised")
    archived: list[str] = Field(default_factory=list, description="existing memories the model superseded")
    deduplicated: list[str] = Field(default_factory=list)
    extractor: Literal["llm", "rules"] | None = None
    attempts: int = 0
    error: str | None = None
    job: AddJob | None = Field(None, exclude=True)


class AddResult(BaseModel):
    memories: list[Memory] = Field(description="memories added, or the existing ones when de-duplicated")
    added: list[str] = Field(default_factory=list)
    deduplicated: list[str] = Field(default_factory=list)
    message_ids: list[str] = Field(default_factory=list)
    task_id: str | None = None
    status: TaskStatus = TaskStatus.DONE
    updated: list[str] = Field(default_factory=list)
    archived: list[str] = Field(default_factory=list)
    cube_id: str


class MemoryPage(BaseModel):
    memories: list[Memory]
    total: int
    page: int
    size: int

    @property
    def pages(self) -> int:
        return (self.total + self.size - 1) // self.size
