"""plot_model and plot_history: valid PNG/SVG/PDF files, with Graphviz and without it, naming
every layer; clear errors for bad arguments; no file left behind on failure."""

import os
import pathlib
import re
import subprocess
import time
import xml.etree.ElementTree as ET
import zlib

import pytest

pytest.importorskip("matplotlib")

from bnpy.utils import vis_utils  # noqa: E402
from bnpy.utils.vis_utils import model_to_dot, plot_history, plot_model  # noqa: E402

HAVE_DOT = vis_utils.find_dot() is not None
ENGINES = [
    pytest.param(
        "graphviz", marks=pytest.mark.skipif(not HAVE_DOT, reason="Graphviz `dot` is not installed")
    ),
    "matplotlib",
]

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
PDF_MAGIC = b"%PDF-"


# --- a stand-in model: only the attributes plot_model reads (name, class, shapes) -------------
class _StandIn:
    def __init__(self, name, input_shape, output_shape):
        self.name, self.input_shape, self.output_shape = name, input_shape, output_shape


class Conv2D(_StandIn):
    pass


class MaxPooling2D(_StandIn):
    pass


class BatchNormalization(_StandIn):
    pass


class Dense(_StandIn):
    pass


class _Model:
    def __init__(self, layers):
        self.layers = layers


def stand_in_model():
    return _Model(
        [
            Conv2D("conv2d_1", (None, 32, 32, 3), (None, 32, 32, 96)),
            MaxPooling2D("max_pooling2d_1", (None, 32, 32, 96), (None, 16, 16, 96)),
            BatchNormalization("batch_normalization_1", (None, 16, 16, 96), (None, 16, 16, 96)),
            Dense("dense_1", (None, 24576), (None, 10)),
        ]
    )


def real_model():
    """The article's base network built with bnpy's own layers, when the framework is there."""
    models = pytest.importorskip("bnpy.models")
    from bnpy.engine import reset_layer_names
    from bnpy.layers.convolutional import Conv2D
    from bnpy.layers.core import Activation, Flatten
    from bnpy.layers.core import Dense as RealDense
    from bnpy.layers.normalization import BatchNormalization as BN
    from bnpy.layers.pooling import MaxPooling2D as Pool

    reset_layer_names()
    model = models.Sequential()
    model.add(Conv2D(8, (3, 3), padding="same", input_shape=(8, 8, 3)))
    model.add(Pool(pool_size=(2, 2)))
    model.add(Activation("tanh"))
    model.add(Flatten())
    model.add(RealDense(10))
    model.add(BN())
    model.add(Activation("softmax"))
    return model


def expected_labels(model, show_layer_names=True):
    first = model.layers[0].name
    names = [(first + "_input", "InputLayer")] + [
        (layer.name, type(layer).__name__) for layer in model.layers
    ]
    return ["{}: {}".format(n, c) if show_layer_names else c for n, c in names]


# --- checks of the written files ----------------------------------------------------------------
def png_text_and_size(path):
    """Check the PNG signature and chunk CRCs; return (width, height)."""
    data = pathlib.Path(path).read_bytes()
    assert data[:8] == PNG_MAGIC, "not a PNG signature"
    pos, chunks = 8, []
    while pos < len(data):
        length = int.from_bytes(data[pos : pos + 4], "big")
        kind = data[pos + 4 : pos + 8]
        body = data[pos + 8 : pos + 8 + length]
        crc = int.from_bytes(data[pos + 8 + length : pos + 12 + length], "big")
        assert zlib.crc32(kind + body) == crc, "bad CRC in PNG chunk {!r}".format(kind)
        chunks.append(kind)
        pos += 12 + length
    assert chunks[0] == b"IHDR" and chunks[-1] == b"IEND" and b"IDAT" in chunks
    ihdr = data[16:24]
    return int.from_bytes(ihdr[:4], "big"), int.from_bytes(ihdr[4:], "big")


