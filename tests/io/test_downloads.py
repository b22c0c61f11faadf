"""mmovod.io.downloads.fetch against a local HTTP server: resume, dropped connections, HTML pages, HTTP errors."""
import numpy as np
import pytest

from mmovod.io.downloads import DownloadError, RetryPolicy, fetch
from tests.http_server import FileServer, Route

NO_WAIT = RetryPolicy(retries=3, wait=0, timeout=5)
BODY = np.random.default_rng(0).bytes(300_000)


@pytest.fixture
def server():
    with FileServer() as srv:
        yield srv


def test_whole_file_arrives_byte_identical_in_one_request(server, tmp_path):
    server.routes["/f.bin"] = Route(BODY)
    part = tmp_path / "f.bin.part"
    assert fetch(server.url + "/f.bin", part, NO_WAIT) == len(BODY)
    assert part.read_bytes() == BODY
    assert server.requests == [("/f.bin", None)]


def test_dropped_connection_is_resumed_with_a_range_request(server, tmp_path):
    server.routes["/f.bin"] = Route(BODY, drops=[100_000, 50_000])
    part = tmp_path / "f.bin.part"
    fetch(server.url + "/f.bin", part, NO_WAIT)
    assert part.read_bytes() == BODY
    assert server.requests == [("/f.bin", None), ("/f.bin", "bytes=100000-"), ("/f.bin", "bytes=150000-")]


def test_out_of_retries_keeps_the_part_and_a_later_call_resumes_it(server, tmp_path):
    server.routes["/f.bin"] = Route(BODY, drops=[70_000])
    part = tmp_path / "f.bin.part"
    with pytest.raises(DownloadError, match="dropped after 70000 of 300000 bytes; 70000 bytes kept in .*run again"):
        fetch(server.url + "/f.bin", part, RetryPolicy(retries=0, wait=0, timeout=5))
    assert part.read_bytes() == BODY[:70_000]
    fetch(server.url + "/f.bin", part, NO_WAIT)
    assert part.read_bytes() == BODY
    assert server.requests[-1] == ("/f.bin", "bytes=70000-")


def test_a_server_that_ignores_range_restarts_the_file(server, tmp_path):
    server.routes["/f.bin"] = Route(BODY, drops=[1234], honour_range=False)
    part = tmp_path / "f.bin.part"
    fetch(server.url + "/f.bin", part, NO_WAIT)
    assert part.read_bytes() == BODY


def test_a_complete_part_is_recognised_from_the_416_answer(server, tmp_path):
    server.routes["/f.bin"] = Route(BODY)
    part = tmp_path / "f.bin.part"
    part.write_bytes(BODY)
    assert fetch(server.url + "/f.bin", part, NO_WAIT) == len(BODY)
    assert part.read_bytes() == BODY


@pytest.mark.parametrize("route", [
    Route(b"<!DOCTYPE html><html><body>Sign in</body></html>", content_type="text/html; charset=utf-8"),
    Route(b"\n  <html><body>quota exceeded</body></html>"),  # HTML sent as application/octet-stream
])
def test_an_html_page_served_with_200_is_refused(server, tmp_path, route):
    server.routes["/f.npy"] = route
    part = tmp_path / "f.npy.part"
    with pytest.raises(DownloadError, match="HTML"):
        fetch(server.url + "/f.npy", part, NO_WAIT)
    assert not part.exists()


def test_http_404_is_one_error_without_retries(server, tmp_path):
    with pytest.raises(DownloadError, match=r"/missing.npy: HTTP 404"):
        fetch(server.url + "/missing.npy", tmp_path / "m.part", NO_WAIT)
    assert server.requests == [("/missing.npy", None)]
    assert not (tmp_path / "m.part").exists()


def test_http_503_is_retried_then_reported(server, tmp_path):
    server.routes["/busy"] = Route(b"busy", status=503)
    with pytest.raises(DownloadError, match="HTTP 503 .* after 3 attempts"):
        fetch(server.url + "/busy", tmp_path / "b.part", RetryPolicy(retries=2, wait=0, timeout=5))
    assert len(server.requests) == 3


def test_an_unreachable_server_is_reported_after_the_retries(tmp_path):
    with FileServer() as srv:
        url = srv.url
    with pytest.raises(DownloadError, match="cannot connect"):
        fetch(url + "/f.bin", tmp_path / "f.part", RetryPolicy(retries=1, wait=0, timeout=5))


def test_progress_sees_every_byte_and_the_resume_offset(server, tmp_path):
    server.routes["/f.bin"] = Route(BODY, drops=[10_000])
    calls = []

    class Bar:
        def __init__(self, label, total, initial):
            calls.append([label, total, initial, 0])

        def update(self, n):
            calls[-1][3] += n

        def close(self):
            pass

    fetch(server.url + "/f.bin", tmp_path / "f.part", NO_WAIT, Bar)
    assert calls == [["f.bin", 300_000, 0, 10_000], ["f.bin", 300_000, 10_000, 290_000]]
