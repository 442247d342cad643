"""What both experiments share: result directories that never overwrite silently, atomic files,
checkpoints (weights + optimizer state + history + NumPy RNG state), dataset choice with an
honest fallback, and the progress log."""

import csv
import datetime
import io
import json
import os
import shutil
import sys
import zipfile

import numpy as np

from .. import saving
from ..utils.io_utils import NpzArchive, atomic_output

RUN_FILE = "run.json"
DEFAULT_PARENT = "bnpy-results"


class ExperimentError(Exception):
    """A problem the user can fix (bad option, existing results, missing data): printed, exit 2."""


def parse_groups(text, known):
    """The groups named by --groups (comma-separated, each once), in order; all of `known` for None."""
    if text is None:
        return list(known)
    groups = [g.strip() for g in text.split(",") if g.strip()]
    unknown = [g for g in groups if g not in known]
    if unknown or not groups:
        raise ExperimentError(
            "--groups: unknown group(s) {}; choose from {}".format(
                ", ".join(repr(g) for g in unknown) or "(none given)", ", ".join(known)
            )
        )
    repeated = sorted({g for g in groups if groups.count(g) > 1})
    if repeated:
        raise ExperimentError(
            "--groups: {} given more than once".format(", ".join(map(repr, repeated)))
        )
    return groups


# --------------------------------------------------------------------------------------------
# Atomic files
# --------------------------------------------------------------------------------------------
def atomic_write_bytes(path, data):
    """Write ``data`` to ``path`` through a temporary file in the same directory and a rename, so
    a reader (or an interrupted run) sees the old file or the new one, never half of one."""
    with atomic_output(path, ".tmp-") as tmp:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())


def atomic_write_text(path, text):
    atomic_write_bytes(path, text.encode("utf-8"))


def write_json(path, obj):
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def read_run_files(run_dir):
    """Every file under ``run_dir`` as ``{relative path: bytes}``: what the other ranks of a
    --distributed run need to resume rank 0's run, with no file system shared between them."""
    files = {}
    for folder, _, names in os.walk(run_dir):
        for name in names:
            path = os.path.join(folder, name)
            with open(path, "rb") as f:
                files[os.path.relpath(path, run_dir)] = f.read()
    return files


def write_run_files(folder, files):
    """The files read_run_files returned, written under ``folder`` (their folders created)."""
    for relative, content in files.items():
        path = os.path.join(folder, relative)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(content)


