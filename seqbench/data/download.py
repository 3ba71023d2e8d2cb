"""Fetch public dataset files: resumable, checked before use, with a progress bar.

A download is written to `<filename>.part` and only renamed to `<filename>` once it is complete
and verified, so a file under its final name is always whole. `downloads.json` in the same
directory records what was verified (url, size, sha256, md5, extracted members), so a later run
finds everything in place without touching the network. Every failure a user can act on (no
network, HTTP error, dropped transfer, checksum mismatch) is a one-line `SeqbenchError`.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import http.client
import json
import logging
import os
import re
import secrets
import zipfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.error import HTTPError, URLError
from urllib.request import Request, urlopen

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from seqbench import __version__
from seqbench.data.presets import Download
from seqbench.errors import SeqbenchError
from seqbench.fsutil import atomic_write_json, writable_dir

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX: downloads are simply not locked
    fcntl = None  # type: ignore[assignment]

log = logging.getLogger(__name__)

MANIFEST = "downloads.json"
MIRROR_ENV = "SEQBENCH_MIRROR"
CHUNK = 1 << 20
USER_AGENT = f"seqbench/{__version__} (+python urllib)"
_CONTENT_RANGE = re.compile(r"bytes\s+(\d+)-(\d+)/(\d+|\*)")
_RANGE_TOTAL = re.compile(r"bytes\s+\*/(\d+)")

Advance = Callable[[int], None]


def mirror_from_env() -> str | None:
    """The base URL in SEQBENCH_MIRROR, for sites that must fetch through their own mirror."""
    value = os.environ.get(MIRROR_ENV, "").strip().rstrip("/")
    return value or None


def source_url(download: Download, mirror: str | None = None) -> str:
    """Where the file is actually fetched from: the mirror (by file name) or the official URL."""
    return f"{mirror.rstrip('/')}/{download.filename}" if mirror else download.url


def fetch(
    download: Download,
    dest_dir: Path,
    *,
    console: Console | None = None,
    mirror: str | None = None,
    timeout: float = 60.0,
) -> dict[str, Path]:
    """Make the files of `download` available in dest_dir and return {role: path}.

    Files already fetched and verified are returned without any network access; a `.part`
    left by an interrupted run is resumed. `console` shows a progress bar, `mirror` replaces
    the host (see `mirror_from_env`), `timeout` bounds connecting and each read (seconds).
    """
    dest_dir = writable_dir(Path(dest_dir), "download directory")
    files = _verified_files(download, dest_dir)
    if files is not None:
        log.debug("%s: already downloaded and verified", download.filename)
        return files
    with _dir_lock(dest_dir):
        files = _verified_files(download, dest_dir)  # another process may have just finished
        if files is not None:
            return files
        archive = dest_dir / download.filename
        record = _existing_record(download, archive)
        if record is None:
            url = source_url(download, mirror)
            record = _download_verified(download, archive, url, console=console, timeout=timeout)
            _save_record(dest_dir, download.filename, {**record, "members": {}})
        if download.members:
            record["members"] = _extract_members(
                download, archive, record.get("source", download.url)
            )
        else:
            record["members"] = {}
        _save_record(dest_dir, download.filename, record)
        return _role_paths(download, dest_dir, record)


# ---------------------------------------------------------------- manifest


def _load_manifest(dest_dir: Path) -> dict[str, Any]:
    """The manifest, or an empty one: an unreadable manifest only costs a fresh check."""
    path = dest_dir / MANIFEST
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        data = {}
    except (OSError, ValueError) as exc:
        log.warning("ignoring unreadable %s (%s)", path, exc)
        data = {}
    if not isinstance(data, dict):
        data = {}
    for key in ("files", "partial"):
        if not isinstance(data.get(key), dict):
            data[key] = {}
    data["version"] = 1
    return data


def _save_record(dest_dir: Path, filename: str, record: dict[str, Any]) -> None:
    manifest = _load_manifest(dest_dir)
    manifest["files"][filename] = record
    manifest["partial"].pop(filename, None)
    atomic_write_json(dest_dir / MANIFEST, manifest)


def _forget(dest_dir: Path, filename: str) -> None:
    """Drop what the manifest says about `filename` (after removing a bad file)."""
    manifest = _load_manifest(dest_dir)
    if manifest["files"].pop(filename, None) or manifest["partial"].pop(filename, None):
        atomic_write_json(dest_dir / MANIFEST, manifest)


def _remember_partial(part: Path, url: str, validator: str | None) -> None:
    """Note which server and version a `.part` came from, so a resume can send If-Range."""
    manifest = _load_manifest(part.parent)
    manifest["partial"][_final_name(part)] = {"source": url, "validator": validator}
    atomic_write_json(part.parent / MANIFEST, manifest)


def _partial_validator(part: Path, url: str) -> str | None:
    info = _load_manifest(part.parent)["partial"].get(_final_name(part))
    if isinstance(info, dict) and info.get("source") == url:
        return info.get("validator")
    return None


def _final_name(part: Path) -> str:
    return part.name.removesuffix(".part")


def _size_is(path: Path, size: Any) -> bool:
    try:
        return isinstance(size, int) and path.stat().st_size == size
    except OSError:
        return False


def _record_matches(download: Download, record: Any) -> bool:
    """Whether a manifest record is about this download and as strongly verified as it asks."""
    if not isinstance(record, dict) or record.get("url") != download.url:
        return False
    if download.md5:
        return bool(record.get("md5_verified")) and record.get("md5") == download.md5.lower()
    return True


def _verified_files(download: Download, dest_dir: Path) -> dict[str, Path] | None:
    """{role: path} when the manifest vouches for every file and they are still there."""
    record = _load_manifest(dest_dir)["files"].get(download.filename)
    if not _record_matches(download, record):
        return None
    if not download.members:
        if not _size_is(dest_dir / download.filename, record.get("size")):
            return None
        return _role_paths(download, dest_dir, record)
    members = record.get("members") or {}
    files: dict[str, Path] = {}
    for role, member in download.members.items():
        entry = members.get(role)
        if not isinstance(entry, dict) or entry.get("member") != member:
            return None
        pinned = download.member_sha256.get(role)
        if pinned and entry.get("sha256") != pinned.lower():
            return None
        path = dest_dir / str(entry.get("path"))
        if not _size_is(path, entry.get("size")):
            return None
        files[role] = path
    return files


def _role_paths(download: Download, dest_dir: Path, record: dict[str, Any]) -> dict[str, Path]:
    if download.members:
        return {role: dest_dir / m["path"] for role, m in record["members"].items()}
    return {download.role or download.filename: dest_dir / download.filename}


def _existing_record(download: Download, archive: Path) -> dict[str, Any] | None:
    """A record for a downloaded file already in place (so only extraction is left), or None."""
    if not archive.is_file():
        return None
    record = _load_manifest(archive.parent)["files"].get(download.filename)
    if _record_matches(download, record) and _size_is(archive, record.get("size")):
        return dict(record)
    if download.md5:
        sha256, md5 = _digests(archive)
        if md5 == download.md5.lower():
            log.info("%s: found in %s, md5 verified", download.filename, archive.parent)
            return _new_record(download, archive, download.url, sha256, md5, verified=True)
    log.info("%s exists but was not verified by seqbench; downloading it again", archive)
    return None


def _new_record(
    download: Download, path: Path, url: str, sha256: str, md5: str, *, verified: bool
) -> dict[str, Any]:
    return {
        "url": download.url,
        "source": url,
        "size": path.stat().st_size,
        "sha256": sha256,
        "md5": md5,
        "md5_verified": verified,
    }


# ---------------------------------------------------------------- download


@contextlib.contextmanager
def _dir_lock(directory: Path) -> Iterator[None]:
    """Serialise downloads into one directory, so two runs never append to the same `.part`."""
    if fcntl is None:
        yield
        return
    fd = os.open(directory, os.O_RDONLY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log.info("another seqbench process is downloading into %s; waiting for it", directory)
            fcntl.flock(fd, fcntl.LOCK_EX)
        except OSError:  # a filesystem without flock: go on unlocked
            log.debug("cannot lock %s; downloading without a lock", directory)
        yield
    finally:
        os.close(fd)


def _download_verified(
    download: Download, archive: Path, url: str, *, console: Console | None, timeout: float
) -> dict[str, Any]:
    """Download to `.part`, verify, and only then rename to the final name."""
    part = archive.with_name(archive.name + ".part")
    total = _transfer(url, part, console=console, timeout=timeout)
    record = _verify(download, part, url, total)
    os.replace(part, archive)
    return record


class _Restart(Exception):
    """The server's answer does not fit the partial file: discard it and start from zero."""