def svg_texts(path):
    """Parse the SVG as XML; return the text it shows (both engines write <text> elements)."""
    root = ET.parse(path).getroot()
    assert root.tag.endswith("svg")
    return "\n".join(root.itertext())


def check_picture(path, fmt, model, show_layer_names=True, show_shapes=False):
    assert os.path.getsize(path) > 0
    if fmt == "png":
        width, height = png_text_and_size(path)
        assert width > 50 and height > 50
    elif fmt == "pdf":
        data = pathlib.Path(path).read_bytes()
        assert data.startswith(PDF_MAGIC) and b"%%EOF" in data[-64:]
    elif fmt == "svg":
        text = svg_texts(path)
        for label in expected_labels(model, show_layer_names):
            assert label in text, "layer label {!r} missing from the SVG".format(label)
        if show_shapes:
            for layer in model.layers:
                assert str(tuple(layer.output_shape)) in text


# --- the DOT text (what Graphviz draws) -----------------------------------------------------
def test_dot_text_names_every_layer_with_input_node_and_edges():
    model = stand_in_model()
    dot = model_to_dot(model, show_shapes=True)
    labels = re.findall(r'node(\d+) \[label="([^"]*)"\]', dot)
    assert [int(i) for i, _ in labels] == list(range(len(model.layers) + 1))
    # Keras's record: "<label>\n|{input:|output:}|{{<in>}|{<out>}}"
    assert labels[0][1] == (
        "conv2d_1_input: InputLayer\\n|{input:|output:}|{{(None, 32, 32, 3)}|{(None, 32, 32, 3)}}"
    )
    assert labels[2][1] == (
        "max_pooling2d_1: MaxPooling2D\\n|{input:|output:}|"
        "{{(None, 32, 32, 96)}|{(None, 16, 16, 96)}}"
    )
    edges = re.findall(r"node(\d+) -> node(\d+);", dot)
    assert [(int(a), int(b)) for a, b in edges] == [(i, i + 1) for i in range(len(model.layers))]
    assert "rankdir=TB" in dot and "shape=record" in dot


def test_dot_text_without_names_or_shapes_and_with_rankdir():
    dot = model_to_dot(stand_in_model(), show_shapes=False, show_layer_names=False, rankdir="LR")
    labels = re.findall(r'\[label="([^"]*)"\]', dot)
    assert labels == ["InputLayer", "Conv2D", "MaxPooling2D", "BatchNormalization", "Dense"]
    assert "rankdir=LR" in dot


def test_dot_text_escapes_record_characters_in_names():
    model = _Model([Dense("odd{name}|<x>", (None, 4), (None, 2))])
    dot = model_to_dot(model)
    assert r"odd\{name\}\|\<x\>: Dense" in dot
    if HAVE_DOT:  # Graphviz accepts it (an unescaped | or { would break the record)
        out = subprocess.run(["dot", "-Tsvg"], input=dot.encode(), capture_output=True)
        assert out.returncode == 0, out.stderr


# --- plot_model files, both engines ---------------------------------------------------------------
@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("fmt", ["png", "svg", "pdf"])
@pytest.mark.parametrize("show_shapes", [False, True])
def test_plot_model_writes_valid_file(tmp_path, engine, fmt, show_shapes):
    model = stand_in_model()
    path = tmp_path / ("model." + fmt)
    returned = plot_model(model, to_file=str(path), show_shapes=show_shapes, engine=engine)
    assert returned == str(path)
    check_picture(str(path), fmt, model, show_shapes=show_shapes)
    assert sorted(os.listdir(tmp_path)) == ["model." + fmt]  # no temporary file left


@pytest.mark.parametrize("engine", ENGINES)
def test_plot_model_without_layer_names_lr(tmp_path, engine):
    model = stand_in_model()
    path = tmp_path / "m.svg"
    plot_model(model, str(path), show_layer_names=False, rankdir="LR", engine=engine)
    text = svg_texts(str(path))
    for label in expected_labels(model, show_layer_names=False):
        assert label in text
    assert "conv2d_1:" not in text


