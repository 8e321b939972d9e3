"""API keys bound to users. A key is shown once when created and stored only as its SHA-256 hash
(keys are 256-bit random, so a slow password hash would add nothing). The admin key from the
environment authenticates as the root user without being stored."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid
from typing import TYPE_CHECKING

from pydantic import BaseModel

from memos_mcp.core.checks import id_key
from memos_mcp.core.models import Role, utcnow
from memos_mcp.errors import Conflict, NotFound

if TYPE_CHECKING:  # the service module imports the stores: not on stdio's way to its handshake
    from memos_mcp.core.service import MemoryService

KEY_PREFIX = "mk_"


class NewKey(BaseModel):
    key_id: str
    user_id: str
    key: str


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


class KeyRing:
    def __init__(self, service: MemoryService, admin_key: str | None = None) -> None:
        self.service = service
        self._admin_hash = hash_key(admin_key) if admin_key else None

    @property
    def enabled(self) -> bool:
        """Authentication is on as soon as any key exists."""
        return self._admin_hash is not None or bool(self.service.catalog.list_api_keys(active_only=True))

    def create(self, actor_id: str, user_id: str, role: Role | None = None) -> NewKey:
        """A new key for ``user_id`` (created with ``role``, default user, and its default cube if new).
        Admins only, and only for users whose role is not above their own (root's keys only by root): a
        key is the whole power of its user. Raises ``Forbidden``; ``Conflict`` (field ``role``) when
        ``role`` is given for an existing user who has another one, since a key never changes a role."""
        actor = self.service.access.user(actor_id)
        self.service.access.require_admin(actor, "create API keys")
        existing = self.service.catalog.get_user(user_id)
        target_role = existing.role if existing is not None else role or Role.USER
        self.service.access.require_rank(actor, target_role, f"create an API key for user '{user_id}'")
        if role is not None and role is not target_role:
            raise Conflict(f"user '{user_id}' exists with role '{target_role.value}': a key keeps its user's "
                           f"role, so role '{role.value}' is refused (leave the role out)", field="role",
                           user_id=user_id, role=target_role.value)
        self.service.ensure_user(user_id, target_role)
        key = KEY_PREFIX + secrets.token_urlsafe(32)
        key_id = uuid.uuid4().hex[:12]
        self.service.catalog.add_api_key(key_id, hash_key(key), user_id, utcnow())
        return NewKey(key_id=key_id, user_id=user_id, key=key)

    def revoke(self, actor_id: str, key_id: str) -> None:
        """Revoke a key. Admins only, and only keys of users whose role is not above their own."""
        actor = self.service.access.user(actor_id)
        self.service.access.require_admin(actor, "revoke API keys")
        key_id = id_key(key_id)
        owner = self.service.catalog.api_key_user(key_id)
        user = self.service.catalog.get_user(owner) if owner is not None else None
        if user is None:
            raise NotFound("active API key", key_id, "List keys with 'memos-mcp keys list'.")
        self.service.access.require_rank(actor, user.role, f"revoke a key of user '{user.user_id}'")
        if not self.service.catalog.revoke_api_key(key_id, utcnow()):
            raise NotFound("active API key", key_id, "List keys with 'memos-mcp keys list'.")

    def list(self, actor_id: str) -> list[dict[str, object]]:
        self.service.access.require_admin(self.service.access.user(actor_id), "list API keys")
        return self.service.catalog.list_api_keys()

    def authenticate(self, key: str) -> str | None:
        """The user a presented key belongs to, or None."""
        from memos_mcp.core.directory import ROOT_USER

        digest = hash_key(key)
        if self._admin_hash is not None and hmac.compare_digest(digest, self._admin_hash):
            return ROOT_USER
        return self.service.catalog.user_for_key_hash(digest)