@dataclass
class _Opened:
    response: Any  # http.client.HTTPResponse or urllib's addinfourl (file: mirrors)
    start: int  # the byte the body starts at
    total: int | None  # the full file size, when the server said


def _transfer(url: str, part: Path, *, console: Console | None, timeout: float) -> int | None:
    """Bring `part` up to the whole file, resuming it if it exists; the full size if known."""
    for _attempt in range(2):
        offset = part.stat().st_size if part.exists() else 0
        try:
            opened = _open(url, offset, _partial_validator(part, url) if offset else None, timeout)
        except _Restart as exc:
            log.warning("%s: %s; downloading it again from the start", part.name, exc)
            part.unlink(missing_ok=True)
            continue
        if opened.response is None:  # 416 for a part that is already whole
            return opened.total
        with opened.response as response:
            if opened.start == 0:
                _remember_partial(part, url, _validator(response))
            _stream(response, part, url, opened, console, timeout)
        return opened.total
    raise SeqbenchError(f"download failed: {url} keeps answering range requests wrongly")


def _open(url: str, offset: int, validator: str | None, timeout: float) -> _Opened:
    """Send the request (with Range when resuming) and read where the body starts."""
    headers = {"User-Agent": USER_AGENT}
    if offset:
        headers["Range"] = f"bytes={offset}-"
        if validator:
            headers["If-Range"] = validator
        log.info("resuming %s from byte %d", url, offset)
    else:
        log.info("downloading %s", url)
    try:
        request = Request(url, headers=headers)
        response = urlopen(request, timeout=timeout)
    except HTTPError as exc:
        exc.close()
        if exc.code == 416 and offset:
            return _not_satisfiable(exc.headers.get("Content-Range"), offset)
        raise SeqbenchError(f"download failed: HTTP {exc.code} {exc.reason} for {url}") from None
    except (URLError, OSError, http.client.HTTPException, ValueError) as exc:
        raise SeqbenchError(
            f"download failed: cannot reach {url}: {_reason(exc, timeout)}"
        ) from None
    return _body_start(response, offset)


