"""Decompression bombs, built in a second or two without ever holding their inflated size.

A deflate stream of N MiB of zeros is one compressed block per MiB, each the same bytes: after a
full flush the compressor forgets its history, so compressing the next MiB of zeros gives the very
same output. ``deflated(prefix, n_mib)`` therefore compresses ``prefix`` and two MiB of zeros,
checks that the two blocks are equal, and repeats the block: ~1 KB per MiB inflated. The files
are then assembled around that stream by hand (zip, gzip, tar.gz), with exact CRCs and sizes, so
that they are valid files a reader must treat on their merits.
"""

import io
import struct
import tarfile
import zlib

import numpy as np

MIB = 1 << 20
_ZEROS = bytes(MIB)


class Deflated:
    """A raw deflate stream of ``prefix + n_mib`` MiB of zeros ``+ suffix``, with its CRC-32 and size."""

    def __init__(self, prefix, n_mib, suffix=b""):
        compressor = zlib.compressobj(6, zlib.DEFLATED, -15)
        head = compressor.compress(prefix) + compressor.flush(zlib.Z_FULL_FLUSH)
        block = compressor.compress(_ZEROS) + compressor.flush(zlib.Z_FULL_FLUSH)
        again = compressor.compress(_ZEROS) + compressor.flush(zlib.Z_FULL_FLUSH)
        assert block == again, "a MiB of zeros after a full flush must compress the same each time"
        tail = compressor.compress(suffix) + compressor.flush()
        self.data = head + block * n_mib + tail
        self.size = len(prefix) + n_mib * MIB + len(suffix)
        crc = zlib.crc32(prefix)
        for _ in range(n_mib):
            crc = zlib.crc32(_ZEROS, crc)
        self.crc = zlib.crc32(suffix, crc)


def plain(data):
    """A Deflated-like record of ``data`` itself (small entries)."""
    record = Deflated.__new__(Deflated)
    compressor = zlib.compressobj(6, zlib.DEFLATED, -15)
    record.data = compressor.compress(data) + compressor.flush()
    record.size, record.crc = len(data), zlib.crc32(data)
    return record


def npy_bytes(array):
    buffer = io.BytesIO()
    np.lib.format.write_array(buffer, np.asarray(array), allow_pickle=False)
    return buffer.getvalue()


def npy_header(shape, dtype):
    """The .npy header (format 1.0) of an array of ``shape`` and ``dtype``, without its data."""
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        buffer,
        {
            "descr": np.lib.format.dtype_to_descr(np.dtype(dtype)),
            "fortran_order": False,
            "shape": tuple(shape),
        },
    )
    return buffer.getvalue()


def write_zip(path, entries):
    """A zip of deflated ``entries`` [(name, Deflated)], sizes below 4 GiB (no zip64 needed)."""
    out = bytearray()
    central = bytearray()
    for name, record in entries:
        raw_name = name.encode()
        offset = len(out)
        fields = struct.pack(
            "<HHHHHIII", 20, 0, 8, 0, 0x21, record.crc, len(record.data), record.size
        )
        out += (
            struct.pack("<I", 0x04034B50) + fields + struct.pack("<HH", len(raw_name), 0) + raw_name
        )
        out += record.data
        central += (
            struct.pack("<IH", 0x02014B50, 20)
            + fields
            + struct.pack("<HHHHHII", len(raw_name), 0, 0, 0, 0, 0, offset)
            + raw_name
        )
    start = len(out)
    out += central
    out += struct.pack(
        "<IHHHHIIH", 0x06054B50, 0, 0, len(entries), len(entries), len(central), start, 0
    )
    with open(path, "wb") as f:
        f.write(out)
    return path


def write_npz(path, arrays, bombs=()):
    """An .npz of the small ``arrays`` {name: array} and the ``bombs`` [(name, Deflated)] whose
    inflated bytes are the entry's whole .npy (header included)."""
    entries = [(name + ".npy", plain(npy_bytes(value))) for name, value in arrays.items()]
    entries += [(name + ".npy", record) for name, record in bombs]
    return write_zip(path, entries)


def write_gzip(path, record):
    """A .gz file (RFC 1952) around the raw deflate stream ``record``."""
    with open(path, "wb") as f:
        f.write(b"\x1f\x8b\x08\x00" + struct.pack("<I", 0) + b"\x00\xff")
        f.write(record.data)
        f.write(struct.pack("<II", record.crc, record.size & 0xFFFFFFFF))
    return path


def write_tar_gz_bomb(path, member_name, n_mib):
    """A .tar.gz holding one regular file ``member_name`` of ``n_mib`` MiB of zeros."""
    info = tarfile.TarInfo(member_name)
    info.size = n_mib * MIB
    header = info.tobuf(format=tarfile.GNU_FORMAT)
    return write_gzip(path, Deflated(header, n_mib, suffix=bytes(2 * tarfile.BLOCKSIZE)))
