"""Resume is exact (issue 16, point 1): SIGKILL a `tfadv train`, run it again, end where an
uninterrupted run ends: bit-identical weights, optimizer state and history.csv on CPU.

The kills are real SIGKILLs of a real `tfadv train` process, at exact points: the
process runs the CLI with a Keras callback (or, for the stored set, a wrapped attack)
that kills its own process there, so the test needs no timing luck.

What a mid-epoch kill costs: the partial epoch. The run restarts from the last
epoch's checkpoint and redoes the whole epoch (the data stream, attack starts and
RobMask's p continue from that epoch's start), so the result is the same; only the
time of the steps done before the kill is lost.
"""
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow as tf
import yaml

from tfadv.cli.main import main
from tfadv.training import read_history

# Runs `tfadv train CONFIG` and SIGKILLs itself at the given point:
#   epoch E step S    after step S (0-based) of epoch E (0-based) has finished
#   epoch E end       after epoch E's checkpoint is written (between epochs)
#   chunk C           when the stored-set generation starts chunk C (chunks 0..C-1 are written)
KILLER = textwrap.dedent("""
    import os, signal, sys
    import keras
    where, config = sys.argv[1:3]
    kind, number, *rest = where.split(":")
    number = int(number)

    def die():
        os.kill(os.getpid(), signal.SIGKILL)

    class Kill(keras.callbacks.Callback):
        epoch = -1
        def on_epoch_begin(self, epoch, logs=None):
            self.epoch = epoch
        def on_train_batch_end(self, batch, logs=None):
            if kind == "epoch" and rest[0] != "end" and self.epoch == number and batch == int(rest[0]):
                die()
        def on_epoch_end(self, epoch, logs=None):
            if kind == "epoch" and rest[0] == "end" and epoch == number:
                die()

    fit = keras.Model.fit
    def fit_then_die(self, *args, callbacks=None, **kwargs):
        return fit(self, *args, callbacks=list(callbacks or []) + [Kill()], **kwargs)
    keras.Model.fit = fit_then_die

    from tfadv.attacks import AttackSpec
    run = AttackSpec.run
    def run_then_die(self, *args, **kwargs):
        if kind == "chunk" and kwargs.get("batch_index") == number:
            die()
        return run(self, *args, **kwargs)
    AttackSpec.run = run_then_die

    import tfadv.training.methods as methods
    generate = methods.generate_adversarial_examples
    # Small chunks, so the kill lands between chunks of the stored set.
    methods.generate_adversarial_examples = lambda model, x, y, attack, path, chunk_size, jit, **kw: \\
        generate(model, x, y, attack, path, 16, jit, **kw)

    from tfadv.cli.main import main
    sys.exit(main(["train", config]))
""")

BASE = {
    "data": {"limit_train": 64, "limit_test": 16, "batch_size": 16, "augment": True},
    # 6 steps of 16 = 1.5 passes over the 64 images: epochs start mid-pass, as they do with
    # steps_per_epoch; the stream must continue across kills exactly.
    "train": {"epochs": 2, "verbose": 0, "learning_rate": 0.05, "steps_per_epoch": 6},
}

CASES = {
    # method: (model, method section, kill points of successive processes)
    "standard": ({"name": "tiny"}, {"kind": "standard"}, ["epoch:1:2"]),
    "adversarial_pgd": ({"name": "tiny"},
                        {"kind": "adversarial", "attack": {"name": "pgd", "eps": "8/255", "steps": 2}},
                        ["epoch:0:end"]),
    "finetune_offline": ({"name": "tiny"}, {"kind": "finetune", "attack": {"name": "fgsm", "eps": "8/255"}},
                         ["chunk:2"]),
    "robmask": ({"name": "tiny", "norm": "robmask"},
                {"kind": "robmask", "eps_max": "8/255", "pgd_steps": 2, "attack": {"name": "pgd", "eps": "8/255"}},
                ["epoch:1:1"]),
}


def _checkpoint_values(run_dir):
    path = tf.train.latest_checkpoint(str(run_dir / "checkpoints"))
    reader = tf.train.load_checkpoint(path)
    return os.path.basename(path), {name: reader.get_tensor(name) for name, _ in tf.train.list_variables(path)
                                    if name != "_CHECKPOINTABLE_OBJECT_GRAPH"}


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
    """The clean model offline fine-tuning starts from (one epoch of standard training)."""
    folder = tmp_path_factory.mktemp("pretrained")
    config = {**BASE, "name": "clean", "output_dir": str(folder), "model": {"name": "tiny"}}
    config["train"] = {**BASE["train"], "epochs": 1}
    path = folder / "clean.yaml"
    path.write_text(yaml.safe_dump(config))
    assert main(["train", str(path)]) == 0
    return str(folder / "clean")


@pytest.mark.parametrize("case", sorted(CASES))
def test_killed_and_resumed_run_equals_an_uninterrupted_one(case, tmp_path, pretrained, monkeypatch):
    model, method, kills = CASES[case]
    if method["kind"] == "finetune":
        model = {**model, "init_from": pretrained}
        import tfadv.training.methods as methods

        generate = methods.generate_adversarial_examples
        monkeypatch.setattr(methods, "generate_adversarial_examples",
                            lambda m, x, y, a, p, chunk_size, jit, **kw: generate(m, x, y, a, p, 16, jit, **kw))

    def write(name):
        config = {**BASE, "name": name, "output_dir": str(tmp_path), "model": model, "method": method}
        path = tmp_path / f"{name}.yaml"
        path.write_text(yaml.safe_dump(config))
        return str(path)

    assert main(["train", write("reference")]) == 0
    interrupted = write("interrupted")
    run = tmp_path / "interrupted"
    for where in kills:
        process = subprocess.run([sys.executable, "-c", KILLER, where, interrupted],
                                 capture_output=True, text=True, timeout=300)
        assert process.returncode == -9, process.stderr[-2000:]
        history = read_history(run / "history.csv")
        assert not (run / "model.keras").exists()
        if where.startswith("epoch:"):
            epoch = int(where.split(":")[1])
            # Killed between epochs: that epoch is kept. Killed mid-epoch: the partial epoch is
            # lost (no row, no checkpoint) and will be redone from the previous checkpoint.
            kept = epoch + 1 if where.endswith(":end") else epoch
            assert len(history) == kept
            assert _checkpoint_values(run)[0] == f"ckpt-{kept}" if kept else True
        else:  # killed while the stored set was written: chunks 0 and 1 of 16 images are kept
            import h5py

            with h5py.File(run / "adversarial_examples.h5") as stored:
                assert stored.attrs["completed"] == 32
            assert history == []
    assert main(["train", interrupted]) == 0

    reference = tmp_path / "reference"
    assert read_history(run / "history.csv") == read_history(reference / "history.csv")
    name, resumed_state = _checkpoint_values(run)
    reference_name, reference_state = _checkpoint_values(reference)
    assert name == reference_name == "ckpt-2" and resumed_state.keys() == reference_state.keys()
    for key, value in reference_state.items():  # weights, optimizer slots and step, attack counter
        np.testing.assert_array_equal(resumed_state[key], value, err_msg=key)
    assert any("iteration" in key and int(value) == 12 for key, value in reference_state.items())
    import keras

    resumed_model = keras.models.load_model(run / "model.keras")
    reference_model = keras.models.load_model(reference / "model.keras")
    for a, b in zip(resumed_model.get_weights(), reference_model.get_weights()):
        np.testing.assert_array_equal(a, b)
