"""Keras-1 compatibility: argument-name converters (see :mod:`bnpy.legacy.interfaces`)."""