def write_csv(path, rows, columns):
    """rows: list of dicts; columns: their keys in order."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow([_csv_value(row.get(c)) for c in columns])
    atomic_write_text(path, buf.getvalue())


def _csv_value(value):
    if value is None:
        return ""
    if isinstance(value, float):
        return repr(value)  # shortest exact round-trip text
    return value


# --------------------------------------------------------------------------------------------
# The run directory
# --------------------------------------------------------------------------------------------
def now_text():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def read_run_record(run_dir):
    """The run's run.json as a dict; None where there is none. A file that cannot be read or
    is not a run record raises ExperimentError naming it (never a traceback)."""
    path = os.path.join(run_dir, RUN_FILE)
    if not os.path.isfile(path):
        return None
    try:
        with open(path, encoding="utf-8") as f:
            record = json.load(f)
    except (OSError, ValueError) as exc:  # ValueError: JSONDecodeError, UnicodeDecodeError
        raise ExperimentError(
            "{} is damaged or unreadable ({}: {}); repair or remove it (or its "
            "run directory), or choose another --out".format(path, type(exc).__name__, exc)
        ) from None
    if not isinstance(record, dict):
        raise ExperimentError(
            "{} is not a bnpy run record (a JSON object was expected); repair "
            "or remove it, or choose another --out".format(path)
        )
    return record


def _latest_unfinished_run(parent, command):
    if not os.path.isdir(parent):
        return None
    candidates = []
    for entry in os.listdir(parent):
        run_dir = os.path.join(parent, entry)
        record = read_run_record(run_dir) if os.path.isdir(run_dir) else None
        if (
            record
            and record.get("command") == command
            and record.get("status") in ("running", "interrupted")
        ):  # not "finished", not "failed" (bad data or options)
            candidates.append((record.get("started", ""), run_dir))
    return max(candidates)[1] if candidates else None


def prepare_run_dir(command, out, resume, overwrite, config, log=print, data=None):
    """Choose and create the directory of this run; returns (run_dir, record, resuming).

    ``data``: what identifies the run's data (dataset name, title and digest, see data_identity);
    recorded in run.json, and a resumed run must have the same.

    * no ``--out``: a new directory ``bnpy-results/<command>-<UTC time>[-n]`` (never an old one);
      with ``--resume``: the most recent unfinished run of this command under bnpy-results/.
    * ``--out DIR``: DIR itself. If it already holds a run, it is continued with ``--resume``
      (same settings required), replaced with ``--overwrite``, and otherwise left alone with an
      error. A non-empty DIR that is not a bnpy run is never touched.
    """
    if resume and overwrite:
        raise ExperimentError("--resume and --overwrite exclude each other")
    if out is None:
        if resume:
            out = _latest_unfinished_run(DEFAULT_PARENT, command)
            if out is None:
                raise ExperimentError(
                    "--resume: no unfinished '{}' run under {}/ (give the run's "
                    "directory with --out)".format(command, DEFAULT_PARENT)
                )
            log("Resuming the latest unfinished run: {}".format(out))
        else:
            stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%d-%H%M%S")
            base = os.path.join(DEFAULT_PARENT, "{}-{}".format(command, stamp))
            out, n = base, 1
            while os.path.exists(out):
                n += 1
                out = "{}-{}".format(base, n)

    if os.path.exists(out) and not os.path.isdir(out):
        raise ExperimentError("--out {} is a file, not a directory".format(out))
    record = read_run_record(out) if os.path.isdir(out) else None
    if record is not None:
        if record.get("command") != command:
            raise ExperimentError(
                "{} holds a '{}' run, not '{}': choose another --out".format(
                    out, record.get("command"), command
                )
            )
        if resume:
            if record.get("config") != config:
                changed = sorted(
                    k
                    for k in set(config) | set(record.get("config", {}))
                    if config.get(k) != record.get("config", {}).get(k)
                )
                raise ExperimentError(
                    "--resume: the settings differ from those of the run in {} ({}); resume with "
                    "the same options, or start a new run".format(
                        out,
                        ", ".join(
                            "{}: {!r} then, {!r} now".format(
                                k, record["config"].get(k), config.get(k)
                            )
                            for k in changed
                        ),
                    )
                )
            recorded = record.get("data") or {}
            if data is not None and recorded.get("digest") != data["digest"]:
                raise ExperimentError(
                    "--resume: the run in {} was trained on other data ({}, digest {}) than "
                    "this command loads ({}, digest {}); resume with the same --dataset, "
                    "--train-size and --test-size, or start a new run".format(
                        out,
                        recorded.get("title", "?"),
                        str(recorded.get("digest", "?"))[:12],
                        data["title"],
                        data["digest"][:12],
                    )
                )
            if record.get("status") == "finished":
                log("The run in {} is already finished; rewriting its results.".format(out))
            return out, record, True
        if overwrite:
            try:
                shutil.rmtree(out)
            except OSError as exc:
                raise ExperimentError(
                    "--overwrite: cannot remove {} ({}); remove it yourself or "
                    "choose another --out".format(out, exc.strerror or exc)
                ) from None
        else:
            raise ExperimentError(
                "{} already holds the results of a {} '{}' run (started {}). They are not "
                "overwritten: use --resume to continue it, --overwrite to replace it, or choose "
                "another --out.".format(
                    out, record.get("status", "?"), command, record.get("started", "?")
                )
            )
    elif os.path.isdir(out) and os.listdir(out):
        raise ExperimentError(
            "{} is not empty and holds no bnpy experiment run: choose an empty "
            "or new directory for --out".format(out)
        )
    elif resume:
        raise ExperimentError("--resume: there is no run to resume in {}".format(out))

    record = {
        "command": command,
        "status": "running",
        "started": now_text(),
        "finished": None,
        "config": config,
        "data": data,
        "bnpy_version": _bnpy_version(),
        "python": sys.version.split()[0],
        "numpy": np.__version__,
    }
    existed = os.path.isdir(out)
    try:
        os.makedirs(os.path.join(out, "checkpoints"), exist_ok=True)
        write_json(os.path.join(out, RUN_FILE), record)
    except OSError as exc:
        if not existed:  # leave nothing half-made behind
            shutil.rmtree(out, ignore_errors=True)
        raise ExperimentError(
            "cannot write the results to {} ({}); choose a writable folder with --out".format(
                out, exc.strerror or exc
            )
        ) from None
    return out, record, False


def _bnpy_version():
    import bnpy

    return bnpy.__version__


class Log:
    """print() that also appends to <run_dir>/progress.log (the run's own account of itself)."""

    def __init__(self, run_dir=None, quiet=False):
        self.path = os.path.join(run_dir, "progress.log") if run_dir else None
        self.quiet = quiet

    def __call__(self, *parts):
        text = " ".join(str(p) for p in parts)
        if not self.quiet:
            print(text, flush=True)
        if self.path:
            with open(self.path, "a", encoding="utf-8") as f:
                f.write("[{}] {}\n".format(now_text(), text))


# --------------------------------------------------------------------------------------------
# Checkpoints
# --------------------------------------------------------------------------------------------
def rng_state_arrays(prefix="rng"):
    """NumPy's global RNG state (which fit's shuffling and the initialisers draw from)."""
    name, keys, pos, has_gauss, cached = np.random.get_state()
    return {
        prefix + "_keys": np.asarray(keys, dtype=np.uint32),
        prefix + "_pos": np.int64(pos),
        prefix + "_has_gauss": np.int64(has_gauss),
        prefix + "_cached_gaussian": np.float64(cached),
        prefix + "_name": np.array(name),
    }


def restore_rng_state(arrays, prefix="rng"):
    np.random.set_state(
        (
            str(arrays[prefix + "_name"]),
            arrays[prefix + "_keys"],
            int(arrays[prefix + "_pos"]),
            int(arrays[prefix + "_has_gauss"]),
            float(arrays[prefix + "_cached_gaussian"]),
        )
    )


def save_checkpoint(path, model, progress):
    """Write model weights, optimizer state, NumPy's RNG state and ``progress`` (a JSON-able
    dict: finished epochs/steps and the history so far) into one .npz, atomically."""
    arrays = {}
    weights = model.get_weights()
    arrays["n_weights"] = np.int64(len(weights))
    for i, w in enumerate(weights):
        arrays["weight_{}".format(i)] = w
    arrays.update(saving.optimizer_state_arrays(model))
    arrays.update(rng_state_arrays())
    arrays["progress_json"] = np.array(json.dumps(progress))
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    atomic_write_bytes(path, buf.getvalue())


def read_checkpoint(path):
    """The arrays of a checkpoint file; a damaged or foreign file raises ExperimentError."""
    try:
        # NpzArchive, not np.load: entries are read no further than their declared sizes, and a
        # damaged file leaves no open handle behind.
        with NpzArchive(path, "resume", "checkpoint") as data:
            arrays = {k: data[k] for k in data.files}
        json.loads(str(arrays["progress_json"]))
        for i in range(int(arrays["n_weights"])):
            arrays["weight_{}".format(i)]
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile) as exc:
        raise ExperimentError(
            "the checkpoint {} is damaged ({}: {}); delete it to redo that part "
            "of the run, or start a new run".format(path, type(exc).__name__, exc)
        ) from None
    return arrays


