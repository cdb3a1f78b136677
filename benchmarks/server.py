"""The emulator in its own process, so that serving does not share the client's core.

:class:`EmulatorProcess` starts ``python -m servicecomms_async.emulator --port 0 ...`` on 127.0.0.1,
reads the base URL it announces, waits until it answers an API request, and stops it (its own process
only) when closed. :class:`Servers` keeps one process per distinct configuration for a whole run.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from types import TracebackType

import attrs

REPO_ROOT = Path(__file__).resolve().parent.parent
TOKEN = "benchmark-token"  # the emulator accepts any non-empty bearer token
STARTUP_TIMEOUT = 60.0
_ANNOUNCEMENT = "listening on "
_GRAPH_ANNOUNCEMENT = "Microsoft Graph routes on "
_GRAPH_SUFFIX = "/admin/serviceAnnouncement/"


@attrs.frozen(kw_only=True)
class ServerConfig:
    """The emulator flags a benchmark needs (the rest keep their defaults; the seed is fixed)."""

    messages_per_tenant: int = 250
    latency: float = 0.0
    tenants: int = 1

    def argv(self) -> list[str]:
        return [
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--seed",
            "1",
            "--tenants",
            str(self.tenants),
            "--messages-per-tenant",
            str(self.messages_per_tenant),
            "--latency",
            repr(self.latency),
        ]


def tenant_ids(count: int) -> list[str]:
    """``count`` deterministic tenant GUIDs; the emulator serves data for any valid tenant id."""
    return [
        str(uuid.uuid5(uuid.NAMESPACE_URL, f"servicecomms-benchmark/{n}")) for n in range(count)
    ]


# Where each process runs: with two or more CPUs the benchmark (the client) is pinned to the first
# and every server process to the last, so that the client never shares its core with the server it
# measures and placement does not move between runs (see :func:`pin_client`).
def _cpus() -> list[int]:
    try:
        return sorted(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        return []


CLIENT_CPU: int | None = None
SERVER_CPU: int | None = None


def pin_client() -> str:
    """Pin this process (the client) to one CPU and choose another for servers; say where."""
    global CLIENT_CPU, SERVER_CPU
    cpus = _cpus()
    if len(cpus) < 2:
        return "not pinned (one CPU)"
    CLIENT_CPU, SERVER_CPU = cpus[0], cpus[-1]
    os.sched_setaffinity(0, {CLIENT_CPU})
    return f"client (this process) pinned to CPU {CLIENT_CPU}, every server process to CPU {SERVER_CPU}"


def unpin_client(cpus: set[int]) -> None:
    global CLIENT_CPU, SERVER_CPU
    CLIENT_CPU = SERVER_CPU = None
    if cpus:
        os.sched_setaffinity(0, cpus)


def pin_server(pid: int) -> None:
    if SERVER_CPU is not None:
        with contextlib.suppress(OSError):  # the process already exited
            os.sched_setaffinity(pid, {SERVER_CPU})


def process_cpu_seconds(pid: int | None) -> float:
    """User + system CPU seconds of process ``pid`` (Linux ``/proc``; 0.0 where unavailable)."""
    if pid is None:
        return 0.0
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks  # utime, stime


def python_env() -> dict[str, str]:
    """The environment for child processes: this interpreter's, with the repository importable."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    return env


