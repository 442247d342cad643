"""Tiny data files in the exact official formats, and a bounded local HTTP server, for the dataset tests.

* CIFAR batches are written byte for byte the way the official Python 2 ``cPickle`` (protocol 2)
  files are: ``SHORT_BINSTRING``/``BINSTRING`` byte strings, ``BININT*`` ints, memo ``BINPUT`` s,
  and the array through ``numpy.core.multiarray._reconstruct`` / ``numpy.ndarray`` /
  ``numpy.dtype('u1', False, True)`` with a ``BUILD`` of ``(1, shape, dtype, False, raw bytes)``.
  (Python 3's own pickler cannot produce this: it writes bytes through ``_codecs.encode``.)
* ``mnist.npz`` is ``np.savez_compressed`` of x_train/y_train/x_test/y_test.
* Fashion-MNIST files are IDX (big-endian header) compressed with gzip.
* :class:`LocalServer` serves given bytes on 127.0.0.1 only, from a daemon thread that a watchdog
  stops after at most ``lifetime`` seconds; it can cut a response off mid-body to simulate an
  interrupted download.
"""

import gzip
import hashlib
import http.server
import os
import struct
import tarfile
import threading

import numpy as np
import pytest

CIFAR10_DIR = "cifar-10-batches-py"
CIFAR100_DIR = "cifar-100-python"
FASHION_FILES = (
    "train-labels-idx1-ubyte.gz",
    "train-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
)


# --------------------------------------------------------------------------------------------------
# Python 2 cPickle, protocol 2


class _Py2Pickler:
    """Just enough of Python 2's cPickle (protocol 2) for CIFAR batches: dict, list, tuple, str
    (given as bytes), int, bool, None and 2-D uint8 numpy arrays."""

    def __init__(self):
        self.out = bytearray(b"\x80\x02")  # PROTO 2
        self.memo = 0

    def _put(self):  # BINPUT / LONG_BINPUT, as cPickle memoises every container and string
        self.out += (
            (b"q" + bytes([self.memo]))
            if self.memo < 256
            else (b"r" + struct.pack("<I", self.memo))
        )
        self.memo += 1

    def dump(self, obj):
        self.write(obj)
        self.out += b"."  # STOP
        return bytes(self.out)

    def write(self, obj):
        if obj is None:
            self.out += b"N"
        elif isinstance(obj, bool):
            self.out += b"\x88" if obj else b"\x89"  # NEWTRUE / NEWFALSE
        elif isinstance(obj, int):
            if 0 <= obj < 256:
                self.out += b"K" + bytes([obj])  # BININT1
            elif 0 <= obj < 65536:
                self.out += b"M" + struct.pack("<H", obj)  # BININT2
            else:
                self.out += b"J" + struct.pack("<i", obj)  # BININT
        elif isinstance(obj, bytes):  # a Python 2 str
            if len(obj) < 256:
                self.out += b"U" + bytes([len(obj)]) + obj  # SHORT_BINSTRING
            else:
                self.out += b"T" + struct.pack("<I", len(obj)) + obj  # BINSTRING
            self._put()
        elif isinstance(obj, tuple):
            if 1 <= len(obj) <= 3:
                for item in obj:
                    self.write(item)
                self.out += {1: b"\x85", 2: b"\x86", 3: b"\x87"}[len(obj)]  # TUPLE1/2/3
            else:
                self.out += b"("  # MARK
                for item in obj:
                    self.write(item)
                self.out += b"t"  # TUPLE
            self._put()
        elif isinstance(obj, list):
            self.out += b"]"  # EMPTY_LIST
            self._put()
            for start in range(0, len(obj), 1000):  # cPickle batches APPENDS by 1000
                self.out += b"("
                for item in obj[start : start + 1000]:
                    self.write(item)
                self.out += b"e"  # APPENDS
        elif isinstance(obj, dict):
            self.out += b"}"  # EMPTY_DICT
            self._put()
            items = list(obj.items())
            for start in range(0, len(items), 1000):
                self.out += b"("
                for key, value in items[start : start + 1000]:
                    self.write(key)
                    self.write(value)
                self.out += b"u"  # SETITEMS
        elif isinstance(obj, np.ndarray):
            assert obj.dtype == np.uint8, "the official batches hold uint8 arrays only"
            self.out += b"cnumpy.core.multiarray\n_reconstruct\n"  # GLOBAL
            self._put()
            self.out += b"cnumpy\nndarray\n"
            self._put()
            self.write((0,))
            self.write(b"b")
            self.out += b"\x87"
            self._put()
            self.out += b"R"  # REDUCE: _reconstruct(ndarray, (0,), 'b')
            self._put()
            self.out += b"("
            self.write(1)
            self.write(tuple(obj.shape))
            self.out += b"cnumpy\ndtype\n"
            self._put()
            self.write(b"u1")
            self.write(False)
            self.write(True)
            self.out += b"\x87"
            self._put()
            self.out += b"R"  # numpy.dtype('u1', False, True)
            self._put()
            self.write((3, b"|", None, None, None, -1, -1, 0))
            self.out += b"b"  # BUILD: the dtype's state
            self.write(False)  # not Fortran order
            self.write(np.ascontiguousarray(obj).tobytes())
            self.out += b"t"
            self._put()
            self.out += b"b"  # BUILD: the array's state
        else:
            raise TypeError("py2 pickler: unsupported {}".format(type(obj).__name__))