def test_auto_engine_falls_back_to_matplotlib_without_dot(tmp_path, monkeypatch):
    """A user with only pip: no `dot` on the PATH still gets a picture (drawn by matplotlib)."""
    monkeypatch.setattr(vis_utils, "find_dot", lambda: None)
    used = []
    original = vis_utils._draw_model_matplotlib
    monkeypatch.setattr(
        vis_utils, "_draw_model_matplotlib", lambda *a: used.append(a[2]) or original(*a)
    )
    model = stand_in_model()
    plot_model(model, str(tmp_path / "fallback.png"), show_shapes=True)
    assert used == ["png"]
    png_text_and_size(str(tmp_path / "fallback.png"))
    with pytest.raises(RuntimeError, match="plot_model: engine='graphviz' needs Graphviz"):
        plot_model(model, str(tmp_path / "x.png"), engine="graphviz")


@pytest.mark.skipif(not HAVE_DOT, reason="Graphviz `dot` is not installed")
def test_auto_engine_uses_graphviz_when_installed(tmp_path, monkeypatch):
    def fail(*a):
        raise AssertionError("matplotlib path used although dot is installed")

    monkeypatch.setattr(vis_utils, "_draw_model_matplotlib", fail)
    plot_model(stand_in_model(), str(tmp_path / "g.svg"))
    assert "<!-- Generated by graphviz" in (tmp_path / "g.svg").read_text()


def test_file_without_extension_is_png(tmp_path):
    path = tmp_path / "noext"
    plot_model(stand_in_model(), str(path), engine="matplotlib")
    png_text_and_size(str(path))


def test_plot_model_leaves_users_old_tmp_files_alone(tmp_path):
    """A name without extension makes the temporary's suffix empty: even then only the
    temporaries bnpy names (.<name>.bnpy-tmp-<pid>-<hex>) are cleaned up, never a user's .tmp-*."""
    old = time.time() - 10 * 3600
    mine = [".tmp-thesis", ".tmp-x.png", ".noext.draft", ".tmp-"]
    for name in mine:
        (tmp_path / name).write_bytes(b"the user's")
        os.utime(tmp_path / name, (old, old))
    plot_model(stand_in_model(), str(tmp_path / "noext"), engine="matplotlib")
    plot_model(stand_in_model(), str(tmp_path / "x.png"), engine="matplotlib")
    assert sorted(os.listdir(tmp_path)) == sorted(mine + ["noext", "x.png"])


@pytest.mark.parametrize("engine", ENGINES)
def test_plot_model_with_real_sequential(tmp_path, engine):
    model = real_model()
    path = tmp_path / "real.svg"
    plot_model(model, str(path), show_shapes=True, engine=engine)
    check_picture(str(path), "svg", model, show_shapes=True)
    text = svg_texts(str(path))
    assert "(None, 8, 8, 3)" in text  # the input node's shape


# --- bad input: clear errors, nothing written ---------------------------------------------------
@pytest.mark.parametrize(
    "kwargs, exc, pattern",
    [
        (dict(model=object()), TypeError, r"plot_model: argument 'model' must be a model"),
        (dict(model=_Model([])), ValueError, r"plot_model: the model has no layers"),
        (dict(model=_Model([object()])), TypeError, r"model.layers\[0\] \(object\) has no string"),
        (dict(rankdir="XY"), ValueError, r"plot_model: argument 'rankdir' must be one of"),
        (dict(show_shapes="yes"), TypeError, r"plot_model: argument 'show_shapes' must be a bool"),
        (dict(to_file="model.bmp"), ValueError, r"plot_model: cannot write 'model.bmp'"),
        (dict(to_file=3), TypeError, r"plot_model: argument 'to_file' must be a path"),
        (dict(engine="tikz"), ValueError, r"plot_model: argument 'engine' must be"),
    ],
)
def test_plot_model_bad_arguments(tmp_path, monkeypatch, kwargs, exc, pattern):
    monkeypatch.chdir(tmp_path)
    args = dict(model=stand_in_model(), to_file="model.png")
    args.update(kwargs)
    with pytest.raises(exc, match=pattern):
        plot_model(**args)
    assert os.listdir(tmp_path) == []