def _not_satisfiable(content_range: str | None, offset: int) -> _Opened:
    """416: the part is either already whole (size == total) or longer than the file."""
    match = _RANGE_TOTAL.search(content_range or "")
    if match and int(match[1]) == offset:
        log.info("the partial download is already complete (%d bytes)", offset)
        return _Opened(None, offset, offset)
    have = f"the server has {match[1]} bytes" if match else "the server refused the range"
    raise _Restart(f"partial file of {offset} bytes does not fit ({have})")


def _body_start(response: Any, offset: int) -> _Opened:
    """Where the body of a 200/206 answer starts and how big the whole file is."""
    length = _int(response.headers.get("Content-Length"))
    if getattr(response, "status", None) != 206:
        if offset:
            log.info("the server sent the whole file instead of the rest; starting from zero")
        return _Opened(response, 0, length)
    match = _CONTENT_RANGE.search(response.headers.get("Content-Range") or "")
    if not match or int(match[1]) != offset:
        response.close()
        raise _Restart(
            f"the server answered a resume at byte {offset} with "
            f"Content-Range {response.headers.get('Content-Range')!r}"
        )
    if match[3] != "*":
        total: int | None = int(match[3])
    else:
        total = offset + length if length is not None else None
    return _Opened(response, offset, total)