def py2_pickle(obj):
    """Bytes of ``obj`` as Python 2's cPickle.dump(obj, f, 2) writes them (bytes stand for str)."""
    return _Py2Pickler().dump(obj)


CIFAR10_LABEL_NAMES = [
    b"airplane",
    b"automobile",
    b"bird",
    b"cat",
    b"deer",
    b"dog",
    b"frog",
    b"horse",
    b"ship",
    b"truck",
]


def write_cifar10_meta(folder, per_batch):
    """<folder>/batches.meta as the official archive has it (its keys in the official order)."""
    meta = {
        b"num_cases_per_batch": per_batch,
        b"label_names": CIFAR10_LABEL_NAMES,
        b"num_vis": 3072,
    }
    with open(os.path.join(folder, "batches.meta"), "wb") as f:
        f.write(py2_pickle(meta))


# --------------------------------------------------------------------------------------------------
# CIFAR


def _cifar_rows(rng, n):
    return rng.integers(0, 256, size=(n, 3072), dtype=np.uint8)


def expected_channels_last(rows):
    """What Keras returns for batch rows: (N, 3072) -> (N, 3, 32, 32) -> transpose to (N, 32, 32, 3)."""
    return rows.reshape(len(rows), 3, 32, 32).transpose(0, 2, 3, 1)


