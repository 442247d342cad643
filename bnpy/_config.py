"""The process-wide settings of :mod:`bnpy.backend` (Keras 2.0's ``keras.json`` values), kept in a
module of their own that imports nothing of bnpy: the layers read them when they are made
(``engine.Layer``: dtype; ``layers._conv_utils``: data format), the image generators when they
make a batch, and ``backend`` sets them; no import circle."""

#: 'channels_last' or 'channels_first': what a layer or generator made with data_format=None uses.
#: 'float32' or 'float64': the dtype of a layer made without dtype=, and of generators' batches.
settings = {"image_data_format": "channels_last", "floatx": "float32"}