def _validator(response: Any) -> str | None:
    """A strong ETag or Last-Modified: lets a resume ask for the rest only if unchanged."""
    etag = response.headers.get("ETag")
    if etag and not etag.startswith("W/"):
        return etag
    return response.headers.get("Last-Modified")


def _int(text: str | None) -> int | None:
    try:
        return int(text) if text is not None else None
    except ValueError:
        return None


def _reason(exc: BaseException, timeout: float) -> str:
    """A short human reason for a network error (URLError wraps the real one)."""
    reason: Any = getattr(exc, "reason", None) if isinstance(exc, URLError) else exc
    if isinstance(reason, TimeoutError) or "timed out" in str(reason):
        return f"no answer within {timeout:g} s"
    if isinstance(reason, OSError) and reason.strerror:
        return reason.strerror
    return str(reason) or type(reason).__name__


def _stream(
    response: Any, part: Path, url: str, opened: _Opened, console: Console | None, timeout: float
) -> None:
    """Copy the body to `part` chunk by chunk (appending when resuming), with progress."""
    start, total = opened.start, opened.total
    written = start
    with (
        open(part, "ab" if start else "wb") as out,
        _progress(console, _final_name(part), total, start) as advance,
    ):
        while True:
            try:
                chunk = response.read(CHUNK)
            except (OSError, http.client.HTTPException) as exc:
                raise _interrupted(url, part, written, total, _reason(exc, timeout)) from None
            if not chunk:
                break
            try:
                out.write(chunk)
            except OSError as exc:
                raise SeqbenchError(f"cannot write {part}: {exc.strerror or exc}") from None
            written += len(chunk)
            advance(len(chunk))
    if total is not None and written < total:
        raise _interrupted(url, part, written, total, "connection closed early")


def _interrupted(url: str, part: Path, written: int, total: int | None, why: str) -> SeqbenchError:
    of = f"{written} of {total} bytes" if total is not None else f"{written} bytes"
    return SeqbenchError(
        f"download of {url} broke off ({why}): the partial file {part} "
        f"({of}) is kept, run again to resume it"
    )


@contextlib.contextmanager
def _progress(
    console: Console | None, name: str, total: int | None, start: int
) -> Iterator[Advance]:
    """A Rich download bar starting at the resumed offset; a no-op without a console."""
    if console is None:
        yield lambda _n: None
        return
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=console) as progress:
        task = progress.add_task(name, total=total, completed=start)
        yield lambda n: progress.advance(task, n)


# ---------------------------------------------------------------- verification


def _digests(path: Path) -> tuple[str, str]:
    """sha256 and md5 of a file in one pass (md5 only to compare with published sums)."""
    sha256 = hashlib.sha256()
    md5 = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as f:
        while block := f.read(CHUNK):
            sha256.update(block)
            md5.update(block)
    return sha256.hexdigest(), md5.hexdigest()


def _verify(download: Download, part: Path, url: str, total: int | None) -> dict[str, Any]:
    """Check the finished `.part` (md5, or completeness without one); remove it when bad."""
    size = part.stat().st_size
    if total is not None and size != total:
        _discard(part)
        raise SeqbenchError(
            f"download of {url} has {size} bytes but the server announced "
            f"{total}; the file was removed, run again to download it afresh"
        )
    sha256, md5 = _digests(part)
    if download.md5:
        if md5 != download.md5.lower():
            _discard(part)
            raise SeqbenchError(
                f"checksum mismatch for {url}: expected md5 {download.md5}, "
                f"got {md5}; the file was removed, run again to download it "
                "afresh"
            )
        log.info("%s: md5 verified", download.filename)
        return _new_record(download, part, url, sha256, md5, verified=True)
    problem = _incomplete(part, download.filename)
    if problem:
        _discard(part)
        raise SeqbenchError(
            f"download of {url} is damaged ({problem}); the file was removed, "
            "run again to download it afresh"
        )
    log.info(
        "%s: no published checksum exists; checked it is complete and recorded sha256 %s in %s",
        download.filename,
        sha256,
        MANIFEST,
    )
    return _new_record(download, part, url, sha256, md5, verified=False)


