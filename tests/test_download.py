"""download=True against a loopback HTTP server: resumed transfers, checksums, mirrors, and
archives whose members try to escape their folder."""

from __future__ import annotations

import hashlib
import http.server
import io
import tarfile
import threading

import pytest

from minigrad.data import VOCClassification, download_voc, make_synthetic_voc, voc
from minigrad.data.download import DownloadError, extract_tar, fetch


class Server:
    """Serves `files` (path -> bytes) on 127.0.0.1, honouring Range requests; `truncate`
    paths send their first response cut in half (the full Content-Length announced)."""

    def __init__(self, files, truncate=(), ranges=True):
        self.files, self.truncate, self.ranges, self.requests = files, set(truncate), ranges, []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                outer.requests.append((self.path, self.headers.get("Range")))
                data = outer.files.get(self.path)
                if data is None:
                    self.send_error(404)
                    return
                start, status = 0, 200
                wanted = self.headers.get("Range")
                if wanted and outer.ranges:
                    start, status = int(wanted.split("=")[1].rstrip("-")), 206
                    if start >= len(data):
                        self.send_error(416)
                        return
                body = data[start:]
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                if status == 206:
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                self.end_headers()
                if self.path in outer.truncate:
                    outer.truncate.discard(self.path)
                    body = body[: len(body) // 2]
                self.wfile.write(body)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def voc_tar(tmp_path_factory):
    """A small VOC2012 trainval tar (VOCdevkit/VOC2012/...) and its MD5."""
    source = tmp_path_factory.mktemp("source")
    make_synthetic_voc(source, n_images=8, image_size=32)
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        tar.add(source / "VOCdevkit", arcname="VOCdevkit")
    data = buffer.getvalue()
    return data, hashlib.md5(data).hexdigest()


def _serve_voc(monkeypatch, data, md5, **server_options):
    server = Server({"/voc.tar": data}, **server_options)
    monkeypatch.setitem(voc.VOC_ARCHIVES, "2012", {
        "file": "VOCtrainval_11-May-2012.tar", "md5": md5,
        "urls": [server.url + "/missing.tar", server.url + "/voc.tar"]})
    return server


def test_download_true_fetches_checks_and_unpacks_voc_then_skips_it(tmp_path, monkeypatch,
                                                                     voc_tar, capsys):
    data, md5 = voc_tar
    server = _serve_voc(monkeypatch, data, md5)
    try:
        train = VOCClassification(tmp_path, image_set="train", download=True)
        assert len(train) == 6 and train.targets.shape == (6, 20)
        assert [path for path, _ in server.requests] == ["/missing.tar", "/voc.tar"]  # mirror
        assert "downloading VOCtrainval_11-May-2012.tar" in capsys.readouterr().err
        server.requests.clear()
        assert len(VOCClassification(tmp_path, image_set="val", download=True)) == 2
        assert server.requests == []  # the tree is there: nothing fetched
    finally:
        server.close()


def test_a_broken_transfer_is_resumed_where_it_stopped(tmp_path, monkeypatch, voc_tar):
    data, md5 = voc_tar
    server = _serve_voc(monkeypatch, data, md5, truncate={"/voc.tar"})
    try:
        with pytest.raises(DownloadError, match=r"ended after \d+ of \d+ bytes.*kept in .*"
                                                r"\.part.*resumes"):
            download_voc(tmp_path, progress=False)
        part = tmp_path / "VOCtrainval_11-May-2012.tar.part"
        assert part.stat().st_size == (len(data) // 2)
        folder = download_voc(tmp_path, progress=False)
        assert (folder / "JPEGImages").is_dir() and not part.exists()
        assert server.requests[-1] == ("/voc.tar", f"bytes={len(data) // 2}-")
    finally:
        server.close()


def test_a_server_that_ignores_range_makes_the_download_start_over(tmp_path, voc_tar):
    data, md5 = voc_tar
    server = Server({"/f": data}, ranges=False)
    try:
        part = tmp_path / "f.tar.part"
        part.write_bytes(data[:100] + b"garbage")
        fetch([server.url + "/f"], tmp_path / "f.tar", md5, progress=False)
        assert (tmp_path / "f.tar").read_bytes() == data
    finally:
        server.close()


def test_a_wrong_checksum_deletes_the_file_and_says_so(tmp_path, voc_tar):
    data, _ = voc_tar
    server = Server({"/f": data})
    try:
        with pytest.raises(DownloadError, match=r"/f: the file has MD5 [0-9a-f]{32}, expected "
                                                r"0{32} \(deleted\)"):
            fetch([server.url + "/f"], tmp_path / "f.tar", "0" * 32, progress=False)
        assert list(tmp_path.iterdir()) == []
    finally:
        server.close()


def _tar_with(member: tarfile.TarInfo, content: bytes = b"x") -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        good = tarfile.TarInfo("VOCdevkit/ok.txt")
        good.size = 1
        tar.addfile(good, io.BytesIO(b"k"))
        if member.isfile():
            member.size = len(content)
            tar.addfile(member, io.BytesIO(content))
        else:
            tar.addfile(member)
    return buffer.getvalue()


@pytest.mark.parametrize("make, message", [
    (lambda: tarfile.TarInfo("../escaped.txt"), "would land outside"),
    (lambda: tarfile.TarInfo("VOCdevkit/../../escaped.txt"), "would land outside"),
    (lambda: tarfile.TarInfo("/tmp/escaped.txt"), "would land outside"),
    (lambda: _link("VOCdevkit/link", "../../escaped.txt"), "a link"),
])
def test_an_archive_member_that_tries_to_escape_is_refused_before_anything_is_written(
        tmp_path, make, message):
    archive = tmp_path / "evil.tar"
    archive.write_bytes(_tar_with(make()))
    root = tmp_path / "root"
    with pytest.raises(ValueError, match=f"evil.tar holds .*{message}.*nothing was extracted"):
        extract_tar(archive, root)
    assert not (tmp_path / "escaped.txt").exists() and not (root / "VOCdevkit").exists()


def _link(name, target):
    info = tarfile.TarInfo(name)
    info.type, info.linkname = tarfile.SYMTYPE, target
    return info


def test_a_server_that_breaks_http_is_one_failure_and_the_mirror_is_tried(tmp_path, voc_tar):
    """A status line of garbage raises http.client's own errors (not OSError): before, they
    escaped and the working mirror was never tried."""
    import socket

    data, md5 = voc_tar
    broken = socket.socket()
    broken.bind(("127.0.0.1", 0))
    broken.listen()

    def answer_garbage():
        connection, _ = broken.accept()
        connection.recv(65536)
        connection.sendall(b"GARBAGE\r\n\r\n")
        connection.close()

    threading.Thread(target=answer_garbage, daemon=True).start()
    server = Server({"/f": data})
    try:
        port = broken.getsockname()[1]
        fetch([f"http://127.0.0.1:{port}/f", server.url + "/f"], tmp_path / "f.tar", md5,
              progress=False)
        assert (tmp_path / "f.tar").read_bytes() == data
    finally:
        server.close()
        broken.close()
