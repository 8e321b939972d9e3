"""The ``memos-mcp`` command. Output meant for people goes to stderr unless it is the command's
product (an export, a listing); logs always go to stderr."""

from __future__ import annotations

import argparse
import gc
import json
import logging
import os
import re
import signal
import sys
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from pydantic import ValidationError

from memos_mcp import __version__
from memos_mcp.config import ServerSettings, Settings, load_settings
from memos_mcp.errors import ConfigError, InvalidRequest, MemosError, StorageError, first_problem
from memos_mcp.setup_clients import CLIENTS

if TYPE_CHECKING:
    from memos_mcp.core.service import MemoryService

log = logging.getLogger("memos_mcp")


def _directory(text: str) -> Path:
    if not text.strip():  # Path("") is the working directory: a store would be made wherever one stands
        raise argparse.ArgumentTypeError("empty: give a directory, or leave the flag out for ~/.memos-mcp")
    return Path(text)


def _global_flags() -> argparse.ArgumentParser:
    """The flags every command takes, before or after its name (``memos-mcp serve --data-dir D``).
    Their default is "not given", so that a flag after the command does not wipe one before it."""
    flags = argparse.ArgumentParser(add_help=False, argument_default=argparse.SUPPRESS)
    flags.add_argument("--config", type=Path, help="YAML configuration file (also MEMOS_CONFIG)")
    flags.add_argument("--data-dir", type=_directory, help="data directory (also MEMOS_DATA_DIR)")
    flags.add_argument("--log-level", help="DEBUG, INFO, WARNING, ERROR or CRITICAL (logs go to stderr)")
    return flags


