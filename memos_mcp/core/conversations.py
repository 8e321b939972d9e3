"""Conversations: the stored messages of each conversation, listing them and clearing chat history."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from memos_mcp.core.checks import check_id
from memos_mcp.core.context import Room
from memos_mcp.core.models import Message, Permission
from memos_mcp.errors import InvalidRequest


class Conversations(Room):
    """The messages stored by adds and chats, by conversation."""

    def get_messages(self, actor_id: str, conversation_id: str, *, cube_ids: Sequence[str] | None = None,
                     user_id: str | None = None, limit: int = 100) -> list[Message]:
        user = self.access.acting_as(self.access.user(actor_id), user_id)
        if not 1 <= limit <= 10_000:
            raise InvalidRequest("limit lies in 1..10000", field="limit")
        cubes = self.access.readable(user, cube_ids)
        return self.catalog.recent_messages(cubes, conversation_id, limit) if cubes else []

    def list_conversations(self, actor_id: str, *, cube_ids: Sequence[str] | None = None,
                           user_id: str | None = None) -> list[dict[str, Any]]:
        user = self.access.acting_as(self.access.user(actor_id), user_id)
        cubes = self.access.readable(user, cube_ids)
        return self.catalog.conversations(cubes) if cubes else []

    def clear_chat_history(self, actor_id: str, conversation_id: str | None = None, *,
                           cube_id: str | None = None, user_id: str | None = None) -> int:
        """Delete stored messages (memories made from them stay) of one conversation or all (None), in one
        cube or all the user owns (None); returns how many. An id no conversation can have (empty, blank,
        over 128 characters: ``checks.check_id``) is InvalidRequest."""
        if conversation_id is not None:  # "" is never "every conversation"; no stored id is blank or odd
            check_id("conversation_id", conversation_id)
        user = self.access.acting_as(self.access.user(actor_id), user_id)
        self.access.require_writer(user)
        cubes = ([self.access.cube(user, cube_id, Permission.WRITE).cube_id] if cube_id is not None else
                 [c.cube_id for c in self.catalog.cubes_of(user.user_id) if c.owner_id == user.user_id])
        with self.write_lock:
            return self.catalog.delete_messages(cubes, conversation_id) if cubes else 0
