"""Datasets as float32 images in [0, 1] (NHWC) with int64 labels, and tf.data pipelines."""
from tfadv.data.cifar_archive import UnsafePickleError, load_cifar_archive, restricted_loads
from tfadv.data.pipeline import cifar_augment, make_dataset
from tfadv.data.sources import (
    DatasetNotFoundError,
    channel_stats,
    dataset_info,
    load_arrays,
)

__all__ = [
    "DatasetNotFoundError",
    "UnsafePickleError",
    "cifar_augment",
    "channel_stats",
    "dataset_info",
    "load_arrays",
    "load_cifar_archive",
    "make_dataset",
    "restricted_loads",
]