def _parser() -> argparse.ArgumentParser:
    flags = _global_flags()
    parser = argparse.ArgumentParser(prog="memos-mcp", description="Long-term memory server for LLM agents.",
                                     parents=[flags])
    parser.add_argument("--version", action="version", version=f"memos-mcp {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    stdio = _command(commands, flags, "stdio", help="serve MCP over standard input/output as the default user")
    stdio.add_argument("--read-only", action="store_true", default=None, help="offer no writing tools")

    serve = _command(commands, flags, "serve", help="serve MCP (/mcp, /sse), /health and the admin routes over HTTP")
    serve.add_argument("--host", help="address to bind (default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port to bind (default 8000; 0 picks a free one, logged)")
    serve.add_argument("--read-only", action="store_true", default=None, help="offer no writing tools")
    serve.add_argument("--stateless", action="store_true", default=None,
                       help="every streamable HTTP request stands alone (several servers behind a load balancer)")
    serve.add_argument("--allow-unauthenticated", action="store_true", default=None,
                       help="allow a non-loopback host without any API key (a proxy in front authenticates)")

    keys = _command(commands, flags, "keys", help="create, list and revoke API keys")
    key_commands = keys.add_subparsers(dest="keys", required=True, metavar="ACTION")
    create = _command(key_commands, flags, "create", help="create a key (printed once on standard output)")
    create.add_argument("--user", required=True, help="the user the key acts as (created if new)")
    create.add_argument("--role", choices=["admin", "user", "guest"],
                        help="role of the user if it is created (default user); an existing user's role "
                        "is kept, so another one is refused")
    _command(key_commands, flags, "list", help="list keys (never the keys themselves)")
    revoke = _command(key_commands, flags, "revoke", help="revoke a key")
    revoke.add_argument("key_id")

    _command(commands, flags, "doctor", help="show the effective configuration and check every backend")

    imp = _command(commands, flags, "import", help="import a JSONL export, a conversation JSON or a document")
    imp.add_argument("file", type=Path)
    imp.add_argument("--user", required=True, help="the user the memories belong to (created if new)")
    imp.add_argument("--cube", help="target cube (created for the user if new; default: the user's default cube)")
    imp.add_argument("--conversation", help="conversation id for a conversation JSON (default: the file name)")

    exp = _command(commands, flags, "export", help="export a cube as JSONL")
    exp.add_argument("--cube", required=True)
    exp.add_argument("--out", type=Path, help="file to write (default: standard output)")

    mig = _command(commands, flags, "migrate", help="copy this data directory into PostgreSQL to run it as a shared "
                   "service", description=_MIGRATE_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    mig.add_argument("--to", required=True, metavar="URL", help="the PostgreSQL database for the catalog and the "
                     "graph: postgresql://user:password@host:5432/db (serve it with MEMOS_CATALOG__URL=URL)")
    mig.add_argument("--vector-url", metavar="URL", help="the PostgreSQL database (with pgvector) for the vectors "
                     "(default: --to; serve it with MEMOS_VECTOR__URL=URL)")
    mig.add_argument("--force", action="store_true", help="let the source's records replace different ones the "
                     "target holds under the same ids (the target's other records are kept)")
    mig.add_argument("--batch-size", type=int, default=500, help="records per transaction (default 500)")
    mig.add_argument("--json", action="store_true", help="print the summary as JSON")

    _command(commands, flags, "users", help="list users")
    cubes = _command(commands, flags, "cubes", help="list cubes")
    cubes.add_argument("--user", help="only this user's cubes")
    _command(commands, flags, "stats", help="counts and store sizes")
    _command(commands, flags, "reindex", help="give memories stored by an earlier version what this version's "
             "index keeps (long memories' sentence-window vectors); idempotent", description=_REINDEX_HELP,
             formatter_class=argparse.RawDescriptionHelpFormatter)

    _command(commands, flags, "reembed", help="move this data directory to the embedding model configured now "
             "(every memory's vectors made again); resumable", description=_REEMBED_HELP,
             formatter_class=argparse.RawDescriptionHelpFormatter)

    bench = _command(commands, flags, "bench", help="benchmarks")
    which = bench.add_subparsers(dest="bench", required=True, metavar="BENCHMARK")
    locomo = _command(which, flags, "locomo", help="LoCoMo evidence recall, latency, ingest rate")
    locomo.add_argument("--data", type=Path, required=True, help="a LoCoMo-format JSON file")
    locomo.add_argument("--out", type=Path, help="folder for results.md and results.json")
    locomo.add_argument("--samples", type=int, help="only the first N samples")
    locomo.add_argument("--audit", type=Path, help="an audit of the answer key whose correct_evidence replaces "
                        "the cited evidence (records with question_id locomo_<sample>_qa<question>)")
    locomo.add_argument("--as", dest="modes", action="append", choices=("conversations", "facts"),
                        help="how turns are added: conversations (one add per session, the default) or facts "
                        "(one memory_content 'Speaker: text' add per turn); give it twice to run both")

    setup = _command(commands, flags, "setup", help="print or write the entry an MCP client needs to launch this "
                                "installation")
    setup.add_argument("client", choices=sorted(CLIENTS), help="the MCP client")
    mode = setup.add_mutually_exclusive_group()
    mode.add_argument("--print", dest="write", action="store_false", default=False,
                      help="print the entry as a configuration snippet on standard output (the default)")
    mode.add_argument("--write", dest="write", action="store_true",
                      help="merge the entry into the client's configuration file (other servers are kept; "
                      "the previous file is kept as FILE.bak)")
    setup.add_argument("--file", type=Path, help="the configuration file to write (default: the client's "
                       "user-level file in its usual place on this system)")
    setup.add_argument("--name", default="memos", help="the server's name in the client (default memos)")
    setup.add_argument("--user", help="the user the client acts as (default: default_user_id)")
    setup.add_argument("--http", metavar="URL", help="print the remote form for a server at URL (streamable "
                       "HTTP with a placeholder API key) instead of launching this installation")
    return parser


def _command(group: Any, flags: argparse.ArgumentParser, name: str, **kwargs: Any) -> argparse.ArgumentParser:
    """Command ``name`` in ``group`` (an argparse sub-parsers action), taking the global ``flags`` too."""
    parser: argparse.ArgumentParser = group.add_parser(name, parents=[flags], **kwargs)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    # Logs go to stderr from the first line on: over stdio, stdout carries JSON-RPC only.
    logging.basicConfig(stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    args = _parser().parse_args(argv)
    try:
        settings = load_settings(getattr(args, "config", None), data_dir=getattr(args, "data_dir", None),
                                 log_level=getattr(args, "log_level", None))
        logging.getLogger().setLevel(settings.log_level)
        handler: Callable[[argparse.Namespace, Settings], int] = _COMMANDS[args.command]
        return handler(args, settings)
    except MemosError as exc:
        # one line, whatever the message holds (a driver's error adds hint lines)
        print(f"memos-mcp: error [{exc.code}]: {' '.join(exc.message.split())}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


@contextmanager
def _service(settings: Settings, allow_read_only: bool = False, existing: str | None = None,
             memories: bool = False) -> Iterator[Any]:
    """The service over the data directory; a command that only reads passes ``allow_read_only`` to
    work from a data directory that may not be written (a read-only mount or snapshot). A command that
    works on a store it must not make passes ``existing`` (what it does, for the hint; ``memories`` when
    it reads them): stores that hold none are then refused (``factory.require_existing``:
    ``InvalidRequest`` naming the setting, nothing created), so a mistyped ``--data-dir`` or database URL
    is an error instead of a new, empty store."""
    from memos_mcp.core.factory import require_existing
    from memos_mcp.core.service import MemoryService

    if existing:
        require_existing(settings, existing, memories)
    service = MemoryService.open(settings, allow_read_only=allow_read_only)
    try:
        yield service
    finally:
        service.close()


@contextmanager
def _progress(total: int, unit: str) -> Iterator[Callable[[int, int], None]]:
    from tqdm import tqdm

    with tqdm(total=total, unit=unit, file=sys.stderr, disable=None, dynamic_ncols=True) as bar:
        def update(done: int, of: int) -> None:
            bar.total = of
            bar.update(done - bar.n)
        yield update


def _print_json(value: Any) -> None:
    print(json.dumps(value, indent=2, ensure_ascii=False, default=str))


def _doctor(args: argparse.Namespace, settings: Settings) -> int:
    from memos_mcp.doctor import run_checks

    return run_checks(settings)


def _import(args: argparse.Namespace, settings: Settings) -> int:
    from memos_mcp.importer import import_file, require_file

    require_file(args.file)  # before the store is opened: a mistyped path makes nothing
    with _service(settings) as service, _progress(0, "item") as progress:
        summary = import_file(service, args.file, args.user, args.cube, args.conversation, progress)
    _print_json(summary)
    return 0


def _export(args: argparse.Namespace, settings: Settings) -> int:
    from memos_mcp.core.portability import export_cube
    from memos_mcp.core.service import ROOT_USER
    from memos_mcp.files import rename_target

    with _service(settings, allow_read_only=True, existing="to export from", memories=True) as service:
        lines = export_cube(service, ROOT_USER, args.cube)
        header = next(lines)  # looks the cube up before any output file is touched
        total = json.loads(header)["memories"]
        # A file is written beside its place and renamed when whole: a failed export (a full disk)
        # leaves no partial file that could pass for a backup. A device or a FIFO is written in place.
        target = rename_target(args.out) if args.out else None
        partial = target.with_name(f".{target.name}.partial") if target else None
        try:
            out = (partial or args.out).open("w", encoding="utf-8") if args.out else sys.stdout
            try:
                out.write(header + "\n")
                with _progress(total, "memory") as progress:
                    for count, line in enumerate(lines, start=1):
                        out.write(line + "\n")
                        progress(count, max(count, total))
            finally:
                if args.out:
                    out.close()
            if partial and target:
                partial.replace(target)
        except OSError as exc:
            if partial:
                partial.unlink(missing_ok=True)
            raise StorageError(f"cannot write the export to {args.out or 'standard output'}: "
                               f"{exc.strerror or exc}", path=str(args.out or "-")) from exc
    return 0


_MIGRATE_HELP = """\
Copy the data directory (its SQLite catalog, its qdrant-edge or qdrant-client vectors and its SQLite
graph) into PostgreSQL: the catalog's tables (schema upgraded to the newest revision first), the
vectors into the pgvector table vectors_<collection> (as stored: nothing is embedded again) and the
graph into its graph_* tables. Users, cubes, shares, API keys (their hashes), conversations, history
and tasks come along with their ids. Then serve it, from as many replicas as needed, with
  MEMOS_CATALOG__URL=URL MEMOS_VECTOR__BACKEND=pgvector memos-mcp serve

The data directory is only read, under its lock: stop the server using it first (exit 2 naming the
lock otherwise). Each batch is one transaction upserted by id, so the command may be run again, after
a failure or a kill, and ends with exactly one copy of everything; at the end each table's count is
checked (exit 1 naming what differs). A target that already holds other data (a different record
under a source id, or records the source lacks) is refused before anything is written (exit 2)
unless --force, which lets the source's records replace those under the same ids and keeps the rest.
A target holding vectors of another embedding model or dimension is always refused.

A progress bar per table goes to stderr (on a terminal); the summary to stdout (JSON with --json)."""


def _migrate(args: argparse.Namespace, settings: Settings) -> int:
    from memos_mcp.migrate.run import Options, migrate

    report = migrate(settings, Options(args.to, args.vector_url, args.force, args.batch_size))
    if args.json:
        _print_json(report.model_dump(mode="json"))
    else:
        for name, kind in report.kinds.items():
            print(f"{name}: {kind.source} in the source, {kind.target} in the target "
                  f"({kind.written} written, {kind.unchanged} already there)")
        print(f"{report.kinds['vectors'].source if 'vectors' in report.kinds else 0} memories in {report.seconds} s "
              f"({report.memories_per_second}/s) into {report.catalog}")
    for difference in report.differs:
        print(f"memos-mcp: error [count_mismatch]: {difference}", file=sys.stderr)
    return 0 if report.ok else 1


def _users(args: argparse.Namespace, settings: Settings) -> int:
    from memos_mcp.core.service import ROOT_USER

    with _service(settings, allow_read_only=True, existing="to list") as service:
        _print_json([u.model_dump(mode="json") for u in service.list_users(ROOT_USER)])
    return 0


def _cubes(args: argparse.Namespace, settings: Settings) -> int:
    with _service(settings, allow_read_only=True, existing="to list") as service:
        cubes = service.list_cubes(args.user) if args.user else service.catalog.list_cubes()
        _print_json([c.model_dump(mode="json") for c in cubes])
    return 0


_REINDEX_HELP = """\
Give the memories an earlier version stored what this version keeps beside them: the sentence-window
vectors of long memories (a search that finds a long memory without them embeds its windows then, up
to 68 ms). Memories that have them, made for their text, are skipped: running it again, or after it
was stopped, finishes the work. It needs the store to itself when the data directory is embedded (stop
the server first; exit 2 naming the lock otherwise) and a service that may write (not --read-only or
MEMOS_READ_ONLY). Beside the replicas of a shared PostgreSQL service it may run while they serve.

A progress bar goes to stderr (on a terminal); the summary to stdout, as JSON: memories (read, every
cube and status), long (of them, judged by their windows) and windowed (given vectors by this run)."""


def _reindex(args: argparse.Namespace, settings: Settings) -> int:
    from memos_mcp.core.reindex import fill_window_vectors

    with _service(settings, existing="to reindex", memories=True) as service, _progress(0, "memory") as progress:
        summary = fill_window_vectors(service, progress)
    _print_json(summary.model_dump())
    return 0


_REEMBED_HELP = """\
Move the data directory to the embedding model configured now (MEMOS_EMBEDDER__BACKEND, __MODEL,
__BASE_URL, __QUERY_PREFIX, __DOCUMENT_PREFIX): every memory's vector, and a long memory's sentence-window
vectors, are made again by that model; ids, texts, history, keyword index and graph stay as they are.

The new vectors are built in a store beside the old one (vectors.reembed/ in the data directory: room
for a second copy of vectors/ is needed), and the directory keeps its old model, whole and usable, until
all are made; then the new store replaces the old one and the directory records the new model. Stopped
part-way (Ctrl-C, killed), run it again with the same model to go on where it stopped; a server may run
with the old model in between. A swap cut short is finished by the next open of the directory.

It needs the directory to itself (stop the server first; exit 2 naming the lock otherwise) and works on
the embedded vector store only (vector.backend edge); elsewhere, export the cubes and import them into a
store configured with the new model. Exit 0 also when the directory has the model already.

A progress bar goes to stderr (on a terminal); the summary to stdout, as JSON: previous_model, model,
dimension, memories, embedded (by this run), kept (made by an earlier run), dropped (deleted since an
earlier run), swapped, index_built."""


def _reembed(args: argparse.Namespace, settings: Settings) -> int:
    from memos_mcp.core.reembed import reembed

    with _progress(0, "memory") as progress:
        summary = reembed(settings, progress)
    _print_json(summary.model_dump())
    return 0


def _stats(args: argparse.Namespace, settings: Settings) -> int:
    with _service(settings, allow_read_only=True, existing="to read", memories=True) as service:
        _print_json(service.stats())
    return 0


def _require_extra(extra: str) -> None:
    """Raise ConfigError naming ``pip install 'memos-mcp[EXTRA]'`` unless every distribution that memos-mcp's
    ``extra`` requires is installed (checked before any work starts, not when the first import fails)."""
    from importlib import metadata

    try:
        requirements = metadata.requires("memos-mcp") or []
    except metadata.PackageNotFoundError:  # run from a source tree that was never installed: nothing to read
        return
    marker = re.compile(rf"""extra\s*==\s*["']{re.escape(extra)}["']""")
    for requirement in requirements:
        if not marker.search(requirement):
            continue
        name = re.match(r"[A-Za-z0-9._-]+", requirement)
        try:
            metadata.distribution(name.group(0) if name else requirement)
        except metadata.PackageNotFoundError:
            raise ConfigError(f"this command needs the {extra} extra ({requirement.split(';')[0].strip()} is not "
                              f"installed): pip install 'memos-mcp[{extra}]'", extra=extra) from None


def _bench(args: argparse.Namespace, settings: Settings) -> int:
    _require_extra("bench")
    from memos_mcp.bench.locomo import run_locomo

    code: int = run_locomo(settings, args.data, args.out, args.samples, args.audit,
                           tuple(args.modes or ("conversations",)))
    return code


def _admin_key(settings: Settings) -> str | None:
    return settings.server.admin_key.get_secret_value() if settings.server.admin_key else None


@contextmanager
def _stdout_kept_for_json_rpc() -> Iterator[Callable[[], AbstractContextManager[None]]]:
    """Point file descriptor 1 at stderr, so that nothing a library prints, from Python or from C,
    reaches the JSON-RPC channel. Inside the returned context fd 1 is the channel again for the
    SDK's stdio transport, which claims it at once and diverts fd 1 to stderr itself while serving."""
    sys.stdout.flush()
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]  # a stray print never waits in a buffer
    channel = os.dup(1)
    os.dup2(2, 1)

    @contextmanager
    def serving() -> Iterator[None]:
        sys.stdout.flush()
        os.dup2(channel, 1)
        try:
            yield
        finally:
            os.dup2(2, 1)

    try:
        yield serving
    finally:
        os.dup2(channel, 1)
        os.close(channel)


_STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


def _exit_on_signal(signum: int, frame: object = None) -> None:
    raise SystemExit(128 + signum)


WARM_UP_WAIT = 30.0  # seconds stdio's shutdown waits for the stores' open and the model's load to end


def _exit_on_signals() -> None:
    """Outside the event loop: a stop signal unwinds the main thread, so that the service is closed.
    (asyncio's own SIGINT handling would wait for stdin.)"""
    for signum in _STOP_SIGNALS:
        signal.signal(signum, _exit_on_signal)


async def _run_until_signal(run: Callable[[], Awaitable[None]], on_stop: Callable[[], None]) -> None:
    """Inside the event loop a stop signal is a loop callback, never an exception raised in whichever
    task the main thread was running (the SDK's task groups would wrap it, and log it as a crash): the
    callback calls ``on_stop`` (calls waiting in worker threads must end: the loop's close waits for
    them), then its SystemExit leaves the loop itself, as asyncio lets it. The loop's close removes these."""
    import asyncio

    def stop(signum: int) -> None:
        on_stop()
        _exit_on_signal(signum)

    loop = asyncio.get_running_loop()
    for signum in _STOP_SIGNALS:
        loop.add_signal_handler(signum, stop, signum)
    await run()


def _stdio(args: argparse.Namespace, settings: Settings) -> int:
    _exit_on_signals()
    try:
        return _serve_stdio(args, settings)
    except SystemExit as stop:
        # A signal, and the service is closed. The SDK's stdin reader, a worker thread that is not a
        # daemon, still waits for a line of a stdin the client may hold open (MCP clients send SIGTERM
        # when closing stdin did not end the server; docker stop and systemd keep it open): the
        # interpreter's exit would wait for it forever, so the process ends here.
        logging.shutdown()
        sys.stderr.flush()
        os._exit(stop.code if isinstance(stop.code, int) else 1)


@contextmanager
def _collection_paused() -> Iterator[Callable[[], None]]:
    """Pause the cyclic garbage collector until the block ends or the yielded callable is called.
    stdio's start (importing the SDK, building the tools) allocates much and frees little: collecting
    meanwhile took about a seventh of the CPU time before the ``initialize`` reply."""
    was_enabled = gc.isenabled()
    gc.disable()

    def resume() -> None:
        if was_enabled:
            gc.enable()
    try:
        yield resume
    finally:
        resume()


def _serve_stdio(args: argparse.Namespace, settings: Settings) -> int:
    with _stdout_kept_for_json_rpc() as serving, _collection_paused() as resume_collection:
        import anyio

        from memos_mcp.core.keys import KeyRing
        from memos_mcp.core.lazy_service import LazyService
        from memos_mcp.core.stores.data_dir import claim_data_dir
        from memos_mcp.mcp.server import build_server

        read_only = bool(args.read_only or settings.read_only)
        settings = settings.model_copy(update={"read_only": read_only})
        # A locked, read-only or full data directory fails here, in one line; the stores open after
        # the handshake is answered (importing SQLAlchemy and opening the catalog held it up).
        claim = claim_data_dir(settings, allow_read_only=read_only)

        def open_service() -> MemoryService:
            from memos_mcp.core.service import MemoryService

            return MemoryService.open(settings, allow_read_only=read_only, claim=claim)

        def prepare(service: MemoryService) -> None:
            if not service.read_only:
                service.ensure_user(settings.default_user_id)

        lazy = LazyService(open_service, claim, prepare)
        service = cast("MemoryService", lazy)  # the tools' service, opened at its first use

        def after_handshake() -> None:  # collections resume, the stores open and the model loads
            resume_collection()
            lazy.warm_up()

        try:
            server = build_server(service, KeyRing(service, _admin_key(settings)), settings.default_user_id,
                                  read_only, after_handshake=after_handshake)
            with serving():
                try:
                    anyio.run(_run_until_signal, server.run_stdio_async, lazy.stop)  # returns when stdin closes
                finally:
                    _exit_on_signals()  # again, for the service's close
            log.info("stdin closed; shutting down")
        finally:
            lazy.close(WARM_UP_WAIT)
    return 0


_SERVE_FLAGS = {"host": "--host", "port": "--port", "stateless_http": "--stateless",
                "allow_unauthenticated": "--allow-unauthenticated"}


def _server_settings(settings: Settings, args: argparse.Namespace) -> ServerSettings:
    """The server block with serve's flags over it, validated as the block itself is: a flag the
    setting refuses (``--port 70000``) is ``InvalidRequest`` naming the flag, before anything opens."""
    given = {name: getattr(args, flag.removeprefix("--").replace("-", "_")) for name, flag in _SERVE_FLAGS.items()}
    given = {name: value for name, value in given.items() if value is not None}
    try:
        return ServerSettings.model_validate({**settings.server.model_dump(), **given})
    except ValidationError as exc:
        where, problem = first_problem(exc)
        raise InvalidRequest(f"{_SERVE_FLAGS.get(where, where)} {given.get(where)}: {problem}", field=where) from exc


def _serve(args: argparse.Namespace, settings: Settings) -> int:
    server = _server_settings(settings, args)
    settings = settings.model_copy(update={"server": server, "read_only": bool(args.read_only or settings.read_only)})
    from memos_mcp.auth import check_exposure
    from memos_mcp.core.keys import KeyRing
    from memos_mcp.core.service import MemoryService
    from memos_mcp.http import build_app, serve

    service = MemoryService.open(settings, allow_read_only=settings.read_only)
    try:
        keys = KeyRing(service, _admin_key(settings))
        check_exposure(server.host, keys.enabled, server.allow_unauthenticated)
        if not service.read_only:
            service.ensure_user(settings.default_user_id)
        elif service.catalog.get_user(settings.default_user_id) is None:
            log.warning("the read-only data directory %s has no user %r: requests without a key, which act as "
                        "that user, will be refused", settings.data_dir, settings.default_user_id)
        app = build_app(settings, service, keys)  # from here on, the app's lifespan closes the service
    except BaseException:
        service.close()
        raise
    serve(app, settings)
    return 0


def _keys(args: argparse.Namespace, settings: Settings) -> int:
    from memos_mcp.core.keys import KeyRing
    from memos_mcp.core.models import Role
    from memos_mcp.core.service import ROOT_USER

    # a key is created in a new store too (served next); listing and revoking need the store they name
    with _service(settings, allow_read_only=args.keys == "list",
                  existing=None if args.keys == "create" else "whose keys to " + args.keys) as service:
        keys = KeyRing(service)
        if args.keys == "create":
            created = keys.create(ROOT_USER, args.user, Role(args.role) if args.role else None)
            print(f"created key {created.key_id} for user {created.user_id}; it is shown only this once",
                  file=sys.stderr)
            print(created.key)
        elif args.keys == "list":
            _print_json(keys.list(ROOT_USER))
        else:
            keys.revoke(ROOT_USER, args.key_id)
            print(f"revoked key {args.key_id}", file=sys.stderr)
    return 0


def _setup(args: argparse.Namespace, settings: Settings) -> int:
    from memos_mcp.setup_clients import CLIENTS, http_entry, snippet, stdio_entry, write_entry

    if args.http:
        if args.write:
            raise InvalidRequest("--http prints the remote form only (it holds a placeholder key): "
                                 "use --print", field="http")
        entry = http_entry(args.client, args.http)
    else:
        entry = stdio_entry(args.client, settings.data_dir, args.user or settings.default_user_id,
                            getattr(args, "config", None))
    if not args.write:
        _print_json(snippet(args.client, args.name, entry))
        return 0
    path = (args.file or CLIENTS[args.client].config_file()).expanduser().absolute()
    if write_entry(args.client, path, args.name, entry):
        print(f"wrote server '{args.name}' for {CLIENTS[args.client].name} into {path}", file=sys.stderr)
    else:
        print(f"{path} already holds this server '{args.name}'; nothing changed", file=sys.stderr)
    return 0


_COMMANDS: dict[str, Callable[[argparse.Namespace, Settings], int]] = {
    "doctor": _doctor, "import": _import, "export": _export, "users": _users, "cubes": _cubes,
    "stats": _stats, "reindex": _reindex, "reembed": _reembed, "bench": _bench, "stdio": _stdio, "serve": _serve,
    "keys": _keys, "setup": _setup, "migrate": _migrate,
}
