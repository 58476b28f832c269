"""Evaluations sharded over processes: blocks of whole batches, the merge, the refusals."""
import json
import os
import shutil

import numpy as np
import pytest

from tfadv.evaluation import evaluate
from tfadv.evaluation.shards import evaluate_shard, merge_evaluations, parse_shard, shard_block
from tfadv.models import build

# PGD with a seeded random start: batch b draws its start from seed·stride + b, which a shard
# must reproduce by numbering its batches globally.
ATTACKS = [{"name": "fgsm", "eps": 2 / 255}, {"name": "pgd", "eps": 4 / 255, "steps": 3, "random_start": True}]


@pytest.fixture
def setup():
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, size=(20, 8, 8, 3)).astype("float32")
    y = rng.integers(0, 10, size=(20,)).astype("int64")
    return {"tiny": build("tiny", input_shape=(8, 8, 3))}, x, y


def _numbers(results):
    """Everything but timings and environment."""
    models = {}
    for name, record in results["models"].items():
        parts = {part_name: {k: v for k, v in part.items() if k not in ("seconds",)}
                 for part_name, part in record["parts"].items()}
        models[name] = {**{k: v for k, v in record.items() if k != "parts"}, "parts": parts}
    return {"dataset": results["dataset"], "plan": results["plan"], "models": models}


def test_shard_blocks_are_whole_batches_covering_the_data_once():
    blocks = [shard_block(20, 8, i, 2) for i in range(2)]
    assert blocks == [(0, 8, 0), (8, 20, 1)]
    blocks = [shard_block(100, 7, i, 3) for i in range(3)]  # 15 batches: 5 each
    assert blocks == [(0, 35, 0), (35, 70, 5), (70, 100, 10)]
    assert parse_shard("1/2") == (1, 2)
    with pytest.raises(ValueError, match="shard must look like I/N"):
        parse_shard("2/2")


def test_two_shards_merged_equal_the_unsharded_evaluation(tmp_path, setup):
    models, x, y = setup
    settings = dict(attacks=ATTACKS, batch_size=8, progress=False, plots=False, grid_examples=4,
                    dataset="toy")
    whole = evaluate(models, x, y, out_dir=tmp_path / "whole", **settings)
    for index in range(2):
        shard = evaluate_shard(models, x, y, (index, 2), tmp_path / "sharded", **settings)
        assert shard["dataset"]["num_examples"] == (8, 12)[index]
    merged = merge_evaluations(tmp_path / "sharded", plots=False)
    assert _numbers(merged) == _numbers(whole)
    # The worst case is the per-example AND of clean and every attack, recomputed independently.
    parts = whole["models"]["tiny"]["parts"]
    bits = np.logical_and.reduce([np.array(list(p["correct"])) == "1" for p in parts.values()])
    assert merged["models"]["tiny"]["worst_case"]["accuracy"] == float(bits.mean())
    assert (tmp_path / "sharded" / "eval.md").read_text() == (tmp_path / "whole" / "eval.md").read_text()
    on_disk = json.loads((tmp_path / "sharded" / "eval.json").read_text())
    assert _numbers(on_disk) == _numbers(whole)
    # A rerun of the unsharded evaluation in the merged folder finds every part done.
    again = evaluate(models, x, y, out_dir=tmp_path / "sharded", **settings)
    assert all(p["seconds"] == merged["models"]["tiny"]["parts"][n]["seconds"]
               for n, p in again["models"]["tiny"]["parts"].items())


def test_missing_and_mismatched_shards_are_refused(tmp_path, setup):
    models, x, y = setup
    settings = dict(batch_size=8, progress=False, plots=False, grid_examples=0)
    evaluate_shard(models, x, y, "0/2", tmp_path / "out", attacks=ATTACKS[:1], **settings)
    with pytest.raises(ValueError, match="missing shard.*shard-1-of-2"):
        merge_evaluations(tmp_path / "out")
    evaluate_shard(models, x, y, "1/2", tmp_path / "out", attacks=ATTACKS, **settings)
    with pytest.raises(ValueError, match="shard-1-of-2.*attacks, sweep or p grid differ"):
        merge_evaluations(tmp_path / "out")
    shutil.rmtree(tmp_path / "out" / "shard-1-of-2")
    evaluate_shard(models, x[::-1].copy(), y[::-1].copy(), "1/2", tmp_path / "out", attacks=ATTACKS[:1], **settings)
    with pytest.raises(ValueError, match="shard-1-of-2.*dataset differs"):
        merge_evaluations(tmp_path / "out")
    assert not os.path.exists(tmp_path / "out" / "eval.json")


