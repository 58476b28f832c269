"""Import TensorFlow without its start-up log noise.

TensorFlow 2.21 writes oneDNN, CUDA-stub and cuInit notices straight to file
descriptor 2 before absl logging is initialised, so no environment variable
silences them. We point fd 2 at /dev/null while TensorFlow loads and probes its
devices, then restore it: later errors and warnings are printed as usual.
Set TFADV_VERBOSE_IMPORT=1 to see everything.
"""
import contextlib
import logging
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")


@contextlib.contextmanager
def _stderr_silenced():
    if os.environ.get("TFADV_VERBOSE_IMPORT") == "1" or "tensorflow" in sys.modules:
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


with _stderr_silenced():
    import tensorflow as tf

    # Probing the GPU platform here prints the cuInit notice while silenced.
    tf.config.list_physical_devices("GPU")

logging.getLogger("tensorflow").setLevel(logging.ERROR)
