"""The filters callers give to search and list, validated into the store's ``MemoryFilter``."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, field_validator

from memos_mcp.core.checks import is_json_value, is_metadata_key, storable_problem
from memos_mcp.core.models import MemoryKind, MemoryStatus, MemoryType
from memos_mcp.core.stores.vector import MemoryFilter, Scalar
from memos_mcp.core.text import is_blank
from memos_mcp.core.timeparse import parse_bound, parse_time, to_epoch
from memos_mcp.errors import InvalidRequest


def _filter_text(text: str) -> str:
    """Text no stored value can equal (NUL, a lone surrogate), which PostgreSQL cannot take as a parameter
    either, is refused; so is an empty value, which would match nothing (or, to a careless reader, anything)."""
    problem = storable_problem(text)
    if problem is not None:
        raise ValueError(f"the value {problem}")
    if not text:
        raise ValueError("is empty: it would match nothing; leave the field out to match any value")
    return text


def _filter_tag(tag: str) -> str:
    """A tag as tags are stored (``checks.check_tags``): without the spaces around it, not blank."""
    tag = _filter_text(tag.strip())
    if is_blank(tag):
        raise ValueError("is empty (nothing visible): no stored tag is")
    return tag


FilterId = Annotated[str, AfterValidator(_filter_text)]
FilterTag = Annotated[str, AfterValidator(_filter_tag)]


def _listify(value: Any) -> Any:
    if isinstance(value, list) and not value:  # any of none: it would match nothing, yet stores read no condition
        raise ValueError("an empty list matches nothing: leave the field out to match any value")
    return [value] if isinstance(value, str) else value


class SearchFilters(BaseModel):
    """Every given condition must hold. Lists match any of their values."""

    model_config = ConfigDict(extra="forbid")

    memory_type: list[MemoryType] | None = Field(None, description="WorkingMemory, LongTermMemory, UserMemory")
    kind: list[MemoryKind] | None = Field(None, description="fact, preference, document")
    tags: list[FilterTag] | None = Field(None, description="memories with at least one of these tags")
    status: list[MemoryStatus] | None = Field(None, description="default: activated only")
    conversation_id: FilterId | None = Field(None, description="only this conversation (search boosts instead)")
    user_id: FilterId | None = Field(None, description="only memories written by this user")
    time_from: datetime | None = Field(None, description="event time at or after (ISO 8601 or epoch)")
    time_to: datetime | None = Field(None, description="event time at or before (ISO 8601 or epoch; a bare "
                                                       "date includes that whole day)")
    metadata: dict[str, Scalar] | None = Field(None, description="metadata keys equal to these values")

    _lists = field_validator("memory_type", "kind", "tags", "status", mode="before")(_listify)

    @field_validator("metadata")
    @classmethod
    def _metadata(cls, value: dict[str, Scalar] | None) -> dict[str, Scalar] | None:
        for key, wanted in (value or {}).items():
            if not is_metadata_key(key):  # the rule for storing it: refused before it reaches a store's syntax
                raise ValueError(f"metadata key {key!r} is not valid: use 1-64 letters, digits or - _ . : @")
            if not is_json_value(wanted):  # no stored value can equal it, and a store's filter may fail on it
                raise ValueError(f"metadata value of {key!r} is not one a memory can hold: a finite number "
                                 "(integers within 64 bits), text or boolean")
            problem = storable_problem(wanted) if isinstance(wanted, str) else None
            if problem is not None:
                raise ValueError(f"metadata value of {key!r} {problem}")
        return value

    @field_validator("time_from", mode="before")
    @classmethod
    def _start(cls, value: Any) -> datetime | None:
        return parse_time(value)

    @field_validator("time_to", mode="before")
    @classmethod
    def _end(cls, value: Any) -> datetime | None:
        return parse_bound(value, upper=True)  # a bare date includes the whole of that day


def validated(filters: SearchFilters | dict[str, Any] | None, field: str = "filters") -> SearchFilters:
    """``filters`` as ``SearchFilters`` (validated once when given as a dict); ``InvalidRequest`` naming
    the field of the first problem under ``field`` (the caller's name for the filters)."""
    if isinstance(filters, SearchFilters):
        return filters
    try:
        return SearchFilters.model_validate(filters or {})
    except ValidationError as exc:
        raise InvalidRequest.naming_field(exc, prefix=field) from exc


def conditions(filters: SearchFilters) -> list[str]:
    """The fields of ``filters`` that narrow what matches (given, not null, not an empty object)."""
    return [name for name, value in filters.model_dump(exclude_none=True).items() if value not in ({}, [])]


def parse_filters(filters: SearchFilters | dict[str, Any] | None, cube_ids: list[str]) -> MemoryFilter:
    given = validated(filters)
    if given.time_from and given.time_to and given.time_from > given.time_to:
        raise InvalidRequest("filters.time_from is after filters.time_to", field="filters.time_from")
    return MemoryFilter(
        cube_ids=tuple(cube_ids),
        status=tuple(s.value for s in given.status) if given.status else (MemoryStatus.ACTIVATED.value,),
        memory_types=tuple(t.value for t in given.memory_type or ()),
        kinds=tuple(k.value for k in given.kind or ()),
        tags_any=tuple(given.tags or ()),
        conversation_id=given.conversation_id,
        user_id=given.user_id,
        event_time_from=to_epoch(given.time_from),
        event_time_to=to_epoch(given.time_to),
        metadata=tuple((given.metadata or {}).items()),
    )
