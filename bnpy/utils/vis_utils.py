"""Pictures of models and of training: ``plot_model`` (Keras 2.0's) and ``plot_history``.

``plot_model`` draws what Keras 2.0 draws for a Sequential model: an input node
(``<first layer>_input: InputLayer``), then one box per layer labelled ``name: ClassName``
(or ``ClassName`` with ``show_layer_names=False``), with the record
``label | {input: | output:} | {{in_shape} | {out_shape}}`` when ``show_shapes=True``, and an
edge from each layer to the next. The file format follows the extension of ``to_file`` (png
when it has none).

Two engines draw the same picture:

* ``"graphviz"``: the DOT text is written here (no pydot needed) and rendered by Graphviz's
  ``dot`` executable in a subprocess;
* ``"matplotlib"``: the boxes and arrows drawn with matplotlib (an optional extra), so that a
  user with only pip still gets a PNG (or SVG/PDF).

``engine="auto"`` (the default) uses Graphviz when ``dot`` is on the PATH, else matplotlib.

``plot_history`` draws training and validation accuracy and loss per epoch for one or several
labelled runs in one figure (matplotlib).
"""

import os
import shutil
import subprocess

from .io_utils import atomic_output

__all__ = ["plot_model", "model_to_dot", "plot_history"]

_RANKDIRS = ("TB", "LR", "BT", "RL")
_GRAPHVIZ_FORMATS = ("png", "svg", "pdf", "jpg", "jpeg", "gif", "ps", "eps", "dot")
_MATPLOTLIB_FORMATS = ("png", "svg", "pdf", "jpg", "jpeg", "ps", "eps")


# --------------------------------------------------------------------------------------------
# The graph: nodes (input node + one per layer) as plain data, shared by both engines
# --------------------------------------------------------------------------------------------
def _shape_text(shape):
    """Keras writes shapes as the tuple's str: (None, 32, 32, 3)."""
    if shape is None:
        return "?"
    if isinstance(shape, list):  # several inputs/outputs: Keras prints the list
        return str([tuple(s) if s is not None else None for s in shape])
    return str(tuple(shape))


def _model_nodes(model, caller):
    """[(node_id, name, class_name, input_shape_text, output_shape_text)], input node first."""
    layers = getattr(model, "layers", None)
    if layers is None or isinstance(layers, (str, bytes)):
        raise TypeError(
            "{}: argument 'model' must be a model with a .layers list (a bnpy "
            "Sequential), got {}".format(caller, type(model).__name__)
        )
    layers = list(layers)
    if not layers:
        raise ValueError("{}: the model has no layers to draw".format(caller))
    for i, layer in enumerate(layers):
        if not isinstance(getattr(layer, "name", None), str):
            raise TypeError(
                "{}: model.layers[{}] ({}) has no string .name".format(
                    caller, i, type(layer).__name__
                )
            )

    first = layers[0]
    input_shape = getattr(first, "input_shape", None)
    if input_shape is None:
        input_shape = getattr(first, "batch_input_shape", None)
    input_text = _shape_text(input_shape)
    nodes = [("node0", first.name + "_input", "InputLayer", input_text, input_text)]
    for i, layer in enumerate(layers, start=1):
        nodes.append(
            (
                "node{}".format(i),
                layer.name,
                type(layer).__name__,
                _shape_text(getattr(layer, "input_shape", None)),
                _shape_text(getattr(layer, "output_shape", None)),
            )
        )
    return nodes


def _node_label(name, class_name, show_layer_names):
    return "{}: {}".format(name, class_name) if show_layer_names else class_name


def _dot_escape(text):
    """Escape the characters that mean structure inside a Graphviz record label."""
    for ch in ("\\", "{", "}", "|", "<", ">", '"'):
        text = text.replace(ch, "\\" + ch)
    return text


def model_to_dot(model, show_shapes=False, show_layer_names=True, rankdir="TB"):
    """The DOT source (a str) of the picture ``plot_model`` draws.

    Keras 2.0 returns a pydot graph here; bnpy returns the DOT text itself (``dot -Tpng`` renders
    it), so no pydot is needed.
    """
    _check_options("model_to_dot", show_shapes, show_layer_names, rankdir)
    nodes = _model_nodes(model, "model_to_dot")
    lines = [
        "digraph G {",
        "  graph [rankdir={}, concentrate=true];".format(rankdir),
        "  node [shape=record, fontname=\"Helvetica\"];",
    ]
    for node_id, name, class_name, in_text, out_text in nodes:
        label = _dot_escape(_node_label(name, class_name, show_layer_names))
        if show_shapes:
            # Keras's record: "<label>\n|{input:|output:}|{{<in>}|{<out>}}"
            label = "{}\\n|{{input:|output:}}|{{{{{}}}|{{{}}}}}".format(
                label, _dot_escape(in_text), _dot_escape(out_text)
            )
        lines.append('  {} [label="{}"];'.format(node_id, label))
    for (src, *_), (dst, *_) in zip(nodes[:-1], nodes[1:]):
        lines.append("  {} -> {};".format(src, dst))
    lines.append("}")
    return "\n".join(lines) + "\n"


