"""`--download`: resumable, verified fetches, exercised against a local HTTP server only.

The server runs on 127.0.0.1 in a thread, serves files from a temporary directory, honours
`Range: bytes=N-` (206 + Content-Range, 416 past the end, If-Range against its ETag) and records
every request, so the tests can check what was asked for. It can be told to ignore Range,
drop the connection after K bytes, or answer every request with an error status.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import re
import socket
import threading
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from rich.console import Console

from seqbench.data.download import MANIFEST, fetch, mirror_from_env
from seqbench.data.presets import Download
from seqbench.errors import SeqbenchError

MEMBER = "ml-test/ratings.csv"
RATINGS = "".join(
    f"{u},{i},{(u * i) % 5 + 1},{1_000_000 + u * 97 + i}\n"
    for u in range(1, 120)
    for i in range(1, 40)
).encode()


@dataclass
class Seen:
    path: str
    range: str | None
    if_range: str | None


@dataclass
class FileServer:
    """What the tests control and observe about the local server."""

    root: Path
    url: str = ""
    requests: list[Seen] = field(default_factory=list)
    ignore_range: bool = False
    drop_after: int | None = None
    status: int | None = None

    def put(self, name: str, data: bytes) -> str:
        path = self.root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        return f"{self.url}/{name}"


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_GET(self) -> None:
        state = self.server.state
        state.requests.append(
            Seen(self.path, self.headers.get("Range"), self.headers.get("If-Range"))
        )
        path = state.root / self.path.lstrip("/")
        if state.status is not None or not path.is_file():
            self.send_error(state.status or 404)
            return
        data = path.read_bytes()
        etag = f'"{hashlib.sha256(data).hexdigest()[:16]}"'
        start = self._range_start(state, etag)
        if start is not None and start >= len(data):
            self.send_response(416)
            self.send_header("Content-Range", f"bytes */{len(data)}")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if start is None:
            start = 0
            self.send_response(200)
        else:
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        body = data[start:]
        self.send_header("Content-Length", str(len(body)))
        self.send_header("ETag", etag)
        self.end_headers()
        if state.drop_after is not None:
            body = body[: state.drop_after]  # then the handler returns and the socket closes
        self.wfile.write(body)

    def _range_start(self, state: FileServer, etag: str) -> int | None:
        """The requested start byte, or None when the whole file is to be sent."""
        header = self.headers.get("Range")
        if_range = self.headers.get("If-Range")
        if not header or state.ignore_range or (if_range and if_range != etag):
            return None
        match = re.fullmatch(r"bytes=(\d+)-", header)
        return int(match[1]) if match else None

    def log_message(self, format: str, *args: object) -> None:
        """Keep test output quiet."""


class _Server(ThreadingHTTPServer):
    state: FileServer
    daemon_threads = True

    def handle_error(self, request: object, client_address: object) -> None:
        """A client hanging up mid-body is expected in these tests."""


@pytest.fixture(autouse=True)
def _no_proxy_no_mirror(monkeypatch: pytest.MonkeyPatch) -> None:
    """Requests must go straight to 127.0.0.1, whatever the environment says."""
    for name in (
        "http_proxy",
        "HTTP_PROXY",
        "https_proxy",
        "HTTPS_PROXY",
        "all_proxy",
        "ALL_PROXY",
        "SEQBENCH_MIRROR",
    ):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[FileServer]:
    root = tmp_path / "served"
    root.mkdir()
    httpd = _Server(("127.0.0.1", 0), _Handler)
    httpd.state = FileServer(root, url=f"http://127.0.0.1:{httpd.server_address[1]}")
    thread = threading.Thread(
        target=httpd.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True
    )
    thread.start()
    try:
        yield httpd.state
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()


@pytest.fixture
def dest(tmp_path: Path) -> Path:
    return tmp_path / "raw" / "ml-test"


def make_zip(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


@pytest.fixture
def archive() -> bytes:
    return make_zip({MEMBER: RATINGS, "ml-test/README.txt": b"test archive\n"})


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def zip_download(server: FileServer, archive: bytes, **kwargs: object) -> Download:
    url = server.put("ml-test.zip", archive)
    options: dict = {"md5": md5(archive), "members": {"ratings": MEMBER}, **kwargs}
    return Download(url=url, **options)


def leftovers(dest: Path) -> list[str]:
    """Partial or temporary files still lying in the download directory."""
    return sorted(p.name for p in dest.iterdir() if p.name.endswith(".part"))


def one_line(exc: pytest.ExceptionInfo[SeqbenchError]) -> str:
    message = str(exc.value)
    assert "\n" not in message
    return message


# ---------------------------------------------------------------- happy paths


def test_download_extracts_and_verifies_md5(server: FileServer, archive: bytes, dest: Path) -> None:
    download = zip_download(server, archive, member_sha256={"ratings": sha256(RATINGS)})
    files = fetch(download, dest)
    assert files == {"ratings": dest / "ratings.csv"}
    assert files["ratings"].read_bytes() == RATINGS
    assert (dest / "ml-test.zip").read_bytes() == archive
    assert leftovers(dest) == []
    assert [(r.path, r.range) for r in server.requests] == [("/ml-test.zip", None)]
    record = json.loads((dest / MANIFEST).read_text())["files"]["ml-test.zip"]
    assert record["md5_verified"] is True
    assert record["md5"] == md5(archive)
    assert record["sha256"] == sha256(archive)
    assert record["size"] == len(archive)
    assert record["members"]["ratings"]["sha256"] == sha256(RATINGS)


def test_second_fetch_makes_no_request(server: FileServer, archive: bytes, dest: Path) -> None:
    download = zip_download(server, archive)
    first = fetch(download, dest)
    server.status = 500  # any request now would fail loudly
    assert fetch(download, dest) == first
    assert len(server.requests) == 1


def test_missing_extracted_file_is_restored_from_the_archive(
    server: FileServer, archive: bytes, dest: Path
) -> None:
    download = zip_download(server, archive)
    fetch(download, dest)
    (dest / "ratings.csv").unlink()
    assert fetch(download, dest)["ratings"].read_bytes() == RATINGS
    assert len(server.requests) == 1


def test_archive_already_present_is_adopted_by_md5(
    server: FileServer, archive: bytes, dest: Path
) -> None:
    download = zip_download(server, archive)
    dest.mkdir(parents=True)
    (dest / "ml-test.zip").write_bytes(archive)
    assert fetch(download, dest)["ratings"].read_bytes() == RATINGS
    assert server.requests == []


def test_progress_bar_shows_the_file(server: FileServer, archive: bytes, dest: Path) -> None:
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=120)
    fetch(zip_download(server, archive), dest, console=console)
    assert "ml-test.zip" in out.getvalue()


def test_plain_file_without_checksum_records_sha256(
    server: FileServer, dest: Path, caplog: pytest.LogCaptureFixture
) -> None:
    data = gzip.compress(b'{"reviewerID": "u1", "asin": "i1"}\n' * 200)
    download = Download(url=server.put("reviews_Test_5.json.gz", data), role="reviews")
    with caplog.at_level("INFO", logger="seqbench.data.download"):
        files = fetch(download, dest)
    assert files == {"reviews": dest / "reviews_Test_5.json.gz"}
    assert files["reviews"].read_bytes() == data
    record = json.loads((dest / MANIFEST).read_text())["files"]["reviews_Test_5.json.gz"]
    assert record["sha256"] == sha256(data)
    assert record["md5_verified"] is False
    assert "no published checksum" in caplog.text


def test_mirror_from_env_replaces_the_official_host(
    server: FileServer, archive: bytes, dest: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server.put("mirror/ml-test.zip", archive)
    official = Download(
        url=f"{server.url}/official/ml-test.zip", md5=md5(archive), members={"ratings": MEMBER}
    )
    monkeypatch.setenv("SEQBENCH_MIRROR", f"{server.url}/mirror/")
    files = fetch(official, dest, mirror=mirror_from_env())
    assert files["ratings"].read_bytes() == RATINGS
    assert [r.path for r in server.requests] == ["/mirror/ml-test.zip"]


def test_mirror_from_env_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    assert mirror_from_env() is None
    monkeypatch.setenv("SEQBENCH_MIRROR", "  ")
    assert mirror_from_env() is None


# ---------------------------------------------------------------- resuming


def test_resume_sends_range_from_the_partial_size(
    server: FileServer, archive: bytes, dest: Path
) -> None:
    download = zip_download(server, archive)
    dest.mkdir(parents=True)
    offset = len(archive) // 3
    (dest / "ml-test.zip.part").write_bytes(archive[:offset])
    fetch(download, dest)
    assert server.requests[-1].range == f"bytes={offset}-"
    assert (dest / "ml-test.zip").read_bytes() == archive
    assert leftovers(dest) == []


def test_server_ignoring_range_restarts_cleanly(
    server: FileServer, archive: bytes, dest: Path
) -> None:
    download = zip_download(server, archive)
    dest.mkdir(parents=True)
    (dest / "ml-test.zip.part").write_bytes(b"x" * 100)  # would corrupt the file if appended to
    server.ignore_range = True
    fetch(download, dest)
    assert server.requests[-1].range == "bytes=100-"
    assert (dest / "ml-test.zip").read_bytes() == archive


def test_complete_partial_file_is_finished_without_body(
    server: FileServer, archive: bytes, dest: Path
) -> None:
    download = zip_download(server, archive)
    dest.mkdir(parents=True)
    (dest / "ml-test.zip.part").write_bytes(archive)
    fetch(download, dest)
    assert [r.range for r in server.requests] == [f"bytes={len(archive)}-"]  # answered 416
    assert (dest / "ml-test.zip").read_bytes() == archive


def test_oversized_partial_file_is_replaced(server: FileServer, archive: bytes, dest: Path) -> None:
    download = zip_download(server, archive)
    dest.mkdir(parents=True)
    (dest / "ml-test.zip.part").write_bytes(archive + b"junk")
    fetch(download, dest)
    assert [r.range for r in server.requests] == [f"bytes={len(archive) + 4}-", None]
    assert (dest / "ml-test.zip").read_bytes() == archive


def test_dropped_connection_keeps_part_and_next_run_resumes(
    server: FileServer, archive: bytes, dest: Path
) -> None:
    download = zip_download(server, archive)
    kept = 1000
    server.drop_after = kept
    with pytest.raises(SeqbenchError) as exc:
        fetch(download, dest)
    message = one_line(exc)
    assert f"{kept} of {len(archive)} bytes" in message
    assert download.url in message
    assert "resume" in message
    assert (dest / "ml-test.zip.part").stat().st_size == kept
    assert not (dest / "ml-test.zip").exists()
    assert not (dest / "ratings.csv").exists()

    server.drop_after = None
    assert fetch(download, dest)["ratings"].read_bytes() == RATINGS
    assert server.requests[-1].range == f"bytes={kept}-"
    assert server.requests[-1].if_range  # the ETag seen at the start of the download
    assert (dest / "ml-test.zip").read_bytes() == archive
    assert leftovers(dest) == []


def test_resume_of_a_changed_file_starts_over(server: FileServer, dest: Path) -> None:
    old = make_zip({MEMBER: b"1,1,5,100\n" * 500})
    new = make_zip({MEMBER: RATINGS})
    url = server.put("ml-test.zip", old)
    server.drop_after = 50
    with pytest.raises(SeqbenchError):
        fetch(Download(url=url, members={"ratings": MEMBER}), dest)
    server.put("ml-test.zip", new)  # upstream published a new version meanwhile
    server.drop_after = None
    files = fetch(Download(url=url, md5=md5(new), members={"ratings": MEMBER}), dest)
    assert files["ratings"].read_bytes() == RATINGS
    assert server.requests[-1].range == "bytes=50-"  # If-Range no longer matched: sent whole


# ---------------------------------------------------------------- checks that fail


def test_md5_mismatch_removes_the_download(server: FileServer, archive: bytes, dest: Path) -> None:
    download = zip_download(server, archive, md5="0" * 32)
    with pytest.raises(SeqbenchError) as exc:
        fetch(download, dest)
    message = one_line(exc)
    assert message.startswith(f"checksum mismatch for {download.url}: expected md5 {'0' * 32}")
    assert md5(archive) in message
    assert sorted(p.name for p in dest.iterdir()) == [MANIFEST]


def test_member_sha256_mismatch(server: FileServer, archive: bytes, dest: Path) -> None:
    download = zip_download(server, archive, member_sha256={"ratings": "f" * 64})
    with pytest.raises(SeqbenchError) as exc:
        fetch(download, dest)
    message = one_line(exc)
    assert "checksum mismatch" in message
    assert MEMBER in message
    assert sha256(RATINGS) in message
    assert not (dest / "ratings.csv").exists()
    assert leftovers(dest) == []


def test_missing_member_names_archive_and_member(
    server: FileServer, archive: bytes, dest: Path
) -> None:
    download = zip_download(server, archive, members={"ratings": "ml-test/nope.csv"})
    with pytest.raises(SeqbenchError) as exc:
        fetch(download, dest)
    message = one_line(exc)
    assert "ml-test.zip" in message
    assert "ml-test/nope.csv" in message
    assert leftovers(dest) == []
    fixed = zip_download(server, archive)  # the verified archive was kept: no second download
    assert fetch(fixed, dest)["ratings"].read_bytes() == RATINGS
    assert len(server.requests) == 1


def test_truncated_gzip_without_checksum_is_rejected(server: FileServer, dest: Path) -> None:
    data = gzip.compress(b'{"asin": "i1", "categories": [["Beauty"]]}\n' * 500)
    url = server.put("meta_Test.json.gz", data[: len(data) // 2])  # broken on the server itself
    with pytest.raises(SeqbenchError) as exc:
        fetch(Download(url=url, role="meta"), dest)
    message = one_line(exc)
    assert "gzip" in message
    assert url in message
    assert not (dest / "meta_Test.json.gz").exists()
    assert leftovers(dest) == []


# ---------------------------------------------------------------- network failures


@pytest.mark.parametrize("status", [404, 500])
def test_http_error_is_one_line_with_the_url(
    server: FileServer, archive: bytes, dest: Path, status: int
) -> None:
    download = zip_download(server, archive)
    server.status = status
    with pytest.raises(SeqbenchError) as exc:
        fetch(download, dest)
    message = one_line(exc)
    assert f"HTTP {status}" in message
    assert download.url in message
    assert leftovers(dest) == []
    assert not (dest / "ml-test.zip").exists()


def test_connection_refused(dest: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}/ml-test.zip"
    with pytest.raises(SeqbenchError) as exc:
        fetch(Download(url=url, role="ratings"), dest)
    message = one_line(exc)
    assert "cannot reach" in message
    assert url in message


def test_timeout(dest: Path) -> None:
    with socket.socket() as sock:  # accepts connections (backlog) but never answers
        sock.bind(("127.0.0.1", 0))
        sock.listen(1)
        url = f"http://127.0.0.1:{sock.getsockname()[1]}/ml-test.zip"
        with pytest.raises(SeqbenchError) as exc:
            fetch(Download(url=url, role="ratings"), dest, timeout=0.2)
    message = one_line(exc)
    assert "no answer within 0.2 s" in message
    assert url in message


def test_prep_download_through_the_cli(
    server: FileServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cli
) -> None:
    """`seqbench prep --dataset beauty --download` end to end, the mirror standing in for SNAP."""
    rows = "".join(
        f"U{u},P{(u * 7 + k) % 23},5.0,{1_400_000_000 + k}\n" for u in range(40) for k in range(5)
    )
    server.put("ratings_Beauty.csv", rows.encode())
    monkeypatch.setenv("SEQBENCH_MIRROR", server.url)
    cache = tmp_path / "cache"
    result = cli("prep", "--dataset", "beauty", "--download", "--data-dir", str(cache))
    assert result.code == 0, result.err
    assert [r.path for r in server.requests] == ["/ratings_Beauty.csv"]
    assert (cache / "raw" / "beauty" / "ratings_Beauty.csv").read_text() == rows
    assert "interactions" in result.out and "200" in result.out
    again = cli("prep", "--dataset", "beauty", "--download", "--data-dir", str(cache))
    assert again.code == 0, again.err
    assert len(server.requests) == 1  # already fetched and verified: no network at all
    assert "reused the cache" in again.out
