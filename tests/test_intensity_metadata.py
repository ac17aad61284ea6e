"""The opt-in cloud metadata query, against a local HTTP server on 127.0.0.1 only."""

from __future__ import annotations

import http.server
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from co2cb.intensity.metadata import query_cloud_metadata
from co2cb.intensity.region import resolve_region

Handler = Callable[[http.server.BaseHTTPRequestHandler], None]


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False


def _serve(answer: Handler) -> Iterator[str]:
    class RequestHandler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            answer(self)

        def do_PUT(self) -> None:
            answer(self)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = _Server(("127.0.0.1", 0), RequestHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def _reply(handler: http.server.BaseHTTPRequestHandler, status: int, body: str = "") -> None:
    data = body.encode()
    handler.send_response(status)
    handler.send_header("Content-Length", str(len(data)))
    handler.end_headers()
    handler.wfile.write(data)


def _aws(handler: http.server.BaseHTTPRequestHandler) -> None:
    if handler.command == "PUT" and handler.path == "/latest/api/token":
        if handler.headers.get("X-aws-ec2-metadata-token-ttl-seconds"):
            return _reply(handler, 200, "token-123")
        return _reply(handler, 400)
    if handler.path == "/latest/meta-data/placement/region":
        if handler.headers.get("X-aws-ec2-metadata-token") == "token-123":
            return _reply(handler, 200, "eu-west-3")
        return _reply(handler, 401)
    return _reply(handler, 404)


def _gcp(handler: http.server.BaseHTTPRequestHandler) -> None:
    if handler.path == "/computeMetadata/v1/instance/zone" and handler.headers.get("Metadata-Flavor") == "Google":
        return _reply(handler, 200, "projects/123456/zones/europe-west9-b")
    return _reply(handler, 404)


def _azure(handler: http.server.BaseHTTPRequestHandler) -> None:
    if handler.path.startswith("/metadata/instance/compute/location?") and handler.headers.get("Metadata") == "true":
        return _reply(handler, 200, "francecentral")
    return _reply(handler, 404)


def _error(handler: http.server.BaseHTTPRequestHandler) -> None:
    _reply(handler, 500, "internal error")


def _slow(handler: http.server.BaseHTTPRequestHandler) -> None:
    time.sleep(3.0)
    _reply(handler, 200, "eu-west-3")


def _garbage(handler: http.server.BaseHTTPRequestHandler) -> None:
    _reply(handler, 200, "<html>not a region</html>")


@pytest.fixture
def serve() -> Iterator[Callable[[Handler], str]]:
    """Start a local server with a given answer; returns its base URL."""
    running: list[Iterator[str]] = []

    def start(answer: Handler) -> str:
        gen = _serve(answer)
        running.append(gen)
        return next(gen)

    yield start
    for gen in running:
        next(gen, None)


@pytest.mark.parametrize(
    ("answer", "expected"), [(_aws, "aws:eu-west-3"), (_gcp, "gcp:europe-west9"), (_azure, "azure:francecentral")]
)
def test_canned_answer(serve: Callable[[Handler], str], answer: Handler, expected: str) -> None:
    assert query_cloud_metadata(serve(answer), timeout_s=1.0) == expected


def test_slow_server_hits_the_timeout(serve: Callable[[Handler], str]) -> None:
    url = serve(_slow)
    start = time.monotonic()
    assert query_cloud_metadata(url, timeout_s=1.0) is None
    elapsed = time.monotonic() - start
    assert 0.9 <= elapsed < 2.5, elapsed  # one timeout ends the query


def test_server_error_gives_none(serve: Callable[[Handler], str]) -> None:
    assert query_cloud_metadata(serve(_error), timeout_s=1.0) is None


def test_garbage_answer_gives_none(serve: Callable[[Handler], str]) -> None:
    assert query_cloud_metadata(serve(_garbage), timeout_s=1.0) is None


def test_nothing_listening_gives_none_quickly() -> None:
    start = time.monotonic()
    assert query_cloud_metadata("http://127.0.0.1:9", timeout_s=1.0) is None
    assert time.monotonic() - start < 1.5


def test_unknown_provider_is_an_error() -> None:
    with pytest.raises(ValueError, match="unknown cloud provider"):
        query_cloud_metadata("http://127.0.0.1:9", providers=("oracle",))


def test_resolution_step_metadata(serve: Callable[[Handler], str], tmp_path: Path) -> None:
    url = serve(_aws)
    res = resolve_region(environ={"TZ": "Asia/Kolkata"}, metadata=True, metadata_endpoint=url)
    assert (res.code, res.step, res.guessed) == ("aws:eu-west-3", "metadata", False)
    assert url in res.reason


def test_resolution_metadata_after_env_and_before_timezone(serve: Callable[[Handler], str]) -> None:
    url = serve(_gcp)
    assert resolve_region(environ={"AWS_REGION": "us-east-1"}, metadata=True, metadata_endpoint=url).step == "cloud-env"
    res = resolve_region(environ={"TZ": "Europe/Paris"}, metadata=True, metadata_endpoint=url)
    assert (res.code, res.step) == ("gcp:europe-west9", "metadata")