def _check_options(caller, show_shapes, show_layer_names, rankdir):
    for arg, value in (("show_shapes", show_shapes), ("show_layer_names", show_layer_names)):
        if not isinstance(value, (bool, int)):
            raise TypeError("{}: argument '{}' must be a bool, got {!r}".format(caller, arg, value))
    if rankdir not in _RANKDIRS:
        raise ValueError(
            "{}: argument 'rankdir' must be one of {}, got {!r}".format(
                caller, ", ".join(repr(r) for r in _RANKDIRS), rankdir
            )
        )


def _file_format(to_file, caller):
    if not isinstance(to_file, (str, os.PathLike)):
        raise TypeError(
            "{}: argument 'to_file' must be a path (str or os.PathLike), got {}".format(
                caller, type(to_file).__name__
            )
        )
    to_file = os.fspath(to_file)
    extension = os.path.splitext(to_file)[1].lower()
    return to_file, (extension[1:] if extension else "png")  # Keras: no extension -> png


def _write_atomically(to_file, write):
    """Call write(tmp_path), then rename tmp_path onto to_file: no half-written picture. (The
    temporary file keeps the extension: dot and matplotlib pick the format from it.)"""
    prefix = "." + os.path.basename(to_file) + "."
    with atomic_output(to_file, prefix, os.path.splitext(to_file)[1]) as tmp:
        write(tmp)


def find_dot():
    """Path of Graphviz's ``dot`` executable, or None."""
    return shutil.which("dot")


# --------------------------------------------------------------------------------------------
# plot_model
# --------------------------------------------------------------------------------------------
def plot_model(
    model,
    to_file="model.png",
    show_shapes=False,
    show_layer_names=True,
    rankdir="TB",
    *,
    engine="auto",
):
    """Draw ``model`` (input node, one box per layer, edges) into ``to_file``; returns the path.

    Arguments as Keras 2.0's ``keras.utils.vis_utils.plot_model``; the format is the extension of
    ``to_file`` (png, svg, pdf, ...). ``engine``: ``"auto"`` (Graphviz's ``dot`` when installed,
    else matplotlib), ``"graphviz"`` or ``"matplotlib"``.
    """
    _check_options("plot_model", show_shapes, show_layer_names, rankdir)
    to_file, fmt = _file_format(to_file, "plot_model")
    if engine not in ("auto", "graphviz", "matplotlib"):
        raise ValueError(
            "plot_model: argument 'engine' must be 'auto', 'graphviz' or "
            "'matplotlib', got {!r}".format(engine)
        )
    dot = find_dot()
    if engine == "graphviz" and dot is None:
        raise RuntimeError(
            "plot_model: engine='graphviz' needs Graphviz's `dot` executable on the "
            "PATH (e.g. `apt-get install graphviz`); engine='auto' falls back to "
            "matplotlib"
        )
    use_graphviz = engine == "graphviz" or (engine == "auto" and dot is not None)
    supported = _GRAPHVIZ_FORMATS if use_graphviz else _MATPLOTLIB_FORMATS
    if fmt not in supported:
        raise ValueError(
            "plot_model: cannot write {!r}: the file extension must be one of {} "
            "(with the {} engine)".format(
                to_file,
                ", ".join("." + f for f in supported),
                "graphviz" if use_graphviz else "matplotlib",
            )
        )
    nodes = _model_nodes(model, "plot_model")  # validate the model before touching any file

    if use_graphviz:
        source = model_to_dot(model, show_shapes, show_layer_names, rankdir)

        def write(path):
            if fmt == "dot":
                with open(path, "w", encoding="utf-8") as f:
                    f.write(source)
                return
            result = subprocess.run(
                [dot, "-T" + ("jpg" if fmt == "jpeg" else fmt), "-o", path],
                input=source.encode("utf-8"),
                capture_output=True,
                timeout=120,
            )
            if result.returncode != 0:
                raise RuntimeError(
                    "plot_model: Graphviz `dot` failed ({}): {}".format(
                        result.returncode, result.stderr.decode("utf-8", "replace").strip()
                    )
                )
    else:

        def write(path):
            _draw_model_matplotlib(nodes, path, fmt, show_shapes, show_layer_names, rankdir)

    _write_atomically(to_file, write)
    return to_file


