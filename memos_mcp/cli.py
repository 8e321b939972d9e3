"""The ``memos-mcp`` command. Output meant for people goes to stderr unless it is the command's
product (an export, a listing); logs always go to stderr."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from memos_mcp import __version__
from memos_mcp.config import Settings, load_settings
from memos_mcp.errors import MemosError

log = logging.getLogger("memos_mcp")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="memos-mcp", description="Long-term memory server for LLM agents.")
    parser.add_argument("--version", action="version", version=f"memos-mcp {__version__}")
    parser.add_argument("--config", type=Path, help="YAML configuration file (also MEMOS_CONFIG)")
    parser.add_argument("--data-dir", type=Path, help="data directory (also MEMOS_DATA_DIR)")
    parser.add_argument("--log-level", help="DEBUG, INFO, WARNING or ERROR (logs go to stderr)")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    commands.add_parser("doctor", help="show the effective configuration and check every backend")

    imp = commands.add_parser("import", help="import a JSONL export, a conversation JSON or a document")
    imp.add_argument("file", type=Path)
    imp.add_argument("--user", required=True, help="the user the memories belong to (created if new)")
    imp.add_argument("--cube", help="target cube (created for the user if new; default: the user's default cube)")
    imp.add_argument("--conversation", help="conversation id for a conversation JSON (default: the file name)")

    exp = commands.add_parser("export", help="export a cube as JSONL")
    exp.add_argument("--cube", required=True)
    exp.add_argument("--out", type=Path, help="file to write (default: standard output)")

    commands.add_parser("users", help="list users")
    cubes = commands.add_parser("cubes", help="list cubes")
    cubes.add_argument("--user", help="only this user's cubes")
    commands.add_parser("stats", help="counts and store sizes")

    bench = commands.add_parser("bench", help="benchmarks")
    which = bench.add_subparsers(dest="bench", required=True, metavar="BENCHMARK")
    locomo = which.add_parser("locomo", help="LoCoMo evidence recall, latency, ingest rate")
    locomo.add_argument("--data", type=Path, required=True, help="a LoCoMo-format JSON file")
    locomo.add_argument("--out", type=Path, help="folder for results.md and results.json")
    locomo.add_argument("--samples", type=int, help="only the first N samples")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        settings = load_settings(args.config, data_dir=args.data_dir, log_level=args.log_level)
        logging.basicConfig(stream=sys.stderr, level=settings.log_level.upper(),
                            format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        handler: Callable[[argparse.Namespace, Settings], int] = _COMMANDS[args.command]
        return handler(args, settings)
    except MemosError as exc:
        print(f"memos-mcp: error [{exc.code}]: {exc.message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


@contextmanager
def _service(settings: Settings) -> Iterator[Any]:
    from memos_mcp.core.service import MemoryService

    service = MemoryService.open(settings)
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
    from memos_mcp.importer import import_file

    with _service(settings) as service, _progress(0, "item") as progress:
        summary = import_file(service, args.file, args.user, args.cube, args.conversation, progress)
    _print_json(summary)
    return 0


def _export(args: argparse.Namespace, settings: Settings) -> int:
    from memos_mcp.core.portability import export_cube
    from memos_mcp.core.service import ROOT_USER

    with _service(settings) as service:
        lines = export_cube(service, ROOT_USER, args.cube)
        header = next(lines)  # looks the cube up before any output file is touched
        total = json.loads(header)["memories"]
        out = args.out.open("w", encoding="utf-8") if args.out else sys.stdout
        try:
            out.write(header + "\n")
            with _progress(total, "memory") as progress:
                for count, line in enumerate(lines, start=1):
                    out.write(line + "\n")
                    progress(count, max(count, total))
        finally:
            if args.out:
                out.close()
    return 0


def _users(args: argparse.Namespace, settings: Settings) -> int:
    from memos_mcp.core.service import ROOT_USER

    with _service(settings) as service:
        _print_json([u.model_dump(mode="json") for u in service.list_users(ROOT_USER)])
    return 0


def _cubes(args: argparse.Namespace, settings: Settings) -> int:
    with _service(settings) as service:
        cubes = service.list_cubes(args.user) if args.user else service.catalog.list_cubes()
        _print_json([c.model_dump(mode="json") for c in cubes])
    return 0


def _stats(args: argparse.Namespace, settings: Settings) -> int:
    with _service(settings) as service:
        _print_json(service.stats())
    return 0


def _bench(args: argparse.Namespace, settings: Settings) -> int:
    from memos_mcp.bench.locomo import run_locomo

    code: int = run_locomo(settings, args.data, args.out, args.samples)
    return code


_COMMANDS: dict[str, Callable[[argparse.Namespace, Settings], int]] = {
    "doctor": _doctor, "import": _import, "export": _export, "users": _users, "cubes": _cubes,
    "stats": _stats, "bench": _bench,
}
