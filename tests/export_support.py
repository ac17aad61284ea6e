"""What the live-export tests share: scraping and parsing, bounded waits, real Prometheus binaries."""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from tests.ports import free_port

T = TypeVar("T")
OPENMETRICS = "application/openmetrics-text; version=1.0.0; charset=utf-8"
Series = dict[tuple[str, frozenset[tuple[str, str]]], float]


def get(url: str, accept: str | None = None, timeout_s: float = 5.0) -> str:
    """The body of a GET (no proxy: everything here is on 127.0.0.1)."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    request = urllib.request.Request(url, headers={"Accept": accept} if accept else {})
    with opener.open(request, timeout=timeout_s) as response:
        return response.read().decode()


def parse(text: str, openmetrics: bool = False) -> Series:
    """Every sample of an exposition, parsed by ``prometheus_client``'s own parser: ``{(name, labels): value}``."""
    if openmetrics:
        from prometheus_client.openmetrics.parser import text_string_to_metric_families
    else:
        from prometheus_client.parser import text_string_to_metric_families
    return {
        (s.name, frozenset(s.labels.items())): s.value for f in text_string_to_metric_families(text) for s in f.samples
    }


def pick(series: Series, name: str, **labels: str) -> dict[frozenset[tuple[str, str]], float]:
    """The samples of ``name`` whose labels include ``labels``."""
    want = set(labels.items())
    return {lab: v for (n, lab), v in series.items() if n == name and want <= set(lab)}


def one(series: Series, name: str, **labels: str) -> float:
    """The value of the one sample of ``name`` with ``labels``."""
    found = pick(series, name, **labels)
    assert len(found) == 1, f"{len(found)} samples of {name} {labels}: {sorted(found)}"
    return next(iter(found.values()))


def wait_for(
    check: Callable[[], T | None],
    what: str,
    until: Callable[[T], bool] = lambda _: True,
    timeout_s: float = 60.0,
    step_s: float = 0.1,
) -> T:
    """Poll ``check`` until it returns something other than None for which ``until`` holds (a bounded loop)."""
    deadline = time.monotonic() + timeout_s
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            found = check()
        except (OSError, urllib.error.URLError, ValueError) as e:  # not up yet
            last_error, found = e, None
        if found is not None and until(found):
            return found
        time.sleep(step_s)
    raise AssertionError(f"gave up waiting for {what} after {timeout_s:g} s (last error: {last_error})")


def binary(name: str) -> str:
    """The path of a Debian package's binary, or a skip that says how to install it."""
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"{name} is not installed (Debian: apt-get install {name})")
    return path


@contextlib.contextmanager
def process(cmd: list[str], log: Path, ready_url: str) -> Iterator[subprocess.Popen[bytes]]:
    """Run a server until the block ends; it is ready once ``ready_url`` answers."""
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
    try:

        def up() -> bool | None:
            if proc.poll() is not None:
                raise AssertionError(f"{cmd[0]} exited ({proc.returncode}):\n{log.read_text()[-3000:]}")
            with contextlib.suppress(urllib.error.HTTPError):  # it answers (e.g. 401 behind basic auth): it is up
                get(ready_url, timeout_s=1.0)
            return True

        wait_for(up, f"{cmd[0]} to answer at {ready_url}")
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextlib.contextmanager
def pushgateway(tmp: Path, web_config: Path | None = None) -> Iterator[str]:
    """A real Prometheus Pushgateway on 127.0.0.1, in memory only; yields its URL."""
    port = free_port()
    cmd = [binary("prometheus-pushgateway"), f"--web.listen-address=127.0.0.1:{port}", "--persistence.file="]
    if web_config is not None:
        cmd.append(f"--web.config.file={web_config}")
    url = f"http://127.0.0.1:{port}"
    ready = f"{url}/-/ready" if web_config is None else None
    with process(cmd, tmp / "pushgateway.log", ready or f"{url}/-/healthy"):
        yield url


def prometheus_query(url: str, query: str) -> list[dict[str, Any]]:
    """The result vector of an instant query through Prometheus' HTTP API."""
    import json
    import urllib.parse

    body = json.loads(get(f"{url}/api/v1/query?{urllib.parse.urlencode({'query': query})}"))
    assert body["status"] == "success", body
    return body["data"]["result"]
