"""Every ```python block of README.md runs as written: as a script, in a fresh interpreter, with
loopback network only, and prints what it says it prints.

A block is a whole script (imports, ``anyio.run(main)``); it may use only what the ``test`` extra
installs. It runs from an empty temporary directory with the working copy first on ``sys.path``,
without Azure or servicecomms environment variables, and with a guard (a ``sitecustomize``) that
refuses any connection or name lookup beyond 127.0.0.1, ::1 and localhost, so a block that would
reach Entra or Microsoft Graph fails here instead of hanging or passing by luck.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
TIMEOUT = 60  # seconds per block

# An opening fence of exactly "```python" at the start of a line, up to the next closing fence.
_BLOCK = re.compile(r"^```python[ \t]*\n(.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL)

_GUARD = textwrap.dedent(
    '''
    """Loopback only: README blocks must not reach the network."""
    import ipaddress
    import socket

    _LOCAL_NAMES = {"localhost", "127.0.0.1", "::1"}


    def _check_host(host):
        if host is None:
            return
        if isinstance(host, bytes):
            host = host.decode()
        name = str(host).strip("[]").lower()
        if name in _LOCAL_NAMES:
            return
        try:
            if ipaddress.ip_address(name.split("%")[0]).is_loopback:
                return
        except ValueError:
            pass
        raise OSError(f"README block tried to reach {host!r}: only loopback is allowed")


    _getaddrinfo = socket.getaddrinfo


    def _guarded_getaddrinfo(host, *args, **kwargs):
        _check_host(host)
        return _getaddrinfo(host, *args, **kwargs)


    def _guard_connect(original):
        def connect(self, address):
            if self.family in (socket.AF_INET, socket.AF_INET6):
                _check_host(address[0])
            return original(self, address)

        return connect


    socket.getaddrinfo = _guarded_getaddrinfo
    socket.socket.connect = _guard_connect(socket.socket.connect)
    socket.socket.connect_ex = _guard_connect(socket.socket.connect_ex)
    '''
)


def readme_blocks() -> list[tuple[int, str]]:
    """(README line number of the block's first line, source) for every ```python block."""
    text = README.read_text(encoding="utf-8")
    return [
        (text.count("\n", 0, match.start(1)) + 1, match.group(1)) for match in _BLOCK.finditer(text)
    ]


BLOCKS = readme_blocks()


def _block_id(index: int, line: int, source: str) -> str:
    first = next((s.strip() for s in source.splitlines() if s.strip()), "")
    return f"{index}-L{line}-{first[:40]}"


def test_readme_has_python_blocks() -> None:
    assert BLOCKS, (
        f"no ```python blocks found in {README}: the extraction pattern or the README broke"
    )


@pytest.fixture(scope="module")
def guard_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("loopback-guard")
    (directory / "sitecustomize.py").write_text(_GUARD, encoding="utf-8")
    return directory


def _environment(guard_dir: Path) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("AZURE_", "SERVICECOMMS_", "MSI_", "IDENTITY_"))
        and key.lower() not in {"http_proxy", "https_proxy", "all_proxy"}
    }
    env["PYTHONPATH"] = os.pathsep.join(
        [str(guard_dir), str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]
    )
    env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1,localhost,::1"
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


@pytest.mark.parametrize(
    ("line", "source"),
    [
        pytest.param(line, source, id=_block_id(index, line, source))
        for index, (line, source) in enumerate(BLOCKS)
    ],
)
def test_readme_block_runs(line: int, source: str, tmp_path: Path, guard_dir: Path) -> None:
    script = tmp_path / f"readme_block_line_{line}.py"
    script.write_text(source, encoding="utf-8")
    try:
        result = subprocess.run(
            [sys.executable, "-W", "default::ResourceWarning", str(script)],
            cwd=tmp_path,
            env=_environment(guard_dir),
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"README.md block at line {line} ran longer than {TIMEOUT} s:\n{exc.stdout}")
    report = (
        f"README.md block at line {line} exited {result.returncode}\n"
        f"--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}"
    )
    assert result.returncode == 0, report
    if re.search(r"\bprint\(", source):
        assert result.stdout.strip(), "the block prints, but printed nothing\n" + report
    # Examples close what they open: no unclosed sessions, connections or credentials.
    assert "Unclosed" not in result.stderr and "ResourceWarning" not in result.stderr, report