class EmulatorProcess:
    """One emulator server process; use as a context manager or call :meth:`start`/:meth:`stop`."""

    def __init__(self, config: ServerConfig) -> None:
        self.config = config
        self.base_url = ""
        self.graph_base_url = ""  # http://127.0.0.1:P/v1.0, read from the emulator's announcement
        self._process: subprocess.Popen[str] | None = None
        self._stderr = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115 - closed in stop()

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def cpu_seconds(self) -> float:
        """CPU time (user + system) this server process has used so far."""
        return process_cpu_seconds(self.pid)

    def start(self) -> None:
        self._process = subprocess.Popen(
            [sys.executable, "-m", "servicecomms_async.emulator", *self.config.argv()],
            cwd=REPO_ROOT,
            env=python_env(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            text=True,
        )
        pin_server(self._process.pid)
        try:
            self.base_url = self._read_base_url()
            self.graph_base_url = self._read_graph_base_url()
            self._wait_until_answering()
        except BaseException:
            self.stop()
            raise

    def _read_base_url(self) -> str:
        assert self._process is not None
        assert self._process.stdout is not None
        # The first line is printed once the socket is bound: "... listening on http://127.0.0.1:P/api/v1.0".
        line = self._process.stdout.readline()
        if _ANNOUNCEMENT not in line:
            raise RuntimeError(f"the emulator did not start: {line!r}{self._stderr_tail()}")
        return line.split(_ANNOUNCEMENT, 1)[1].strip()

    def _read_graph_base_url(self) -> str:
        assert self._process is not None
        assert self._process.stdout is not None
        # A few lines later: "Microsoft Graph routes on http://127.0.0.1:P/v1.0/admin/serviceAnnouncement/ ...".
        for _ in range(20):
            line = self._process.stdout.readline()
            if _GRAPH_ANNOUNCEMENT in line:
                routes = line.split(_GRAPH_ANNOUNCEMENT, 1)[1].split()[0]
                return routes.removesuffix(_GRAPH_SUFFIX)
            if not line:
                break
        raise RuntimeError(f"the emulator did not announce its Graph routes{self._stderr_tail()}")

    def _wait_until_answering(self) -> None:
        assert self._process is not None
        url = f"{self.base_url}/{tenant_ids(1)[0]}/ServiceComms/Services"
        request = urllib.request.Request(url, headers={"Authorization": f"Bearer {TOKEN}"})
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while True:
            if self._process.poll() is not None:
                raise RuntimeError(
                    f"the emulator exited with {self._process.returncode}{self._stderr_tail()}"
                )
            try:
                with urllib.request.urlopen(request, timeout=5) as response:
                    response.read()
                    return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the emulator at {self.base_url} did not answer") from None
                time.sleep(0.05)

    def _stderr_tail(self) -> str:
        self._stderr.seek(0)
        tail = self._stderr.read()[-2000:]
        return f"\nemulator stderr:\n{tail}" if tail else ""

    def stop(self) -> None:
        """Stop this process (terminate, then kill if it lingers); safe to call more than once."""
        process, self._process = self._process, None
        if process is not None:
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
            if process.stdout is not None:
                process.stdout.close()
        if not self._stderr.closed:
            self._stderr.close()

    def __enter__(self) -> EmulatorProcess:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


class ReplayProcess:
    """``python -m benchmarks.replay`` in front of one emulator: pre-rendered pages, about 1 µs per
    item to serve (see :mod:`.replay`). Its URLs are the emulator's with the replay's origin."""

    def __init__(self, emulator: EmulatorProcess, latency: float) -> None:
        self.emulator = emulator
        self.latency = latency
        self.origin = ""
        self._process: subprocess.Popen[str] | None = None

    @property
    def base_url(self) -> str:
        return self._rebase(self.emulator.base_url)

    @property
    def graph_base_url(self) -> str:
        return self._rebase(self.emulator.graph_base_url)

    def _rebase(self, url: str) -> str:
        path = "/" + url.split("/", 3)[3] if url.count("/") >= 3 else ""
        return self.origin + path

    def cpu_seconds(self) -> float:
        return process_cpu_seconds(self._process.pid if self._process is not None else None)

    def start(self) -> None:
        upstream = "/".join(self.emulator.base_url.split("/")[:3])
        self._process = subprocess.Popen(
            [
                *(sys.executable, "-m", "benchmarks.replay"),
                *("--upstream", upstream, "--latency", repr(self.latency)),
            ],
            cwd=REPO_ROOT,
            env=python_env(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            text=True,
        )
        pin_server(self._process.pid)
        assert self._process.stdout is not None
        line = self._process.stdout.readline()
        if "replay listening on " not in line:
            self.stop()
            raise RuntimeError(f"the replay server did not start: {line!r}")
        self.origin = line.split("replay listening on ", 1)[1].strip()

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is not None:
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
            if process.stdout is not None:
                process.stdout.close()


class Servers:
    """One emulator process per configuration, started on first use, all stopped on exit; and
    replay servers in front of them."""

    def __init__(self) -> None:
        self._running: dict[ServerConfig, EmulatorProcess] = {}
        self._replays: dict[tuple[ServerConfig, float], ReplayProcess] = {}

    def emulator(self, config: ServerConfig) -> EmulatorProcess:
        """The running emulator process with ``config`` (for its URLs and its CPU time)."""
        return self._process(config)

    def replay(self, config: ServerConfig, latency: float = 0.0) -> ReplayProcess:
        """A replay server (its own process) in front of the emulator with ``config``."""
        key = (config, latency)
        replay = self._replays.get(key)
        if replay is None:
            replay = ReplayProcess(self._process(config), latency)
            replay.start()
            self._replays[key] = replay
        return replay

    def get(self, config: ServerConfig) -> str:
        """The base URL of a running emulator with ``config``."""
        return self._process(config).base_url

    def get_graph(self, config: ServerConfig) -> str:
        """The Microsoft Graph base URL (``.../v1.0``) of a running emulator with ``config``."""
        return self._process(config).graph_base_url

    def _process(self, config: ServerConfig) -> EmulatorProcess:
        server = self._running.get(config)
        if server is None:
            server = EmulatorProcess(config)
            server.start()
            self._running[config] = server
        return server

    def stop(self, config: ServerConfig) -> None:
        """Stop the emulator with ``config`` now (a big one need not outlive its benchmark)."""
        for key in [key for key in self._replays if key[0] == config]:
            self._replays.pop(key).stop()
        server = self._running.pop(config, None)
        if server is not None:
            server.stop()

    def close(self) -> None:
        for config in list(self._running):
            self.stop(config)

    def __enter__(self) -> Servers:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