def write_cifar10(root, rows_per_batch=3, test_rows=4, batches=(1, 2, 3, 4, 5), seed=0):
    """Write ``root/cifar-10-batches-py/`` with the given training batches; return the expected arrays.

    Returns a dict with 'dir', 'x_train' (N, 32, 32, 3), 'y_train', 'x_test', 'y_test' (1-D).
    """
    rng = np.random.default_rng(seed)
    folder = os.path.join(root, CIFAR10_DIR)
    os.makedirs(folder, exist_ok=True)
    train_rows, train_labels = [], []
    for i in batches:
        rows = _cifar_rows(rng, rows_per_batch)
        labels = [int(v) for v in rng.integers(0, 10, size=rows_per_batch)]
        batch = {
            b"batch_label": "training batch {} of 5".format(i).encode(),
            b"labels": labels,
            b"data": rows,
            b"filenames": [b"img_%d_%d.png" % (i, k) for k in range(rows_per_batch)],
        }
        with open(os.path.join(folder, "data_batch_{}".format(i)), "wb") as f:
            f.write(py2_pickle(batch))
        train_rows.append(rows)
        train_labels += labels
    test = _cifar_rows(rng, test_rows)
    test_labels = [int(v) for v in rng.integers(0, 10, size=test_rows)]
    with open(os.path.join(folder, "test_batch"), "wb") as f:
        f.write(
            py2_pickle(
                {
                    b"batch_label": b"testing batch 1 of 1",
                    b"labels": test_labels,
                    b"data": test,
                    b"filenames": [b"t_%d.png" % k for k in range(test_rows)],
                }
            )
        )
    write_cifar10_meta(folder, 10000)
    with open(os.path.join(folder, "readme.html"), "w") as f:
        f.write(
            "<meta HTTP-EQUIV=\"REFRESH\" content=\"0; url=http://www.cs.toronto.edu/~kriz/cifar.html\">\n"
        )
    rows = np.concatenate(train_rows) if train_rows else np.zeros((0, 3072), np.uint8)
    return {
        "dir": folder,
        "x_train": expected_channels_last(rows),
        "y_train": np.array(train_labels, np.uint8),
        "x_test": expected_channels_last(test),
        "y_test": np.array(test_labels),
    }


def write_cifar100(root, train_rows=5, test_rows=3, seed=1):
    """Write ``root/cifar-100-python/`` (train, test, meta); return the expected arrays per label mode."""
    rng = np.random.default_rng(seed)
    folder = os.path.join(root, CIFAR100_DIR)
    os.makedirs(folder, exist_ok=True)
    expected = {"dir": folder}
    for name, n in (("train", train_rows), ("test", test_rows)):
        rows = _cifar_rows(rng, n)
        fine = [int(v) for v in rng.integers(0, 100, size=n)]
        coarse = [int(v) for v in rng.integers(0, 20, size=n)]
        with open(os.path.join(folder, name), "wb") as f:
            f.write(
                py2_pickle(
                    {
                        b"filenames": [b"f%d.png" % k for k in range(n)],
                        b"batch_label": name.encode(),
                        b"fine_labels": fine,
                        b"coarse_labels": coarse,
                        b"data": rows,
                    }
                )
            )
        expected["x_" + name] = expected_channels_last(rows)
        expected["fine_" + name] = np.array(fine)
        expected["coarse_" + name] = np.array(coarse)
    with open(os.path.join(folder, "meta"), "wb") as f:
        f.write(
            py2_pickle(
                {b"fine_label_names": [b"apple"] * 100, b"coarse_label_names": [b"fish"] * 20}
            )
        )
    return expected


def make_tar_gz(source_dir, archive_path, arcname=None):
    """Pack ``source_dir`` as ``arcname/`` (default: its own name) into a .tar.gz; return its path."""
    with tarfile.open(archive_path, "w:gz") as archive:
        archive.add(source_dir, arcname=arcname or os.path.basename(source_dir))
    return archive_path


# --------------------------------------------------------------------------------------------------
# MNIST and Fashion-MNIST


def write_mnist_npz(path, n_train=6, n_test=3, seed=2):
    """Write an ``mnist.npz`` (x (N, 28, 28) uint8, y (N,) uint8); return the expected arrays."""
    rng = np.random.default_rng(seed)
    arrays = {
        "x_train": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "y_train": rng.integers(0, 10, n_train, dtype=np.uint8),
        "x_test": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "y_test": rng.integers(0, 10, n_test, dtype=np.uint8),
    }
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    np.savez_compressed(path, **arrays)
    return arrays