@pytest.mark.skipif(not HAVE_DOT, reason="Graphviz `dot` is not installed")
def test_failed_render_leaves_no_file_and_keeps_old_one(tmp_path, monkeypatch):
    path = tmp_path / "model.png"
    path.write_bytes(b"previous picture")
    monkeypatch.setattr(vis_utils, "find_dot", lambda: "false")  # /bin/false: exits 1
    with pytest.raises(RuntimeError, match="plot_model: Graphviz `dot` failed"):
        plot_model(stand_in_model(), str(path))
    assert path.read_bytes() == b"previous picture"
    assert os.listdir(tmp_path) == ["model.png"]


# --- plot_history -------------------------------------------------------------------------
def fake_history(offset):
    return {
        "loss": [2.0 - offset, 1.5, 1.2],
        "acc": [0.2, 0.4 + offset, 0.5],
        "val_loss": [2.1, 1.6, 1.4],
        "val_acc": [0.15, 0.35, 0.45 + offset],
    }


class _History:
    def __init__(self, history):
        self.history = history


@pytest.mark.parametrize(
    "histories",
    [
        _History(fake_history(0.0)),
        fake_history(0.0),
        {"all BN": fake_history(0.1), "no BN": _History(fake_history(0.0))},
        [("a", fake_history(0.0)), ("b", fake_history(0.05)), ("c", fake_history(0.1))],
    ],
)
def test_plot_history_writes_png(tmp_path, histories):
    path = tmp_path / "history.png"
    assert plot_history(histories, str(path), title="runs") == str(path)
    width, height = png_text_and_size(str(path))
    assert width > height > 100


def test_plot_history_labels_every_run_svg(tmp_path):
    path = tmp_path / "history.svg"
    plot_history({"group one": fake_history(0.0), "group two": fake_history(0.1)}, str(path))
    text = svg_texts(str(path))
    for label in (
        "group one train",
        "group one validation",
        "group two train",
        "group two validation",
        "accuracy",
        "loss",
        "epoch",
    ):
        assert label in text


@pytest.mark.parametrize(
    "histories, exc, pattern",
    [
        (42, TypeError, r"plot_history: argument 'histories' must be"),
        ({}, ValueError, r"plot_history: argument 'histories' is empty"),
        ([("a", fake_history(0), "extra")], TypeError, r"\(label, history\) pairs"),
        ({"a": {"mse": [1, 2]}}, ValueError, r"run 'a' has none of the keys"),
    ],
)
def test_plot_history_bad_arguments(tmp_path, histories, exc, pattern):
    with pytest.raises(exc, match=pattern):
        plot_history(histories, str(tmp_path / "h.png"))
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("fmt", ["svg", "png"])
def test_matplotlib_draws_names_with_tex_characters_literally(tmp_path, fmt):
    """Without Graphviz, layer names go to matplotlib's text, whose maths parser would read "$...$"
    (and raise on "$\\frac{$"): names are drawn as they are."""
    names = ["$\\frac{$", "a$b$c", "under_score^{2}", "100%"]
    model = _Model([Dense(name, (None, 4), (None, 4)) for name in names])
    path = tmp_path / ("tex." + fmt)
    plot_model(model, str(path), show_shapes=True, engine="matplotlib")
    if fmt == "svg":
        text = svg_texts(str(path))
        for name in names:
            assert name in text
    else:
        png_text_and_size(str(path))