def _incomplete(path: Path, filename: str) -> str | None:
    """Why a file without a published checksum is not whole, or None (gzip CRC, zip index)."""
    try:
        if filename.endswith(".gz"):
            with gzip.open(path, "rb") as f:
                while f.read(CHUNK):
                    pass
        elif filename.endswith(".zip"):
            with zipfile.ZipFile(path):
                pass
    except (OSError, EOFError, zlib.error, zipfile.BadZipFile) as exc:
        kind = "gzip" if filename.endswith(".gz") else "zip"
        return f"not a complete {kind} file: {exc}"
    return None


def _discard(part: Path) -> None:
    part.unlink(missing_ok=True)
    _forget(part.parent, _final_name(part))


# ---------------------------------------------------------------- extraction


def _extract_members(download: Download, archive: Path, url: str) -> dict[str, dict[str, Any]]:
    """Extract each member next to the archive; {role: manifest entry}."""
    try:
        zf = zipfile.ZipFile(archive)
    except (OSError, zipfile.BadZipFile) as exc:
        _discard_archive(archive)
        raise SeqbenchError(
            f"{archive} from {url} is not a readable zip archive ({exc}); "
            "it was removed, run again to download it afresh"
        ) from None
    with zf:
        return {
            role: _extract_one(zf, archive, member, download.member_sha256.get(role))
            for role, member in download.members.items()
        }


def _extract_one(
    zf: zipfile.ZipFile, archive: Path, member: str, pinned: str | None
) -> dict[str, Any]:
    """Extract one member via a temp file; checked against `pinned` sha256 before the rename."""
    try:
        info = zf.getinfo(member)
    except KeyError:
        raise SeqbenchError(f"archive {archive} has no member {member!r}") from None
    target = archive.parent / PurePosixPath(member).name
    fd, tmp = _create_temp(target)
    try:
        digest = hashlib.sha256()
        with os.fdopen(fd, "wb") as out, zf.open(info) as src:
            while block := src.read(CHUNK):
                digest.update(block)
                out.write(block)
        sha256 = digest.hexdigest()
        if pinned and sha256 != pinned.lower():
            raise SeqbenchError(
                f"checksum mismatch for {member} in {archive}: expected sha256 "
                f"{pinned}, got {sha256}; the extracted file was removed"
            )
        os.replace(tmp, target)
    except (EOFError, zlib.error, zipfile.BadZipFile) as exc:
        _discard_archive(archive)
        raise SeqbenchError(
            f"cannot extract {member} from {archive} ({exc}); the archive was "
            "removed, run again to download it afresh"
        ) from None
    except OSError as exc:
        raise SeqbenchError(
            f"cannot extract {member} from {archive} to {target}: {exc.strerror or exc}"
        ) from None
    finally:
        tmp.unlink(missing_ok=True)
    log.info("extracted %s", target)
    return {"member": member, "path": target.name, "size": target.stat().st_size, "sha256": sha256}


def _create_temp(target: Path) -> tuple[int, Path]:
    """A fresh hidden `.part` next to `target` (ignored by source discovery; honours umask)."""
    while True:
        tmp = target.with_name(f".{target.name}.{secrets.token_hex(4)}.part")
        try:
            return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666), tmp
        except FileExistsError:
            continue


def _discard_archive(archive: Path) -> None:
    archive.unlink(missing_ok=True)
    _forget(archive.parent, archive.name)
