"""Cold start of ``memos-mcp stdio`` from a wheel install: from spawning the process to its ``initialize``
reply (wall clock), and the process's own CPU time at that moment (user + system, from /proc/<pid>/stat).

    .venv/bin/python benchmarks/cold_start.py install /tmp/cold-a            # the wheel of this checkout
    .venv/bin/python benchmarks/cold_start.py install /tmp/cold-b --source /work/main
    .venv/bin/python benchmarks/cold_start.py measure /tmp/cold-a /tmp/cold-b --runs 10

``install`` builds the wheel of ``--source`` (default: this checkout) and installs it with plain
``pip install`` into VENV, a fresh virtual environment (created if missing; an existing one gets only
the package replaced, its dependencies kept). ``measure`` runs each venv's ``memos-mcp stdio --data-dir D``
RUNS times, interleaved (A, B, A, B, ...) so that every venv sees the same machine load, and prints the
median and max of each with the load average before and after. Each venv's data directory is made by
one start before the timed ones (reported apart: before the stores opened after the handshake, that
start also made them). The processes get the environment a user's shell would give: nothing of this
checkout, no MEMOS_* settings. Every wait is bounded.
"""

from __future__ import annotations

import argparse
import json
import os
import select
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TIMEOUT = 60.0
INSTALL_TIMEOUT = 1200.0
INITIALIZE = {"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
    "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "cold-start", "version": "1"}}}
TICKS = os.sysconf("SC_CLK_TCK")


def clean_env() -> dict[str, str]:
    """The environment of a user's shell: no PYTHON*, VIRTUAL_ENV or MEMOS_* variables."""
    return {k: v for k, v in os.environ.items() if not k.startswith(("MEMOS_", "PYTHON", "VIRTUAL_ENV"))}


def _run(*command: str | Path, cwd: Path) -> None:
    done = subprocess.run([str(c) for c in command], cwd=cwd, env=clean_env(), capture_output=True, text=True,
                          timeout=INSTALL_TIMEOUT, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(map(str, command))} exited {done.returncode}:\n{done.stdout}\n{done.stderr}")


def install(venv: Path, source: Path) -> float:
    """Builds ``source``'s wheel and installs it into ``venv``; the seconds the install took."""
    with tempfile.TemporaryDirectory(prefix="memos-wheel-") as dist:
        _run(sys.executable, "-m", "pip", "wheel", "--no-deps", "--wheel-dir", dist, source, cwd=Path(dist))
        wheel = next(Path(dist).glob("memos_mcp-*.whl"))
        started = time.perf_counter()
        if (venv / "bin" / "memos-mcp").exists():
            _run(venv / "bin" / "python", "-m", "pip", "install", "--quiet", "--no-deps", "--force-reinstall",
                 wheel, cwd=Path(dist))
        else:
            _run(sys.executable, "-m", "venv", venv, cwd=Path(dist))
            _run(venv / "bin" / "python", "-m", "pip", "install", "--quiet", wheel, cwd=Path(dist))
        return time.perf_counter() - started


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid`` so far, in seconds."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2:].split()  # after the command name, which may hold spaces
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime and stime: fields 14 and 15 of stat


def start_once(command: Path, data_dir: Path, work: Path) -> tuple[float, float]:
    """Spawns ``command stdio --data-dir data_dir``, sends ``initialize``; the seconds to its reply
    (wall clock) and the process's CPU seconds then. The process is ended by closing its stdin."""
    started = time.perf_counter()
    process = subprocess.Popen([str(command), "stdio", "--data-dir", str(data_dir)], cwd=work, env=clean_env(),
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert process.stdin is not None and process.stdout is not None
    try:
        process.stdin.write((json.dumps(INITIALIZE) + "\n").encode())
        process.stdin.flush()
        ready, _, _ = select.select([process.stdout], [], [], TIMEOUT)
        line = process.stdout.readline() if ready else b""
        wall = time.perf_counter() - started
        cpu = cpu_seconds(process.pid)
        reply = json.loads(line) if line else {}
        if "result" not in reply:
            raise SystemExit(f"{command}: no initialize reply: {line!r}")
        _, stderr = process.communicate(timeout=TIMEOUT)  # closes stdin: the server shuts down
        if process.returncode != 0:
            raise SystemExit(f"{command} exited {process.returncode}: {stderr.decode()[-2000:]}")
        return wall, cpu
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(TIMEOUT)


def load() -> str:
    return " ".join(f"{value:.2f}" for value in os.getloadavg())


def measure(venvs: list[Path], runs: int) -> None:
    """Interleaved cold starts of every venv's ``memos-mcp stdio``; prints one line per venv."""
    work = Path(tempfile.mkdtemp(prefix="memos-cold-"))
    try:
        print(f"load average before: {load()}")
        samples: dict[Path, list[tuple[float, float]]] = {venv: [] for venv in venvs}
        for venv in venvs:
            wall, cpu = start_once(venv / "bin" / "memos-mcp", work / venv.name / "data", work)
            print(f"{venv}: first start, on a new data directory: {wall * 1000:.0f} ms wall, "
                  f"{cpu * 1000:.0f} ms CPU")
        for _ in range(runs):
            for venv in venvs:
                samples[venv].append(start_once(venv / "bin" / "memos-mcp", work / venv.name / "data", work))
        for venv, taken in samples.items():
            walls, cpus = [w * 1000 for w, _ in taken], [c * 1000 for _, c in taken]
            print(f"{venv}: initialize reply after {statistics.median(walls):.0f} ms median, {max(walls):.0f} ms "
                  f"max wall; CPU {statistics.median(cpus):.0f} ms median, {max(cpus):.0f} ms max "
                  f"({runs} runs)")
        print(f"load average after: {load()}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    inst = commands.add_parser("install", help="build a checkout's wheel and install it into a venv")
    inst.add_argument("venv", type=Path)
    inst.add_argument("--source", type=Path, default=ROOT, help="the checkout (default: this one)")
    meas = commands.add_parser("measure", help="time cold starts of each venv's memos-mcp stdio, interleaved")
    meas.add_argument("venvs", type=Path, nargs="+")
    meas.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    if args.command == "install":
        seconds = install(args.venv.absolute(), args.source.absolute())
        print(f"installed {args.source} into {args.venv} in {seconds:.1f} s")
    else:
        measure([venv.absolute() for venv in args.venvs], args.runs)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
