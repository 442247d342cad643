"""The batch iterators behind ``ImageDataGenerator.flow`` and ``flow_from_directory`` (Keras 2.0's
``Iterator``, ``NumpyArrayIterator``, ``DirectoryIterator``; re-exported by
``bnpy.preprocessing.image``)."""

import os
import threading
import warnings

import numpy as np

from ._image_functions import (
    _COLOR_MODES,
    _check_data_format,
    _class_files,
    _floatx,
    _pil_image,
    array_to_img,
    img_to_array,
    load_img,
)

# ---- iterators -----------------------------------------------------------------------------------


class Iterator:
    """Endless, thread-safe iterator of index batches (Keras 2.0's ``Iterator``).

    Each pass over the n samples starts with ``np.random.permutation(n)`` (``arange`` without
    shuffle); the last batch of a pass is short. With a seed, ``np.random.seed(seed +
    total_batches_seen)`` is called before every batch, which also fixes the augmentation."""

    def __init__(self, n, batch_size, shuffle, seed):
        if int(batch_size) != batch_size or batch_size < 1:
            raise ValueError(
                "{}: batch_size must be a positive int, got {!r}".format(
                    type(self).__name__, batch_size
                )
            )
        self.n = n
        self.batch_size = int(batch_size)
        self.shuffle = shuffle
        self.batch_index = 0
        self.total_batches_seen = 0
        self.lock = threading.Lock()
        self.index_generator = self._flow_index(n, self.batch_size, shuffle, seed)

    def reset(self):
        self.batch_index = 0

    def _flow_index(self, n, batch_size=32, shuffle=False, seed=None):
        self.reset()
        if n == 0:
            raise ValueError(
                "{}: there are no images to iterate over (0 samples)".format(type(self).__name__)
            )
        while True:
            if seed is not None:
                np.random.seed(seed + self.total_batches_seen)
            if self.batch_index == 0:
                index_array = np.arange(n)
                if shuffle:
                    index_array = np.random.permutation(n)
            current_index = (self.batch_index * batch_size) % n
            if n > current_index + batch_size:
                current_batch_size = batch_size
                self.batch_index += 1
            else:
                current_batch_size = n - current_index
                self.batch_index = 0
            self.total_batches_seen += 1
            yield (
                index_array[current_index : current_index + current_batch_size],
                current_index,
                current_batch_size,
            )

    def __len__(self):
        """Batches per pass."""
        return (self.n + self.batch_size - 1) // self.batch_size

    def __iter__(self):
        return self

    def __next__(self):
        return self.next()

    def _next_indices(self):
        with self.lock:
            return next(self.index_generator)

    def _save_batch(self, batch_x, current_index):
        """Write each image of the batch as <prefix>_<index>_<random 0..9999>.<format> (Keras)."""
        for i in range(batch_x.shape[0]):
            img = array_to_img(batch_x[i], self.data_format, scale=True)
            fname = "{prefix}_{index}_{hash}.{format}".format(
                prefix=self.save_prefix,
                index=current_index + i,
                hash=np.random.randint(10000),
                format=self.save_format,
            )
            img.save(os.path.join(self.save_to_dir, fname))


class NumpyArrayIterator(Iterator):
    """Batches of augmented images from arrays x (N, H, W, C) / (N, C, H, W) and optional labels y."""

    def __init__(
        self,
        x,
        y,
        image_data_generator,
        batch_size=32,
        shuffle=False,
        seed=None,
        data_format=None,
        save_to_dir=None,
        save_prefix="",
        save_format="png",
    ):
        func = "NumpyArrayIterator"
        x = np.asarray(x)
        if y is not None and len(x) != len(y):
            raise ValueError(
                "{}: x (images) and y (labels) must have the same length, got x.shape = {}, "
                "y.shape = {}".format(func, x.shape, np.asarray(y).shape)
            )
        data_format = _check_data_format(data_format, func)
        if x.ndim != 4:
            raise ValueError(
                "{}: x must have rank 4 (a batch of images), got shape {}".format(func, x.shape)
            )
        channels_axis = 3 if data_format == "channels_last" else 1
        if x.shape[channels_axis] not in {1, 3, 4}:
            warnings.warn(
                "NumpyArrayIterator is set to use the data format convention \"{}\" (channels on axis "
                "{}), i.e. expected either 1, 3 or 4 channels on axis {}. However, it was passed an array "
                "with shape {} ({} channels).".format(
                    data_format, channels_axis, channels_axis, x.shape, x.shape[channels_axis]
                ),
                stacklevel=2,
            )
        if save_to_dir is not None:
            _pil_image("flow(save_to_dir=...)")
        # Kept as given (Keras converts all of x to float32 up front); each batch is converted on
        # its way out, which gives the same values without a float32 copy of the whole data set.
        self.x = x
        self.y = np.asarray(y) if y is not None else None
        self.image_data_generator = image_data_generator
        self.data_format = data_format
        self.save_to_dir = save_to_dir
        self.save_prefix = save_prefix
        self.save_format = save_format
        super().__init__(x.shape[0], batch_size, shuffle, seed)

    def next(self):
        index_array, current_index, current_batch_size = self._next_indices()
        generator = self.image_data_generator
        batch_x = np.asarray(self.x[index_array], dtype=_floatx())
        batch_x = generator._random_transform_batch(batch_x)
        batch_x = generator._standardize_batch(batch_x)
        if self.save_to_dir:
            self._save_batch(batch_x, current_index)
        if self.y is None:
            return batch_x
        return batch_x, self.y[index_array]


