"""Silence TensorFlow's C++ and Python start-up logging before TF is imported.

Users of a research library want errors, not a page of CUDA-stub notices, on
every import. Respect a value the user already set.
"""
import logging
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
# absl logs the "could not find cuda drivers" notice through its own handler.
os.environ.setdefault("GRPC_VERBOSITY", "ERROR")
logging.getLogger("tensorflow").setLevel(logging.ERROR)
