"""Datasets as float32 images in [0, 1] (NHWC) with int64 labels, and tf.data pipelines."""
from tfadv.data.cifar_archive import UnsafePickleError, load_cifar_archive, restricted_loads
from tfadv.data.pipeline import cifar_augment, make_dataset
from tfadv.data.sources import (
    DatasetNotFoundError,
    channel_stats,
    dataset_info,
    declared_num_classes,
    load_arrays,
)
from tfadv.data.validation import InvalidDataError, check_arrays, check_compatible, check_model_data

__all__ = [
    "DatasetNotFoundError",
    "InvalidDataError",
    "UnsafePickleError",
    "cifar_augment",
    "channel_stats",
    "check_arrays",
    "check_compatible",
    "check_model_data",
    "dataset_info",
    "declared_num_classes",
    "load_arrays",
    "load_cifar_archive",
    "make_dataset",
    "restricted_loads",
]
