"""Who may do what: enforced here, in the core, for every transport.

Roles rank ``guest`` < ``user`` < ``admin`` < ``root``. Owners read and write their cubes; a share
grants ``read`` or ``write`` (an offered share reaches only calls that name the cube until its
recipient accepts it); root and admin users may act on the cubes of users not above them (an admin
never on root's) and on those users; a guest only reads. Nobody grants a role, or acts for a user,
above their own. An unknown user or cube is ``NotFound``; a known cube the caller may not use is
``Forbidden``; a memory in a cube the caller cannot read is reported as not found, so that ids never
leak across users.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from memos_mcp.core.models import Cube, Permission, Role, User
from memos_mcp.core.stores.catalog import Catalog
from memos_mcp.errors import Forbidden, InvalidRequest, NotFound

Access = Literal["owner", "admin", "write", "read"]
_WRITERS: tuple[Access, ...] = ("owner", "admin", "write")
_LIST_CUBES = "Call list_cubes to see the cubes you can use."
RANK = {Role.GUEST: 0, Role.USER: 1, Role.ADMIN: 2, Role.ROOT: 3}


def outranks(role: Role, actor: User) -> bool:
    """Whether ``role`` lies above the actor's own (root is above every other role)."""
    return RANK[role] > RANK[actor.role]


def named(cube_id: str) -> str:
    """``cube_id`` unless it is empty, which is InvalidRequest: an empty id is never read as "every cube"
    or "any cube"."""
    if cube_id == "":
        raise InvalidRequest("cube_id is empty: name a cube, or leave it out", field="cube_id")
    return cube_id


class AccessControl:
    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog

    def user(self, user_id: str) -> User:
        user = self.catalog.get_user(user_id)
        if user is None:
            raise NotFound("user", user_id, "Register it first (register_user).")
        return user

    def acting_as(self, actor: User, user_id: str | None) -> User:
        """The user an operation is for: the actor itself, or another user if the actor is admin."""
        if user_id == "":
            raise InvalidRequest("user_id is empty: name a user, or leave it out to act as yourself", field="user_id")
        if user_id is None or user_id == actor.user_id:
            return actor
        if not actor.is_admin:
            raise Forbidden(f"user '{actor.user_id}' may not act for user '{user_id}'",
                            actor=actor.user_id, user_id=user_id)
        user = self.user(user_id)
        self.require_rank(actor, user.role, f"act for user '{user_id}'")
        return user

    @staticmethod
    def access(user: User, cube: Cube) -> Access | None:
        if cube.owner_id == user.user_id:
            return "owner"
        if user.is_admin and (cube.owner_role is None or not outranks(cube.owner_role, user)):
            return "admin"
        granted = cube.shared_with.get(user.user_id) or cube.offered_to.get(user.user_id)
        return None if granted is None else ("write" if granted is Permission.WRITE else "read")

    @classmethod
    def may_write(cls, user: User, cube: Cube) -> bool:
        return user.role is not Role.GUEST and cls.access(user, cube) in _WRITERS

    def cube(self, user: User, cube_id: str, need: Permission) -> Cube:
        """The cube ``cube_id`` with the user's access on it (``permission``) if it has ``need``. Raises
        InvalidRequest for an empty id (never read as "every cube"), NotFound, Forbidden."""
        cube = self.catalog.get_cube(named(cube_id))
        if cube is None:
            raise NotFound("cube", cube_id, _LIST_CUBES)
        level = self.access(user, cube)
        if level is not None and need is Permission.WRITE:
            self.require_writer(user)
        if level is None or (need is Permission.WRITE and level not in _WRITERS):
            raise Forbidden(f"user '{user.user_id}' has no {need.value} access to cube '{cube_id}'. {_LIST_CUBES}",
                            cube_id=cube_id, user_id=user.user_id, need=need.value)
        return self.seen_by(user, cube, level)

    @staticmethod
    def seen_by(user: User, cube: Cube, level: Access | None) -> Cube:
        """``cube`` as ``user`` (whose access is ``level``) is shown it: with ``permission``, and its shares
        whole to those who manage it (owner, admin) and to anyone else only their own (who else reads a
        cube, and with what permission, is its owner's to know)."""
        shares = cube.shared_with if level in ("owner", "admin") else {
            u: p for u, p in cube.shared_with.items() if u == user.user_id}
        return cube.model_copy(update={"permission": level, "shared_with": shares})

    def manage(self, user: User, cube_id: str) -> Cube:
        """Deleting and sharing a cube need its owner or an admin."""
        cube = self.cube(user, cube_id, Permission.READ)
        if cube.permission not in ("owner", "admin"):
            raise Forbidden(f"only the owner of cube '{cube_id}' or an admin may manage it", cube_id=cube_id)
        self.require_writer(user)
        return cube

    def readable(self, user: User, cube_ids: Sequence[str] | None) -> list[str]:
        """The named cubes (each checked), or every cube the user owns or has accepted a share of."""
        if cube_ids:
            return [self.cube(user, c, Permission.READ).cube_id for c in dict.fromkeys(cube_ids)]
        return [c.cube_id for c in self.catalog.cubes_of(user.user_id)]

    def writable(self, user: User, cube_id: str | None) -> Cube:
        """The named cube (checked for write) or, for None, the user's default cube. An empty name is
        refused (``InvalidRequest``): a write must not land in the default cube by a client's slip."""
        if cube_id == "":
            raise InvalidRequest("cube_id is empty: name a cube, or leave it out for your default cube",
                                 field="cube_id")
        if cube_id is not None:
            return self.cube(user, cube_id, Permission.WRITE)
        self.require_writer(user)
        cube = self.catalog.default_cube_of(user.user_id)
        if cube is None:
            raise NotFound("default cube of user", user.user_id, "Create a cube with create_cube.")
        return cube.model_copy(update={"permission": "owner"})

    def require_admin(self, user: User, what: str) -> None:
        if not user.is_admin:
            raise Forbidden(f"only root or admin users may {what}", actor=user.user_id)

    @staticmethod
    def require_writer(user: User) -> None:
        """Guests only read: every change (memories, cubes, shares, conversations) is refused to them."""
        if user.role is Role.GUEST:
            raise Forbidden(f"user '{user.user_id}' is a guest: guests may only read", actor=user.user_id)

    @staticmethod
    def require_rank(actor: User, role: Role, what: str) -> None:
        """Refuses (``Forbidden``) what would give the actor a role above its own: a key for, a user
        with, or acting for such a role."""
        if outranks(role, actor):
            raise Forbidden(f"user '{actor.user_id}' ({actor.role.value}) may not {what}: that needs the "
                            f"{role.value} role or above", actor=actor.user_id, role=role.value)
