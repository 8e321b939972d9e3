"""The directory: users, cubes and shares. Each operation is made by an acting user and checked by
access control; API keys (``core.keys``) build on it."""

from __future__ import annotations

import uuid

import sqlalchemy as sa

from memos_mcp.core.access import AccessControl
from memos_mcp.core.checks import MAX_KEY_CHARS, check_id, check_length, check_storable
from memos_mcp.core.context import Room
from memos_mcp.core.models import Cube, Permission, Role, Share, ShareState, User, utcnow
from memos_mcp.core.stores.vector import MemoryFilter
from memos_mcp.core.text import is_blank
from memos_mcp.errors import Conflict, InvalidRequest, NotFound, StorageError

ROOT_USER = "root"


DEFAULT_CUBE_SUFFIX = "_default_cube"  # a user's default cube is <user_id>_default_cube, and only it


def default_cube_id(user_id: str) -> str:
    """The id of ``user_id``'s default cube."""
    return f"{user_id}{DEFAULT_CUBE_SUFFIX}"


def check_new_cube_id(cube_id: str, owner_id: str) -> None:
    """Raise ``InvalidRequest`` naming ``cube_id`` unless it may name a new cube of ``owner_id``: a valid
    id, and not another user's default cube id (``<user_id>_default_cube``: a user made later would find
    its id taken, and its writes naming it would reach the cube of whoever made it, once offered)."""
    check_id("cube_id", cube_id)
    own_default = default_cube_id(owner_id)
    if cube_id.endswith(DEFAULT_CUBE_SUFFIX) and cube_id != own_default:
        raise InvalidRequest(f"cube ids ending in {DEFAULT_CUBE_SUFFIX!r} are kept for users' default cubes "
                             f"({owner_id}'s is {own_default!r})", field="cube_id")


