"""Fetching a dataset archive and unpacking it, safely: what `download=True` does.

`fetch(urls, path, md5)` downloads to `path + ".part"` with a progress bar, trying each
address in turn; a transfer that breaks off leaves the part file, and the next call asks the
server for the rest only (an HTTP Range request) instead of starting over. The finished file
must have the expected MD5, or it is deleted and the error says so; only then is it renamed to
`path`. `extract_tar(archive, root)` unpacks a tar under `root`, refusing any member that
would land outside it (an absolute path, `..`, a link pointing out) or is not a plain file or
folder.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import http.client
import os
import tarfile
import urllib.error
import urllib.request
from pathlib import Path

from minigrad.serialization import write_failure

CHUNK = 1 << 20


class DownloadError(OSError):
    """No address gave the file: each failure is in the message."""


def md5_of(path: Path) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as file:
        for chunk in iter(lambda: file.read(CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def fetch(urls: list[str], path, md5: str, progress: bool = True, timeout: float = 60) -> Path:
    """`path`, downloaded from the first of `urls` that works and checked against `md5`
    (nothing is fetched when `path` already exists with that MD5)."""
    path = Path(path)
    if path.is_file() and md5_of(path) == md5:
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    part = path.with_name(path.name + ".part")
    failures = []
    for url in urls:
        try:
            _fetch_one(url, part, progress, timeout)
        except _CannotWrite as error:  # this disk, not the address: another mirror cannot help
            raise DownloadError(f"download of {path.name}: {error}") from None
        except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as error:
            failures.append(f"{url}: {error}")
            continue
        actual = md5_of(part)
        if actual != md5:
            part.unlink()
            failures.append(f"{url}: the file has MD5 {actual}, expected {md5} (deleted)")
            continue
        os.replace(part, path)
        return path
    kept = (f"; the {part.stat().st_size} bytes received are kept in {part}, and the next try "
            "resumes from there" if part.exists() else "")
    raise DownloadError(f"download of {path.name} failed: " + "; ".join(failures) + kept)


def _fetch_one(url: str, part: Path, progress: bool, timeout: float) -> None:
    """Append the rest of `url` to `part` (all of it when `part` is empty or missing)."""
    have = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as error:
        if error.code == 416 and have:  # nothing left to send: the part is complete
            return
        raise
    with response:
        if have and response.status != 206:  # the server sends it all again: start over
            have = 0
        length = response.headers.get("Content-Length")
        total = have + int(length) if length is not None else None
        with _writing(part), open(part, "ab" if have else "wb") as file, _bar(
                total, have, part.name, progress) as bar:
            received = have
            for chunk in iter(lambda: response.read(CHUNK), b""):
                file.write(chunk)
                received += len(chunk)
                bar.update(len(chunk))
    if total is not None and received < total:
        raise OSError(f"the transfer ended after {received} of {total} bytes")


_LOCAL_WRITE_ERRORS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM,
                       errno.EFBIG}


class _CannotWrite(OSError):
    """The downloaded bytes cannot be written here (a full disk, a read-only folder)."""


@contextlib.contextmanager
def _writing(part: Path):
    """Errors of opening and writing `part` (not of the network) as _CannotWrite, naming it
    and what was received so far (kept: the next try resumes from there)."""
    try:
        yield
    except OSError as error:
        if error.errno not in _LOCAL_WRITE_ERRORS:  # (the network's: the next address may do)
            raise
        size = part.stat().st_size if part.exists() else 0
        raise _CannotWrite(error.errno, f"cannot write {part}: {write_failure(error)}; the "
                           f"{size} bytes received so far are kept there, and the next try "
                           "resumes from them") from None


def _bar(total, initial: int, name: str, enabled: bool):
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, unit="B", unit_scale=True, unit_divisor=1024,
                desc=f"downloading {name}", dynamic_ncols=True, disable=not enabled)


def extract_tar(archive, root) -> Path:
    """Unpack the tar `archive` under `root` (made if missing); raises ValueError, before
    writing anything, if a member would land outside `root` or is a link, device or FIFO."""
    archive, root = Path(archive), Path(root)
    root.mkdir(parents=True, exist_ok=True)
    base = root.resolve()
    with tarfile.open(archive) as tar:
        members = tar.getmembers()
        for member in members:
            target = (base / member.name).resolve()
            if member.name.startswith(("/", "\\")) or os.path.isabs(member.name) or (
                    target != base and base not in target.parents):
                raise ValueError(f"extract: {archive} holds {member.name!r}, which would land "
                                 f"outside {root}; nothing was extracted")
            if not (member.isfile() or member.isdir()):
                raise ValueError(f"extract: {archive} holds {member.name!r}, a "
                                 f"{'link' if member.issym() or member.islnk() else 'special file'}"
                                 f", which a dataset archive has no need of; nothing was "
                                 "extracted")
        if hasattr(tarfile, "data_filter"):
            tar.extractall(base, members=members, filter="data")
        else:  # Python before 3.11.4: the checks above are the filter
            tar.extractall(base, members=members)
    return root