def idx_bytes(array):
    """IDX encoding of a uint8 array: magic 00 00 08 <ndim>, big-endian uint32 sizes, data."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    return (
        bytes([0, 0, 0x08, array.ndim])
        + struct.pack(">" + "I" * array.ndim, *array.shape)
        + array.tobytes()
    )


def fashion_payloads(n_train=5, n_test=3, seed=3):
    """The four Fashion-MNIST files as {name: gzipped bytes}, and the expected arrays."""
    rng = np.random.default_rng(seed)
    arrays = {
        "y_train": rng.integers(0, 10, n_train, dtype=np.uint8),
        "x_train": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "y_test": rng.integers(0, 10, n_test, dtype=np.uint8),
        "x_test": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
    }
    order = ("y_train", "x_train", "y_test", "x_test")
    payloads = {
        name: gzip.compress(idx_bytes(arrays[key]), mtime=0)
        for name, key in zip(FASHION_FILES, order)
    }
    return payloads, arrays


def write_fashion_mnist(folder, gz=True, **kwargs):
    """Write the four IDX files (gzipped, or unzipped with ``gz=False``) into ``folder``."""
    payloads, arrays = fashion_payloads(**kwargs)
    os.makedirs(folder, exist_ok=True)
    for name, data in payloads.items():
        if gz:
            with open(os.path.join(folder, name), "wb") as f:
                f.write(data)
        else:
            with open(os.path.join(folder, name[:-3]), "wb") as f:
                f.write(gzip.decompress(data))
    return arrays


def md5(data):
    return hashlib.md5(data).hexdigest()


def sha256(data):
    return hashlib.sha256(data).hexdigest()


def read_bytes(path):
    with open(path, "rb") as f:
        return f.read()


# --------------------------------------------------------------------------------------------------
# Local HTTP server (127.0.0.1 only, bounded lifetime)


class LocalServer:
    """Serves ``files`` ({'/name': bytes}) on 127.0.0.1 from a daemon thread.

    ``cut_once`` holds paths whose next response announces the full Content-Length, sends half the
    body and closes the connection (an interrupted download); ``stall_once`` paths send half and
    then hang until ``release`` is set (a download killed mid-way). ``requests`` records each GET.
    A watchdog shuts the server down after ``lifetime`` seconds even if a test forgets to.
    """

    def __init__(self, files=None, lifetime=60.0):
        self.files = dict(files or {})
        self.cut_once = set()
        self.stall_once = set()
        self.release = threading.Event()
        self.requests = []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            timeout = 10

            def do_GET(self):
                server.requests.append(self.path)
                body = server.files.get(self.path)
                if body is None:
                    self.send_error(404, "Not Found")
                    return
                self.send_response(200)
                self.send_header("Content-Type", "application/octet-stream")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.path in server.cut_once or self.path in server.stall_once:
                    stall = self.path in server.stall_once
                    server.cut_once.discard(self.path)
                    server.stall_once.discard(self.path)
                    self.wfile.write(body[: len(body) // 2])
                    self.wfile.flush()
                    if stall:  # hold the connection open, half sent, until released (10 s at most)
                        server.release.wait(10)
                    self.close_connection = True
                    return
                self.wfile.write(body)

            def log_message(self, *args):  # keep test output clean
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.watchdog = threading.Timer(lifetime, self.httpd.shutdown)
        self.watchdog.daemon = True

    def __enter__(self):
        self.thread.start()
        self.watchdog.start()
        return self

    def __exit__(self, *exc):
        self.stop()

    def stop(self):
        self.release.set()
        self.watchdog.cancel()
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(5)

    def url(self, name=""):
        return "http://127.0.0.1:{}/{}".format(self.httpd.server_address[1], name.lstrip("/"))


@pytest.fixture
def local_server(monkeypatch):
    """A running :class:`LocalServer`; proxies are bypassed so urllib talks to it directly."""
    for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    with LocalServer() as server:
        yield server


def tree(folder):
    """Every path under ``folder`` (relative, sorted), hidden temporaries included."""
    found = []
    for dirpath, dirnames, filenames in os.walk(folder):
        for name in dirnames + filenames:
            found.append(os.path.relpath(os.path.join(dirpath, name), folder))
    return sorted(found)
