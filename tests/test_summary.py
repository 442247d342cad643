"""summary() reproduces Keras 2.0's text to the character, and the article's networks have
Keras's parameter counts."""

import pytest
from reference_layers import build_article_model

from bnpy.engine import reset_layer_names
from bnpy.layers import BatchNormalization, Dense
from bnpy.models import Sequential

# Verbatim from Keras 2.0.8 for the article's printed network in a fresh process
# (reference/keras-2.0-api.md §2.2). Every row is exactly 65 characters, trailing spaces kept.
ARTICLE_SUMMARY = """\
_________________________________________________________________
Layer (type)                 Output Shape              Param #   
=================================================================
conv2d_1 (Conv2D)            (None, 32, 32, 96)        34944     
_________________________________________________________________
max_pooling2d_1 (MaxPooling2 (None, 16, 16, 96)        0         
_________________________________________________________________
activation_1 (Activation)    (None, 16, 16, 96)        0         
_________________________________________________________________
conv2d_2 (Conv2D)            (None, 16, 16, 120)       11640     
_________________________________________________________________
flatten_1 (Flatten)          (None, 30720)             0         
_________________________________________________________________
dense_1 (Dense)              (None, 10)                307210    
_________________________________________________________________
batch_normalization_1 (Batch (None, 10)                40        
_________________________________________________________________
activation_2 (Activation)    (None, 10)                0         
_________________________________________________________________
activation_3 (Activation)    (None, 10)                0         
=================================================================
Total params: 353,834
Trainable params: 353,814
Non-trainable params: 20
_________________________________________________________________
"""


def _summary_text(model, **kwargs):
    lines = []
    model.summary(print_fn=lines.append, **kwargs)
    return "\n".join(lines) + "\n"


def _row(name_and_type, shape, params):
    """Keras 2.0's print_row for columns ending at 29, 55, 65: each field cut at its column end,
    padded with spaces, and the character before the next field forced to a space."""
    line = ""
    for field, end in zip([name_and_type, str(shape), str(params)], [29, 55, 65]):
        if line:
            line = line[:-1] + " "
        line = (line + field)[:end]
        line += " " * (end - len(line))
    return line


def test_article_network_summary_is_keras_text():
    reset_layer_names()
    model = build_article_model()
    assert _summary_text(model) == ARTICLE_SUMMARY
    assert all(
        len(line) == 65
        for line in ARTICLE_SUMMARY.splitlines()
        if not line.startswith("Total")
        and not line.startswith("Trainable")
        and not line.startswith("Non-trainable")
    )


def test_all_four_comments_enabled():
    reset_layer_names()
    model = build_article_model(True, True, True, True)
    rows = [
        ("conv2d_1 (Conv2D)", (None, 32, 32, 96), 34944),
        ("batch_normalization_1 (BatchNormalization)", (None, 32, 32, 96), 384),
        ("max_pooling2d_1 (MaxPooling2D)", (None, 16, 16, 96), 0),
        ("batch_normalization_2 (BatchNormalization)", (None, 16, 16, 96), 384),
        ("activation_1 (Activation)", (None, 16, 16, 96), 0),
        ("conv2d_2 (Conv2D)", (None, 16, 16, 120), 11640),
        ("batch_normalization_3 (BatchNormalization)", (None, 16, 16, 120), 480),
        ("flatten_1 (Flatten)", (None, 30720), 0),
        ("dense_1 (Dense)", (None, 10), 307210),
        ("batch_normalization_4 (BatchNormalization)", (None, 10), 40),
        ("activation_2 (Activation)", (None, 10), 0),
        ("dense_2 (Dense)", (None, 10), 110),
        ("activation_3 (Activation)", (None, 10), 0),
    ]
    expected = ["_" * 65, _row("Layer (type)", "Output Shape", "Param #"), "=" * 65]
    for i, row in enumerate(rows):
        expected.append(_row(*row))
        expected.append("=" * 65 if i == len(rows) - 1 else "_" * 65)
    expected += [
        "Total params: 355,192",
        "Trainable params: 354,548",
        "Non-trainable params: 644",
        "_" * 65,
    ]
    text = _summary_text(model)
    assert text == "\n".join(expected) + "\n"
    assert "batch_normalization_1 (Batch (None, 32, 32, 96)        384       " in text
    assert model.count_params() == 355192


@pytest.mark.parametrize(
    "flags, total, trainable, non_trainable",
    [
        ((False, False, False, False), 353834, 353814, 20),
        ((False, False, False, True), 353944, 353924, 20),
        ((True, True, True, True), 355192, 354548, 644),
    ],
)
def test_article_parameter_counts(flags, total, trainable, non_trainable):
    model = build_article_model(*flags)
    assert model.count_params() == total
    assert sum(w.size for w in model.trainable_weights) == trainable
    assert sum(w.size for w in model.non_trainable_weights) == non_trainable


def test_names_continue_counting_in_one_process():
    reset_layer_names()
    build_article_model()
    second = build_article_model()
    assert [layer.name for layer in second.layers][:2] == ["conv2d_3", "max_pooling2d_2"]


def test_summary_line_length_and_frozen_layer_counts_as_non_trainable():
    reset_layer_names()
    model = Sequential()
    model.add(Dense(4, input_shape=(3,)))
    model.add(BatchNormalization(trainable=False))
    text = _summary_text(model)
    assert text.splitlines()[-4:-1] == [
        "Total params: 32",
        "Trainable params: 16",
        "Non-trainable params: 16",
    ]
    wide = _summary_text(model, line_length=80)
    assert wide.splitlines()[0] == "_" * 80 and len(wide.splitlines()[3]) == 80