def test_cli_eval_shards_and_merge(tmp_path, capsys):
    from tfadv.cli.main import main

    model = build("tiny", input_shape=(32, 32, 3))
    path = str(tmp_path / "tiny.keras")
    model.save(path)
    common = [path, "--limit", "20", "--batch-size", "8", "--attack", "pgd:eps=2/255,steps=2", "--data", "digits"]
    assert main(["eval", *common, "--out", str(tmp_path / "whole")]) == 0
    for index in range(2):
        assert main(["eval", *common, "--out", str(tmp_path / "sharded"), "--shard", f"{index}/2"]) == 0
    assert main(["eval", "merge", str(tmp_path / "sharded")]) == 0
    whole = json.loads((tmp_path / "whole" / "eval.json").read_text())
    merged = json.loads((tmp_path / "sharded" / "eval.json").read_text())
    assert _numbers(merged) == _numbers(whole)
    assert main(["eval", *common, "--out", str(tmp_path / "x"), "--shard", "2/2"]) == 2


_SCHEDULER_VARIABLES = ("SLURM_ARRAY_TASK_ID", "SLURM_ARRAY_TASK_COUNT", "SLURM_ARRAY_TASK_MIN",
                        "SLURM_ARRAY_TASK_STEP", "JOB_COMPLETION_INDEX")


def test_auto_shards_from_the_scheduler_survive_a_killed_shard(tmp_path, monkeypatch):
    """Shard 0 from a Slurm array task, shard 1 from a Kubernetes pod that is SIGKILLed while it
    works and run again: the merge equals the unsharded evaluation."""
    import signal
    import subprocess
    import sys
    import time

    from tfadv.cli.main import main

    for variable in _SCHEDULER_VARIABLES:
        monkeypatch.delenv(variable, raising=False)
    model = build("tiny", input_shape=(32, 32, 3))
    path = str(tmp_path / "tiny.keras")
    model.save(path)
    common = [path, "--limit", "24", "--batch-size", "8", "--data", "digits",
              "--attack", "pgd:eps=2/255,steps=2", "--attack", "pgd:eps=4/255,steps=40,random_start=true"]
    sharded = tmp_path / "sharded"
    assert main(["eval", *common, "--out", str(tmp_path / "whole")]) == 0
    with monkeypatch.context() as slurm:  # sbatch --array=1-2: task 1 is shard 0 of 2
        for variable, value in (("SLURM_ARRAY_TASK_ID", "1"), ("SLURM_ARRAY_TASK_MIN", "1"),
                                ("SLURM_ARRAY_TASK_COUNT", "2")):
            slurm.setenv(variable, value)
        assert main(["eval", *common, "--out", str(sharded), "--shard", "auto"]) == 0
    assert (sharded / "shard-0-of-2" / "eval.json").exists()

    monkeypatch.setenv("JOB_COMPLETION_INDEX", "1")
    command = [sys.executable, "-m", "tfadv.cli.main", "eval", *common, "--out", str(sharded), "--shard", "auto/2"]
    pod = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                           env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    stored = sharded / "shard-1-of-2" / "eval.json"
    deadline = time.time() + 120
    while not stored.exists() and pod.poll() is None and time.time() < deadline:
        time.sleep(0.05)  # killed once its first part is stored, before the last
    pod.send_signal(signal.SIGKILL)
    pod.wait()
    assert stored.exists()
    partial = json.loads(stored.read_text())
    assert len(partial["models"]["tiny"]["parts"]) < 3, "the shard finished before it was killed"
    assert main(["eval", "merge", str(sharded)]) == 2  # shard 1 is incomplete: refused
    assert main(["eval", *common, "--out", str(sharded), "--shard", "auto/2"]) == 0  # the pod restarted
    assert main(["eval", "merge", str(sharded)]) == 0
    whole = json.loads((tmp_path / "whole" / "eval.json").read_text())
    merged = json.loads((sharded / "eval.json").read_text())
    assert _numbers(merged) == _numbers(whole)