class Directory(Room):
    """Users, their cubes and the shares between them."""

    # --- users ---------------------------------------------------------------------------------
    def _new_user(self, user_id: str, user_name: str | None, role: Role) -> tuple[User, Cube]:
        now = utcnow()
        user = User(user_id=user_id, user_name=user_name or user_id, role=role, created_at=now)
        cube_id = default_cube_id(user_id)
        if self.catalog.get_cube(cube_id) is not None:  # made by an earlier version, before ids were kept
            cube_id = f"{cube_id}_{uuid.uuid4().hex[:8]}"
        cube = Cube(cube_id=cube_id, name=f"{user.user_name[:MAX_KEY_CHARS - 11]}'s memories", owner_id=user_id,
                    created_at=now, is_default=True)
        self.catalog.create_user_with_cube(user, cube)
        return user, cube

    def ensure_user(self, user_id: str, role: Role = Role.USER) -> User:
        """The user, created with its default cube on first use (the operator's own entry points:
        the CLI and the stdio server's configured user). Processes sharing a database may ensure one
        user at the same moment: each gets the one user made. ``StorageError`` if the catalog fails."""
        with self.write_lock:
            user = self.catalog.get_user(check_id("user_id", user_id))
            if user is not None:
                return user
            try:
                return self._new_user(user_id, None, role)[0]
            except StorageError as exc:
                # another process sharing the database made the user meanwhile (both starting at once):
                # its insert won, ours was rolled back whole; the user is there either way
                user = self.catalog.get_user(user_id) if isinstance(exc.__cause__, sa.exc.IntegrityError) else None
                if user is None:
                    raise
                return user

    def register_user(self, actor_id: str, user_id: str | None = None, user_name: str | None = None,
                      role: Role = Role.USER) -> tuple[User, Cube]:
        actor = self.access.user(actor_id)
        self.access.require_admin(actor, "register users")
        self.access.require_rank(actor, role, f"register a user with the {role.value} role")
        user_id = check_id("user_id", user_id or str(uuid.uuid4()))
        if user_name is not None:
            check_length(check_storable(user_name, "user_name"), "user_name", MAX_KEY_CHARS)
        with self.write_lock:
            if self.catalog.get_user(user_id) is not None:
                raise Conflict(f"user '{user_id}' already exists", user_id=user_id)
            return self._new_user(user_id, user_name, role)

    def get_user(self, actor_id: str, user_id: str | None = None) -> tuple[User, list[Cube]]:
        user = self.access.acting_as(self.access.user(actor_id), user_id)
        return user, self.list_cubes(user.user_id)

    def list_users(self, actor_id: str) -> list[User]:
        self.access.require_admin(self.access.user(actor_id), "list users")
        return self.catalog.list_users()

    # --- cubes ---------------------------------------------------------------------------------
    def create_cube(self, actor_id: str, name: str, cube_id: str | None = None,
                    owner_id: str | None = None) -> Cube:
        owner = self.access.acting_as(self.access.user(actor_id), owner_id)
        self.access.require_writer(owner)
        if is_blank(name):
            raise InvalidRequest("a cube needs a name", field="name")
        check_length(check_storable(name, "name").strip(), "name", MAX_KEY_CHARS)
        if cube_id is None:
            cube_id = str(uuid.uuid4())
        else:
            check_new_cube_id(cube_id, owner.user_id)
        # the owner's own default id makes its default cube again (after it was deleted, writes naming no
        # cube had nowhere to go)
        default = cube_id == default_cube_id(owner.user_id) and self.catalog.default_cube_of(owner.user_id) is None
        cube = Cube(cube_id=cube_id, name=name.strip(),
                    owner_id=owner.user_id, created_at=utcnow(), permission="owner", is_default=default)
        with self.write_lock:
            if self.catalog.get_cube(cube.cube_id) is not None:
                raise Conflict(f"cube '{cube.cube_id}' already exists", cube_id=cube.cube_id)
            self.catalog.create_cube(cube)
        return cube

    def list_cubes(self, actor_id: str, user_id: str | None = None) -> list[Cube]:
        user = self.access.acting_as(self.access.user(actor_id), user_id)
        return [AccessControl.seen_by(user, c, AccessControl.access(user, c))
                for c in self.catalog.cubes_of(user.user_id)]

    def get_cube(self, actor_id: str, cube_id: str) -> Cube:
        return self.access.cube(self.access.user(actor_id), cube_id, Permission.READ)

    def delete_cube(self, actor_id: str, cube_id: str) -> None:
        actor = self.access.user(actor_id)
        cube = self.access.manage(actor, cube_id)
        with self.write_lock:
            # The memories first, whole across a crash; then what another replica added meanwhile.
            self.stores.empty_cube(cube.cube_id, actor.user_id)
            self.ready().delete_where(MemoryFilter(cube_ids=(cube.cube_id,), status=()))
            self.catalog.delete_cube(cube.cube_id)

    def share_cube(self, actor_id: str, cube_id: str, target_user_id: str,
                   permission: Permission = Permission.READ) -> Cube:
        """Offer the cube to another user (or change the permission of a share). The share stays
        ``pending`` until the recipient accepts it: until then it reaches only the recipient's calls
        that name the cube, never their default scope. The answer (the cube, with its accepted
        shares) is the same whether or not ``target_user_id`` exists: sharing cannot probe user ids."""
        cube = self.access.manage(self.access.user(actor_id), cube_id)
        check_id("target_user_id", target_user_id)
        if target_user_id == cube.owner_id:
            raise InvalidRequest(f"user '{target_user_id}' already owns cube '{cube_id}'", field="target_user_id")
        with self.write_lock:
            self.access.manage(self.access.user(actor_id), cube_id)  # still there: a delete may have come between
            if self.catalog.get_user(target_user_id) is not None:
                self.catalog.share_cube(cube.cube_id, target_user_id, permission, utcnow())
        return self.access.cube(self.access.user(actor_id), cube_id, Permission.READ)

    def unshare_cube(self, actor_id: str, cube_id: str, target_user_id: str) -> None:
        cube = self.access.manage(self.access.user(actor_id), cube_id)
        with self.write_lock:  # an add of the user's that checked its share before this writes before it
            self.catalog.unshare_cube(cube.cube_id, target_user_id)

    def list_shares(self, actor_id: str, state: ShareState | None = None) -> list[Share]:
        """The cubes offered to (``pending``) or shared with (``accepted``) the actor."""
        return self.catalog.shares_of(self.access.user(actor_id).user_id, state)

    def accept_share(self, actor_id: str, cube_id: str) -> Cube:
        """Accept a share offered to the actor: the cube joins its default scope (searches, lists)."""
        user = self.access.user(actor_id)
        if not self.catalog.accept_share(cube_id, user.user_id):
            raise NotFound("share of cube", cube_id, "List the shares offered to you with list_shares.")
        return self.access.cube(user, cube_id, Permission.READ)

    def decline_share(self, actor_id: str, cube_id: str) -> None:
        """Decline (or leave) a share: the actor loses all access the share gave."""
        user = self.access.user(actor_id)
        if not self.catalog.unshare_cube(cube_id, user.user_id):
            raise NotFound("share of cube", cube_id, "List the shares offered to you with list_shares.")