class DirectoryIterator(Iterator):
    """Batches of augmented images read from directory/<class>/<images> (Keras 2.0's).

    ``class_mode``: 'categorical' (one-hot float32), 'binary' (float32 0/1), 'sparse' (int labels),
    'input' (the images themselves) or None (images only). Attributes as Keras: ``classes`` (int32
    label of every file), ``class_indices`` (name -> label), ``filenames`` (relative paths),
    ``samples``, ``num_class``."""

    def __init__(
        self,
        directory,
        image_data_generator,
        target_size=(256, 256),
        color_mode="rgb",
        classes=None,
        class_mode="categorical",
        batch_size=32,
        shuffle=True,
        seed=None,
        data_format=None,
        save_to_dir=None,
        save_prefix="",
        save_format="png",
        follow_links=False,
        interpolation="nearest",
    ):
        func = "flow_from_directory"
        _pil_image(func)
        self.directory = directory
        self.image_data_generator = image_data_generator
        self.target_size = tuple(target_size)
        if color_mode not in _COLOR_MODES:
            raise ValueError(
                "{}: color_mode must be 'rgb', 'grayscale' or 'rgba', got {!r}".format(
                    func, color_mode
                )
            )
        self.color_mode = color_mode
        self.data_format = _check_data_format(data_format, func)
        channels = {"rgb": 3, "grayscale": 1, "rgba": 4}[color_mode]
        if self.data_format == "channels_last":
            self.image_shape = self.target_size + (channels,)
        else:
            self.image_shape = (channels,) + self.target_size
        if class_mode not in {"categorical", "binary", "sparse", "input", None}:
            raise ValueError(
                "{}: class_mode must be 'categorical', 'binary', 'sparse', 'input' or None, got {!r}".format(
                    func, class_mode
                )
            )
        self.class_mode = class_mode
        self.save_to_dir = save_to_dir
        self.save_prefix = save_prefix
        self.save_format = save_format
        self.interpolation = interpolation

        class_names, self.filenames, self.classes = _class_files(
            directory, classes, follow_links, func
        )
        self.class_indices = dict(zip(class_names, range(len(class_names))))
        self.num_class = len(class_names)
        self.samples = len(self.filenames)
        print("Found %d images belonging to %d classes." % (self.samples, self.num_class))
        super().__init__(self.samples, batch_size, shuffle, seed)

    def next(self):
        index_array, current_index, current_batch_size = self._next_indices()
        generator = self.image_data_generator
        batch_x = np.zeros((current_batch_size,) + self.image_shape, dtype=_floatx())
        for i, j in enumerate(index_array):
            img = load_img(
                os.path.join(self.directory, self.filenames[j]),
                color_mode=self.color_mode,
                target_size=self.target_size,
                interpolation=self.interpolation,
            )
            batch_x[i] = img_to_array(img, data_format=self.data_format)
        batch_x = generator._random_transform_batch(batch_x)
        batch_x = generator._standardize_batch(batch_x)
        if self.save_to_dir:
            self._save_batch(batch_x, current_index)
        if self.class_mode == "input":
            return batch_x, batch_x.copy()
        if self.class_mode == "sparse":
            return batch_x, self.classes[index_array]
        if self.class_mode == "binary":
            return batch_x, self.classes[index_array].astype(_floatx())
        if self.class_mode == "categorical":
            batch_y = np.zeros((len(batch_x), self.num_class), dtype=_floatx())
            batch_y[np.arange(len(batch_x)), self.classes[index_array]] = 1.0
            return batch_x, batch_y
        return batch_x