def _import_pyplot(caller):
    try:
        import matplotlib
    except ImportError as exc:
        raise ImportError(
            "{} needs matplotlib when Graphviz's `dot` is not installed: "
            "pip install matplotlib (or bnpy[plot])".format(caller)
        ) from exc
    del matplotlib
    # A bare Figure renders through its own canvas: no pyplot, no GUI backend, no global state.
    from matplotlib.figure import Figure

    return Figure


def _draw_model_matplotlib(nodes, path, fmt, show_shapes, show_layer_names, rankdir):
    """The Graphviz picture drawn with matplotlib: record boxes in a column (or a row) with arrows.

    Geometry in points, with a monospace font so that text width = characters * 0.6 * size.
    Names are drawn literally (``parse_math=False``): a layer named ``$x$`` is not TeX.
    """
    Figure = _import_pyplot("plot_model")
    from matplotlib.patches import FancyArrowPatch, Rectangle

    font_size = 10.0
    char_w, line_h, pad = 0.6 * font_size, 1.5 * font_size, 6.0

    boxes = []  # per node: list of cells; a cell is a list of text lines stacked vertically
    for _, name, class_name, in_text, out_text in nodes:
        label = _node_label(name, class_name, show_layer_names)
        if show_shapes:
            boxes.append([[label], ["input:", "output:"], [in_text, out_text]])
        else:
            boxes.append([[label]])

    def cell_width(cell):
        return max(len(t) for t in cell) * char_w + 2 * pad

    n_lines = 2 if show_shapes else 1
    box_h = n_lines * line_h + 2 * pad
    widths = [sum(cell_width(c) for c in cells) for cells in boxes]
    gap = 30.0
    vertical = rankdir in ("TB", "BT")
    if vertical:
        total_w = max(widths) + 2 * gap
        total_h = len(boxes) * box_h + (len(boxes) + 1) * gap
    else:
        total_w = sum(widths) + (len(boxes) + 1) * gap
        total_h = box_h + 2 * gap

    fig = Figure(figsize=(total_w / 72.0, total_h / 72.0), dpi=100)
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_xlim(0, total_w)
    ax.set_ylim(0, total_h)
    ax.axis("off")

    anchors = []  # (x_left, y_bottom, width) per box
    for i, (cells, width) in enumerate(zip(boxes, widths)):
        order = i if rankdir in ("TB", "LR") else len(boxes) - 1 - i
        if vertical:
            x0 = (total_w - width) / 2.0
            y0 = total_h - gap - box_h - order * (box_h + gap)
        else:
            x0 = gap + sum(
                widths[j] + gap
                for j in range(len(boxes))
                if (j if rankdir == "LR" else len(boxes) - 1 - j) < order
            )
            y0 = gap
        anchors.append((x0, y0, width))
        ax.add_patch(Rectangle((x0, y0), width, box_h, fill=False, linewidth=1.0))
        cx = x0
        for k, cell in enumerate(cells):
            w = cell_width(cell)
            if k > 0:
                ax.plot([cx, cx], [y0, y0 + box_h], color="black", linewidth=1.0)
            if len(cell) == 1:
                ax.text(
                    cx + w / 2,
                    y0 + box_h / 2,
                    cell[0],
                    ha="center",
                    va="center",
                    family="monospace",
                    fontsize=font_size,
                    parse_math=False,
                )
            else:
                ax.plot([cx, cx + w], [y0 + box_h / 2] * 2, color="black", linewidth=1.0)
                for j, text in enumerate(cell):
                    ax.text(
                        cx + w / 2,
                        y0 + box_h * (0.75 - 0.5 * j),
                        text,
                        ha="center",
                        va="center",
                        family="monospace",
                        fontsize=font_size,
                        parse_math=False,
                    )
            cx += w

    for (xa, ya, wa), (xb, yb, wb) in zip(anchors[:-1], anchors[1:]):
        if vertical:
            start = (xa + wa / 2, ya) if rankdir == "TB" else (xa + wa / 2, ya + box_h)
            end = (xb + wb / 2, yb + box_h) if rankdir == "TB" else (xb + wb / 2, yb)
        else:
            start = (xa + wa, ya + box_h / 2) if rankdir == "LR" else (xa, ya + box_h / 2)
            end = (xb, yb + box_h / 2) if rankdir == "LR" else (xb + wb, yb + box_h / 2)
        ax.add_patch(
            FancyArrowPatch(
                start, end, arrowstyle="-|>", mutation_scale=12, color="black", linewidth=1.0
            )
        )
    _save(fig, path, fmt)


def _save(fig, path, fmt):
    """Save a Figure; SVG keeps its text as <text> (searchable, as Graphviz's SVG does)."""
    import matplotlib

    with matplotlib.rc_context({"svg.fonttype": "none"}):
        fig.savefig(path, format="jpeg" if fmt == "jpg" else fmt)


