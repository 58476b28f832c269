"""What the PyTorch comparisons in tools/ share: the peer Python and the way to it.

torch never becomes a dependency of tfadv or its tests: the PyTorch side of a
comparison runs in a separate Python (by default the repository's
``.peer-venv/``, which git ignores), started as a subprocess of the tool on the
tool's own file with ``--torch-side IN OUT``. Arrays and settings go there in
an .npz (settings as one JSON string; no pickle either way) and the answer
comes back as JSON.

This module imports only the standard library and NumPy, so both sides can
import it.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

PEER_VENV = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), ".peer-venv")
PEER_PYTHON = os.path.join(PEER_VENV, "bin", "python")
PEER_PACKAGES = ("torch", "torchvision", "torchattacks")


def install_peer():
    """Make the repository's ``.peer-venv`` with :data:`PEER_PACKAGES`, once."""
    if os.path.exists(PEER_PYTHON):
        return
    print(f"installing {', '.join(PEER_PACKAGES)} into {PEER_VENV} (once)", flush=True)
    subprocess.run([sys.executable, "-m", "venv", PEER_VENV], check=True)
    subprocess.run([PEER_PYTHON, "-m", "pip", "install", "--quiet", *PEER_PACKAGES], check=True)


def add_peer_arguments(parser):
    """The flags every comparison has: ``--torch-python``, ``--install-peer``, ``--threads``
    and the hidden ``--torch-side IN OUT`` the peer Python is started with."""
    parser.add_argument("--torch-python", default=PEER_PYTHON,
                        help="a Python with torch (default: the repository's .peer-venv)")
    parser.add_argument("--install-peer", action="store_true",
                        help=f"first make .peer-venv with {', '.join(PEER_PACKAGES)} if it is missing")
    parser.add_argument("--threads", type=int, default=0,
                        help="threads per library (torch.set_num_threads, TF's intra-op pool); 0: each "
                        "library's default. On a loaded machine 1 keeps both from spin-waiting on busy cores")
    parser.add_argument("--torch-side", nargs=2, metavar=("IN", "OUT"), help=argparse.SUPPRESS)


def check_torch_python(parser, args):
    """Install the peer environment if ``--install-peer`` asks; a parser error if
    ``--torch-python`` does not exist."""
    if args.install_peer and args.torch_python == PEER_PYTHON:
        install_peer()
    if not os.path.exists(args.torch_python):
        parser.error(f"no Python with torch at --torch-python={args.torch_python}; "
                     "add --install-peer to make the repository's .peer-venv")


def run_torch_side(torch_python, script, settings, script_args=(), **arrays):
    """Run ``script [script_args] --torch-side IN OUT`` in the peer Python on ``arrays`` and
    ``settings``, passed through an .npz in a temporary folder (no pickle); its JSON answer."""
    with tempfile.TemporaryDirectory() as folder:
        in_path, out_path = os.path.join(folder, "in.npz"), os.path.join(folder, "out.json")
        np.savez(in_path, settings=json.dumps(settings), **arrays)
        subprocess.run([torch_python, os.path.abspath(script), *script_args,
                        "--torch-side", in_path, out_path], check=True)
        with open(out_path) as handle:
            return json.load(handle)


def read_torch_side_input(in_path):
    """The peer side's view of :func:`run_torch_side`'s .npz: (arrays by name, settings)."""
    with np.load(in_path, allow_pickle=False) as data:
        arrays = {name: data[name] for name in data.files}
    return arrays, json.loads(str(arrays.pop("settings")))


def limit_tensorflow_threads(threads):
    """TensorFlow's intra- and inter-op pools at ``threads`` (0: its default). Call before
    TensorFlow runs anything."""
    import tensorflow as tf

    if threads:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)


def interleaved_median_ms(steps, repeats, warmup=2):
    """Median milliseconds of each of ``steps`` (name → callable), after ``warmup`` calls of
    each (tracing, allocator growth), the steps interleaved round by round so that a change
    in the machine's load falls on all of them alike. The procedure of ``tfadv.bench.train``,
    here so that the peer side, which cannot import tfadv, times the same way."""
    for step in steps.values():
        for _ in range(warmup):
            step()
    times = {name: [] for name in steps}
    for _ in range(repeats):
        for name, step in steps.items():
            start = time.perf_counter()
            step()
            times[name].append(time.perf_counter() - start)
    return {name: float(np.median(values)) * 1e3 for name, values in times.items()}
