"""Benchmarks: how close servicecomms-async comes to the floor of what aiohttp can do.

Run ``python -m benchmarks`` (full sizes, a few minutes) or ``python -m benchmarks --quick``; the run
writes ``benchmarks/RESULTS.md``. Every figure is a ratio against a floor measured in the same run on
the same server: raw aiohttp + ``orjson.loads`` fetching the same pages and doing nothing else. The
server (``python -m servicecomms_async.emulator``) runs in its own process so that it does not share the
client's core, and library and floor runs alternate, best of several, because the machines are noisy.

Modules, one benchmark each: :mod:`.streaming`, :mod:`.parsing`, :mod:`.fanout`, :mod:`.memory`,
:mod:`.scaling`, :mod:`.startup`, :mod:`.graph`; the floor's code is all in :mod:`.floor`.
"""