# --------------------------------------------------------------------------------------------
# plot_history
# --------------------------------------------------------------------------------------------
def _history_dict(history, caller, label):
    """A History (with .history), or a dict name -> per-epoch list, as a dict of lists."""
    data = getattr(history, "history", history)
    if not isinstance(data, dict):
        raise TypeError(
            "{}: run {!r} must be a History or a dict of per-epoch lists, got {}".format(
                caller, label, type(history).__name__
            )
        )
    return data


def _normalise_histories(histories, caller):
    """[(label, dict)] from a History/dict, a {label: History/dict} mapping or (label, h) pairs."""
    if hasattr(histories, "history") or (
        isinstance(histories, dict)
        and any(k in histories for k in ("loss", "acc", "accuracy", "val_loss"))
    ):
        return [(None, _history_dict(histories, caller, None))]
    if isinstance(histories, dict):
        runs = list(histories.items())
    elif isinstance(histories, (list, tuple)):
        runs = []
        for item in histories:
            if not (isinstance(item, (list, tuple)) and len(item) == 2):
                raise TypeError(
                    "{}: argument 'histories' as a list must hold (label, history) "
                    "pairs, got an item {!r}".format(caller, type(item).__name__)
                )
            runs.append((item[0], item[1]))
    else:
        raise TypeError(
            "{}: argument 'histories' must be a History, a dict of per-epoch lists, "
            "a dict label -> History, or a list of (label, History) pairs; got "
            "{}".format(caller, type(histories).__name__)
        )
    if not runs:
        raise ValueError("{}: argument 'histories' is empty".format(caller))
    return [(str(label), _history_dict(h, caller, label)) for label, h in runs]


def _series(data, *names):
    for name in names:
        if name in data and len(data[name]) > 0:
            return [float(v) for v in data[name]]
    return None


def plot_history(histories, to_file="history.png", title=None):
    """Training and validation accuracy (left) and loss (right) per epoch, one colour per run.

    ``histories``: a ``History`` (``model.fit``'s return value) or its ``.history`` dict; or
    several labelled runs as ``{label: History}`` or ``[(label, History), ...]``. Training curves
    are solid, validation curves dashed. The format follows ``to_file``'s extension. Returns the
    path.
    """
    to_file, fmt = _file_format(to_file, "plot_history")
    if fmt not in _MATPLOTLIB_FORMATS:
        raise ValueError(
            "plot_history: cannot write {!r}: the file extension must be one of {}".format(
                to_file, ", ".join("." + f for f in _MATPLOTLIB_FORMATS)
            )
        )
    runs = _normalise_histories(histories, "plot_history")
    panels = (
        ("accuracy", ("acc", "accuracy"), ("val_acc", "val_accuracy")),
        ("loss", ("loss",), ("val_loss",)),
    )
    for label, data in runs:
        if all(
            _series(data, *train) is None and _series(data, *val) is None
            for _, train, val in panels
        ):
            raise ValueError(
                "plot_history: run {!r} has none of the keys loss, acc, val_loss, "
                "val_acc (keys: {})".format(label, sorted(data))
            )

    Figure = _import_pyplot("plot_history")
    from matplotlib.ticker import MaxNLocator

    fig = Figure(figsize=(11, 4.2), dpi=100)
    axes = fig.subplots(1, 2)
    colours = ["C{}".format(i % 10) for i in range(len(runs))]
    for ax, (panel, train_keys, val_keys) in zip(axes, panels):
        for colour, (label, data) in zip(colours, runs):
            prefix = "" if label is None else label + " "
            for keys, style, kind in ((train_keys, "-", "train"), (val_keys, "--", "validation")):
                values = _series(data, *keys)
                if values is not None:
                    epochs = range(1, len(values) + 1)
                    ax.plot(
                        epochs,
                        values,
                        style,
                        color=colour,
                        marker="o",
                        markersize=3,
                        label=prefix + kind,
                    )
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel(panel)
        ax.set_title(panel)
        ax.grid(True, alpha=0.3)
    # One legend below both panels (the two panels' curves have the same labels), so that it
    # never covers a curve; more rows the more runs there are.
    handles, labels = axes[0].get_legend_handles_labels()
    columns = min(len(handles), 4)
    rows = -(-len(handles) // max(columns, 1))
    fig.legend(handles, labels, loc="lower center", ncol=max(columns, 1), fontsize=8)
    if title:
        fig.suptitle(title)
    fig.set_size_inches(11, 4.2 + 0.22 * rows)
    fig.tight_layout(rect=(0, (0.06 + 0.05 * rows) * 4.2 / (4.2 + 0.22 * rows), 1, 1))
    _write_atomically(to_file, lambda path: _save(fig, path, fmt))
    return to_file