def load_checkpoint(path, model):
    """Restore what save_checkpoint wrote into ``model``, its optimizer and NumPy's global RNG;
    returns the progress dict."""
    arrays = read_checkpoint(path)
    weights = [arrays["weight_{}".format(i)] for i in range(int(arrays["n_weights"]))]
    try:
        model.set_weights(weights)
    except ValueError as exc:
        raise ExperimentError(
            "the checkpoint {} holds weights that do not fit this model ({}); "
            "delete it to redo that part of the run".format(path, exc)
        ) from None
    try:
        saving.restore_optimizer_state(model, arrays)
    except ValueError as exc:
        raise ExperimentError(
            "the checkpoint {} holds optimizer state that does not fit this "
            "model ({}); start a new run or use --overwrite".format(path, exc)
        ) from None
    restore_rng_state(arrays)
    return json.loads(str(arrays["progress_json"]))


# --------------------------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------------------------
DATASET_TITLES = {
    "cifar10": "CIFAR-10",
    "cifar10_sample": "the CIFAR-10 sample built into bnpy",
    "fashion_mnist": "Fashion-MNIST",
    "mnist": "MNIST",
}
#: What to do when a dataset cannot be had.
DATASET_HINTS = {
    "cifar10": "put cifar-10-python.tar.gz or cifar-10-batches-py/ in $BNPY_DATA or "
    "~/.keras/datasets, or pass --dataset DIR",
    "cifar10_sample": "pip install 'bnpy[image]' (Pillow decodes the sample), or reinstall bnpy",
    "fashion_mnist": "apt-get install dataset-fashion-mnist, or put its four .gz files in "
    "$BNPY_DATA/fashion-mnist",
    "mnist": "put mnist.npz in $BNPY_DATA or ~/.keras/datasets",
}
#: What a loader raises when its data cannot be had or read (everything else is a bug).
_LOAD_ERRORS = (OSError, ValueError, RuntimeError, ImportError, EOFError, zipfile.BadZipFile)


