"""The emulator's loopback server base (shared by the emulator and the identity server) and the
identity server's optional dependencies."""

from __future__ import annotations

import socket
import subprocess
import sys
import textwrap

import pytest

from servicecomms_async.emulator import Emulator
from servicecomms_async.emulator.__main__ import main
from servicecomms_async.emulator.identity import IdentityServer
from servicecomms_async.emulator.server import BindError

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.mark.parametrize("server", [Emulator, IdentityServer])
@pytest.mark.parametrize("host", ["0.0.0.0", "192.0.2.1", "example.com", ""])
def test_a_host_that_is_not_loopback_is_refused_before_anything_listens(
    server: type[Emulator | IdentityServer], host: str
) -> None:
    with pytest.raises(ValueError, match="host must be a loopback address"):
        server(host=host)


@pytest.mark.parametrize("port", [-1, 65536, 1.5, True])
def test_a_port_out_of_range_is_refused(port: object) -> None:
    with pytest.raises(ValueError, match="port must be an integer from 0"):
        Emulator(port=port)  # type: ignore[arg-type]


@pytest.mark.parametrize("server", [Emulator, IdentityServer])
async def test_a_port_in_use_is_named_in_the_error(
    server: type[Emulator | IdentityServer],
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        instance = server(port=port)
        with pytest.raises(
            BindError, match=rf"cannot listen on 127\.0\.0\.1:{port}: the port is in use"
        ):
            await instance.start()
        assert not instance.started
        with pytest.raises(RuntimeError, match="not started"):
            _ = instance.port
    # Nothing was left half-open: the same object starts once the port is free.
    await instance.start()
    try:
        assert instance.port == port
    finally:
        await instance.stop()


async def test_start_stop_and_urls_of_both_servers() -> None:
    async with Emulator() as emu, IdentityServer() as idp:
        assert emu.base_url == f"http://127.0.0.1:{emu.port}/api/v1.0"
        assert emu.graph_base_url == f"http://127.0.0.1:{emu.port}/v1.0"
        assert idp.authority == f"https://127.0.0.1:{idp.port}"
        for server in (emu, idp):
            with pytest.raises(RuntimeError, match="already started"):
                await server.start()
    await emu.stop()  # a second stop is harmless
    await idp.stop()
    with pytest.raises(RuntimeError, match="not started"):
        _ = idp.ca_path


async def test_ipv6_loopback_urls_are_bracketed() -> None:
    if not socket.has_ipv6:
        pytest.skip("no IPv6 on this machine")
    try:
        async with Emulator(host="::1") as emu:
            assert emu.base_url == f"http://[::1]:{emu.port}/api/v1.0"
    except BindError:
        pytest.skip("::1 is not configured on this machine")


def test_the_command_line_says_what_is_wrong_with_the_address(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as exited:  # argparse refuses the value, with exit code 2
        main(["--host", "0.0.0.0", "--port", "0"])
    assert exited.value.code == 2
    assert "host must be a loopback address" in capsys.readouterr().err
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["--port", str(port)]) == 2
    assert "the port is in use" in capsys.readouterr().err


# A child interpreter in which trustme cannot be imported, as for a user without the extra.
_WITHOUT_TRUSTME = textwrap.dedent(
    """
    import sys

    class RefuseTrustme:
        def find_spec(self, name, path=None, target=None):
            if name == "trustme" or name.startswith("trustme."):
                raise ModuleNotFoundError(f"No module named {name!r}", name=name)
            return None

    sys.modules.pop("trustme", None)
    sys.meta_path.insert(0, RefuseTrustme())

    import servicecomms_async.emulator
    from servicecomms_async.emulator import Emulator
    from servicecomms_async.emulator.identity import IdentityServer, generate_client_certificate

    for make in (IdentityServer, generate_client_certificate):
        try:
            make()
        except ImportError as exc:
            print(exc)
        else:
            raise SystemExit(f"{make.__name__} did not raise ImportError")
    print("emulator still builds:", Emulator().config.seed)
    """
)


def test_the_identity_server_without_its_extra_says_what_to_install() -> None:
    result = subprocess.run(
        [sys.executable, "-c", _WITHOUT_TRUSTME],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 3, result.stdout
    for line in lines[:2]:
        assert line.endswith('install with pip install "servicecomms-async[emulator]"'), line
        assert "trustme" in line
    assert lines[2] == "emulator still builds: 1"
