"""Fashion-MNIST (Xiao, Rasul and Vollgraf, "Fashion-MNIST: a Novel Image Dataset
for Benchmarking Machine Learning Algorithms"): 28x28 grey images of clothing in
10 classes, 60,000 train and 10,000 test, in MNIST's IDX format.

jebm reads the four gzip-compressed IDX files that the Debian package
``dataset-fashion-mnist`` installs in :data:`PACKAGE_DIR`; there is no download
and no npm fallback (``dataset.source`` may be ``"auto"`` or ``"idx"``, which
mean the same here). Where the files are read from:

* ``dataset.data_dir`` when set, else
* ``$JEBM_FASHION_MNIST_DIR`` when set, else
* the package's directory, :data:`PACKAGE_DIR`.

The package's own files are checked against the SHA-256 sums recorded in
:data:`PACKAGE_SHA256`, and a mismatch is an error. A directory the user names
(``dataset.data_dir`` or the environment variable) holds the user's own copy, plain
or gzip-compressed, possibly a subset made for tests: it is read without that
check, and the data's ``source`` says whether its files are the release's.
The IDX reading and the shape, label and count checks are :mod:`jebm.data.mnist`'s.
"""

from __future__ import annotations

import hashlib
import logging
import os
import pathlib
from collections.abc import Mapping

from jebm.data import mnist
from jebm.data.mnist import MnistData, MnistDataError

__all__ = [
    "ENV_VAR",
    "INSTALL_COMMAND",
    "PACKAGE",
    "PACKAGE_DIR",
    "PACKAGE_SHA256",
    "VALID_SOURCES",
    "default_data_dir",
    "load_fashion_mnist",
]

logger = logging.getLogger(__name__)

PACKAGE = "dataset-fashion-mnist"
INSTALL_COMMAND = f"apt-get install {PACKAGE}"
PACKAGE_DIR = pathlib.Path("/usr/share/datasets/fashion-mnist")
ENV_VAR = "JEBM_FASHION_MNIST_DIR"

# SHA-256 of the package's files, as shipped (gzip-compressed).
PACKAGE_SHA256: Mapping[str, str] = {
    mnist.TRAIN_IMAGES + ".gz": "b0564c3eedabfbf835052cff8503ea422014ce006caf5b757f851416ee8300c7",
    mnist.TRAIN_LABELS + ".gz": "0ae29f65d86684f32d1b9c85147786c547b9c6aebcaf235f0400a0cce308b056",
    mnist.TEST_IMAGES + ".gz": "cc1d090a38ace84dfa1aa66e3ada7c336ef481a96936906477e6dd344da56eaa",
    mnist.TEST_LABELS + ".gz": "8d3605d196f4be44669e46906da9733c8131fef761fdbfec72c424d5222f1a05",
}

# Both read the files: Fashion-MNIST has no download or npm source.
VALID_SOURCES = ("auto", "idx")


def default_data_dir() -> tuple[pathlib.Path, bool]:
    """``($JEBM_FASHION_MNIST_DIR, False)`` when it is set, else ``(PACKAGE_DIR, True)``.

    The flag says whether the directory is the package's own (whose files are checksummed).
    """
    env = os.environ.get(ENV_VAR)
    if env:
        return pathlib.Path(env).expanduser(), False
    return PACKAGE_DIR, True


def load_fashion_mnist(data_dir: str | os.PathLike | None = None, source: str = "auto") -> MnistData:
    """Reads Fashion-MNIST's four IDX files.

    Args:
      data_dir: A directory of the four files (``train-images-idx3-ubyte``,
        ``train-labels-idx1-ubyte``, ``t10k-images-idx3-ubyte``,
        ``t10k-labels-idx1-ubyte``, each plain or ending in ``.gz``), read
        without the package checksums; None reads :func:`default_data_dir`.
      source: ``dataset.source``, one of :data:`VALID_SOURCES`.

    Returns:
      The data; its ``source`` names each file read and whether its SHA-256 is
      the package release's.

    Raises:
      ValueError: ``source`` is ``"download"``, ``"npm"`` or unknown.
      MnistDataError: a file is missing (the message names ``dataset.data_dir``,
        ``$JEBM_FASHION_MNIST_DIR`` and the install command), a package file's
        SHA-256 differs from :data:`PACKAGE_SHA256`, or the contents are not
        valid IDX data.
    """
    if source not in VALID_SOURCES:
        raise ValueError(f"dataset.source={source!r} does not apply to dataset.name='fashion_mnist' "
                         f"(valid: {list(VALID_SOURCES)}): its files come from the Debian package "
                         f"{PACKAGE} or dataset.data_dir, never from a download or npm")
    if data_dir:
        directory, packaged = pathlib.Path(data_dir).expanduser(), False
    else:
        directory, packaged = default_data_dir()
    paths = [_require(directory, name, packaged) for name in mnist.MNIST_FILES]
    digests = {path.name: _sha256(path) for path in paths}
    if packaged:
        _verify(digests, directory)
        provenance = f"SHA-256 verified against the {PACKAGE} release"
    else:
        differ = [name for name, digest in digests.items() if PACKAGE_SHA256.get(name) != digest]
        provenance = (f"user's files; SHA-256 of {', '.join(differ)} differs from the {PACKAGE} release"
                      if differ else f"user's files, SHA-256 identical to the {PACKAGE} release")
    names = ", ".join(path.name for path in paths)
    return mnist.load_idx_files(paths, source=f"Fashion-MNIST IDX files {directory}/{{{names}}} ({provenance})")


def _require(directory: pathlib.Path, name: str, packaged: bool) -> pathlib.Path:
    """The file ``name`` in ``directory``: exactly ``name.gz`` in the package, else plain or ``.gz``."""
    path = directory / f"{name}.gz" if packaged else mnist.find_idx_file(directory, name)
    if path is not None and path.is_file():
        return path
    wanted = f"{name}.gz" if packaged else f"{name} (or {name}.gz)"
    raise MnistDataError(
        f"Fashion-MNIST file {wanted} not found in {directory}. Install the Debian package with "
        f"`{INSTALL_COMMAND}` (it puts the four files in {PACKAGE_DIR}), or point dataset.data_dir "
        f"(or ${ENV_VAR}) at a directory that holds train-images-idx3-ubyte, train-labels-idx1-ubyte, "
        "t10k-images-idx3-ubyte and t10k-labels-idx1-ubyte (plain or .gz)."
    )


def _sha256(path: pathlib.Path) -> str:
    digest = hashlib.sha256()
    try:
        with path.open("rb") as handle:
            while chunk := handle.read(1 << 20):
                digest.update(chunk)
    except OSError as err:
        raise MnistDataError(f"{path}: cannot read file: {err}.") from err
    return digest.hexdigest()


def _verify(digests: Mapping[str, str], directory: pathlib.Path) -> None:
    """Raises when a package file's SHA-256 is not the recorded one."""
    bad = [f"{directory / name}: SHA-256 {digest}, expected {PACKAGE_SHA256[name]}"
           for name, digest in digests.items() if digest != PACKAGE_SHA256[name]]
    if bad:
        raise MnistDataError(
            "Fashion-MNIST checksum mismatch (the package's files are damaged or not the release jebm "
            "knows):\n  " + "\n  ".join(bad) + f"\nReinstall them with `apt-get install --reinstall {PACKAGE}`, "
            "or point dataset.data_dir at your own copy (read without this check)."
        )