def _load_named(name, path=None):
    from importlib import import_module

    module = import_module("bnpy.datasets." + name)
    return module.load_data() if path is None else module.load_data(path=path)


def _load_recording_warnings(load, *args):
    """Call load(*args); return (its result, the texts of the warnings it gave, e.g. a CIFAR
    folder holding fewer than the five official batches), so the run's records can say so."""
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = load(*args)
    return result, [str(w.message) for w in caught]


def _load_directory(directory):
    """An image-folder dataset: DIR/train/<class>/*.png|jpg and DIR/test/<class>/..."""
    from bnpy.preprocessing.image import load_from_directory

    parts = []
    for split in ("train", "test"):
        sub = os.path.join(directory, split)
        x, y, classes = load_from_directory(sub)
        # Folders list their images class by class; put them in one fixed random order (the
        # official CIFAR/MNIST files already are), so that --train-size/--test-size take a
        # sample of every class, not the first classes only. Independent of --seed on purpose:
        # the same data for every seed.
        order = np.random.RandomState(0).permutation(len(x))
        parts.append((np.asarray(x)[order], np.asarray(y)[order], list(classes)))
    if parts[0][2] != parts[1][2]:
        raise ExperimentError(
            "--dataset {}: train and test have different classes ({} vs {})".format(
                directory, parts[0][2], parts[1][2]
            )
        )
    return (parts[0][0], parts[0][1]), (parts[1][0], parts[1][1])


def _one_line(exc):
    return "{}: {}".format(type(exc).__name__, (str(exc).splitlines() or [""])[0])


def _load_from_path(requested):
    """--dataset DIR: CIFAR-10 in the Keras cache's layout (DIR/cifar-10-batches-py/, the
    archive, or that folder itself), else image class folders DIR/train/<class>/, DIR/test/."""
    if not os.path.exists(requested):
        raise ExperimentError(
            "--dataset {!r} is neither one of {} nor an existing folder".format(
                requested, ", ".join(DATASET_TITLES)
            )
        )
    try:
        names = set(os.listdir(requested)) if os.path.isdir(requested) else set()
    except OSError as exc:
        raise ExperimentError(
            "--dataset {}: cannot read the folder ({}); check its permissions".format(
                requested, exc.strerror or exc
            )
        ) from None
    from bnpy.datasets import cifar10

    cifar_names = {
        cifar10.DIRNAME,
        "cifar-10-python.tar.gz",
        cifar10.DIRNAME + ".tar.gz",
        cifar10.TEST_BATCH,
    }
    try:
        if os.path.isfile(requested) or names & cifar_names:
            data, warned = _load_recording_warnings(_load_named, "cifar10", requested)
            info = {
                "dataset": "cifar10",
                "title": "CIFAR-10 from " + requested,
                "path": os.path.abspath(requested),
            }
        elif {"train", "test"} <= names:
            data, warned = _load_recording_warnings(_load_directory, requested)
            info = {
                "dataset": os.path.abspath(requested),
                "title": "image folders in " + requested,
                "order": "shuffled once at load time with RandomState(0) (folders are by class)",
            }
        else:
            raise ExperimentError(
                "--dataset {}: expected CIFAR-10 as Keras caches it ({}/ or "
                "cifar-10-python.tar.gz inside) or image class folders "
                "{}/train/<class>/ and {}/test/<class>/".format(
                    requested, cifar10.DIRNAME, requested, requested
                )
            )
    except _LOAD_ERRORS as exc:
        raise ExperimentError(
            "--dataset {}: cannot load it ({})".format(requested, _one_line(exc))
        ) from None
    return data, warned, info


def load_dataset(requested, default_chain, log):
    """Load the dataset; returns (x_train, y_train, x_test, y_test, info).

    ``requested``: a name, a path (see _load_from_path), or None for the default chain (e.g.
    cifar10 then cifar10_sample): each dataset that cannot be had is reported in one line and
    the next tried. Every failure is an ExperimentError saying what to do. Images come back as
    float32 NHWC in [0, 1] (a channel axis is added to 28x28 digits), labels as int64 vectors.
    """
    if requested is not None and requested not in DATASET_TITLES:
        (train, test), warned, info = _load_from_path(requested)
    else:
        chain = [requested] if requested is not None else list(default_chain)
        failures = []
        for i, name in enumerate(chain):
            try:
                (train, test), warned = _load_recording_warnings(_load_named, name)
            except _LOAD_ERRORS as exc:
                failures.append("{} ({})".format(DATASET_TITLES[name], _one_line(exc)))
                if i + 1 < len(chain):
                    log(
                        "{} is not available ({}); using {} instead.".format(
                            DATASET_TITLES[name], _one_line(exc), DATASET_TITLES[chain[i + 1]]
                        )
                    )
                continue
            info = {"dataset": name, "title": DATASET_TITLES[name]}
            if i > 0:
                info["note"] = "{} was not available; ran on {} instead".format(
                    DATASET_TITLES[chain[0]], DATASET_TITLES[name]
                )
            break
        else:
            raise ExperimentError(
                "no dataset could be loaded: {}. To fix: {}".format(
                    "; ".join(failures), "; or ".join(DATASET_HINTS[n] for n in chain)
                )
            )
    (x_train, y_train), (x_test, y_test) = train, test
    for text in warned:
        log("Warning from the loader: " + text)
    if warned:
        info["loader_warnings"] = warned
    x_train, x_test = _as_images(x_train), _as_images(x_test)
    y_train = np.asarray(y_train).reshape(-1).astype(np.int64)
    y_test = np.asarray(y_test).reshape(-1).astype(np.int64)
    info.update(
        train_total=int(len(x_train)),
        test_total=int(len(x_test)),
        input_shape=list(x_train.shape[1:]),
        num_classes=int(max(y_train.max(), y_test.max()) + 1),
    )
    return x_train, y_train, x_test, y_test, info


def data_identity(x_train, y_train, x_test, y_test, info):
    """What identifies a run's data: the dataset's name and title and a SHA-256 over the arrays
    the run trains and validates on (so a resumed run can check it has the same data)."""
    import hashlib

    digest = hashlib.sha256()
    for array in (x_train, y_train, x_test, y_test):
        array = np.ascontiguousarray(array)
        digest.update("{}{}".format(array.dtype.str, array.shape).encode())
        digest.update(array.data)
    return {"dataset": info["dataset"], "title": info["title"], "digest": digest.hexdigest()}


def _as_images(x):
    """uint8 (N,H,W[,C]) -> float32 (N,H,W,C) / 255, as the article's script scales CIFAR."""
    x = np.asarray(x)
    if x.ndim == 3:
        x = x[..., np.newaxis]
    if x.ndim != 4:
        raise ExperimentError(
            "expected images of shape (N, H, W) or (N, H, W, C), got {}".format(x.shape)
        )
    return np.ascontiguousarray(x, dtype=np.float32) / np.float32(255)


def take_subset(x, y, size, what):
    """The first ``size`` samples (all if None); a clear error if more are asked than exist."""
    if size is None:
        return x, y
    if size > len(x):
        raise ExperimentError("{} {} asked, but the dataset has only {}".format(what, size, len(x)))
    return x[:size], y[:size]


def load_run_data(args, default_chain, log):
    """The dataset of ``args.dataset`` (see load_dataset), cut to ``args.train_size`` and
    ``args.test_size``: (x_train, y_train, x_test, y_test, info)."""
    x_train, y_train, x_test, y_test, info = load_dataset(args.dataset, default_chain, log)
    x_train, y_train = take_subset(x_train, y_train, args.train_size, "--train-size")
    x_test, y_test = take_subset(x_test, y_test, args.test_size, "--test-size")
    info.update(train_used=int(len(x_train)), test_used=int(len(x_test)))
    return x_train, y_train, x_test, y_test, info


def activation_name(layer):
    """The name of an Activation layer's function ('relu', 'sigmoid', ...)."""
    act = getattr(layer, "activation", None)
    return act if isinstance(act, str) else getattr(act, "__name__", None)


def one_hot(labels, num_classes):
    from bnpy.utils.np_utils import to_categorical

    return to_categorical(labels, num_classes).astype(np.float32)


def markdown_table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"
