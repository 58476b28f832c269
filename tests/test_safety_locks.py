"""One process per run or output folder (issue 16, point 6): real processes, real locks."""
import os
import subprocess
import sys
import textwrap

import pytest
import yaml

from tfadv._files import LOCK_FILE, FolderLock, FolderLockedError

# The holder loads tfadv/_files.py alone (no TensorFlow import), so it starts in a blink.
HOLDER = textwrap.dedent("""
    import importlib.util, sys, time
    spec = importlib.util.spec_from_file_location("files", sys.argv[2])
    files = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(files)
    lock = files.FolderLock(sys.argv[1], "holder").acquire()
    print("locked", flush=True)
    time.sleep(120)
""")


def _start_holder(folder):
    """A process that holds ``folder``'s lock until it is killed."""
    import tfadv._files

    process = subprocess.Popen([sys.executable, "-c", HOLDER, str(folder), tfadv._files.__file__],
                               stdout=subprocess.PIPE, text=True)
    assert process.stdout.readline().strip() == "locked"
    return process


@pytest.fixture
def holder(tmp_path):
    folders = []

    def start(folder):
        process = _start_holder(folder)
        folders.append(process)
        return process

    yield start
    for process in folders:
        process.kill()
        process.wait()


def test_lock_names_folder_and_pid_and_is_taken_over_when_the_holder_dies(tmp_path, holder):
    process = holder(tmp_path)
    with pytest.raises(FolderLockedError) as raised:
        FolderLock(tmp_path).acquire()
    assert str(tmp_path) in str(raised.value) and f"pid {process.pid}" in str(raised.value)
    process.kill()
    process.wait()
    # The pid is gone: its stale lock file is cleared and taken over.
    assert (tmp_path / LOCK_FILE).read_text().split()[0] == str(process.pid)
    with FolderLock(tmp_path, "second") as lock:
        assert lock.holder() == os.getpid()
    assert (tmp_path / LOCK_FILE).read_text() == ""  # released


TINY = {
    "model": {"name": "tiny"},
    "data": {"limit_train": 32, "limit_test": 16, "batch_size": 16, "augment": False},
    "train": {"epochs": 1, "verbose": 0},
}


def test_second_train_eval_and_landscape_on_a_held_folder_refuse(tmp_path, holder, capsys):
    from tfadv.cli.main import main

    config = {**TINY, "name": "run", "output_dir": str(tmp_path / "runs")}
    config_path = tmp_path / "run.yaml"
    config_path.write_text(yaml.safe_dump(config))
    run_dir = tmp_path / "runs" / "run"
    process = holder(run_dir)
    assert main(["train", str(config_path)]) == 2
    err = capsys.readouterr().err
    assert str(run_dir) in err and f"pid {process.pid}" in err and err.strip().count("\n") == 0
    assert not (run_dir / "config.yaml").exists()
    process.kill()
    process.wait()
    assert main(["train", str(config_path)]) == 0  # the dead holder's lock is cleared

    model = str(run_dir / "model.keras")
    eval_out, landscape_out = tmp_path / "eval", tmp_path / "landscape"
    held = {eval_out: holder(eval_out), landscape_out: holder(landscape_out)}
    assert main(["eval", model, "--attack", "fgsm:eps=1/255", "--limit", "8", "--out", str(eval_out)]) == 2
    assert main(["landscape", model, "--dim", "1", "--grid=-1:1:3", "--examples", "8", "--no-plots",
                 "--out", str(landscape_out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    for line, (folder, process) in zip(err[-2:], held.items()):
        assert str(folder) in line and f"pid {process.pid}" in line, line
    assert not (eval_out / "eval.json").exists() and not list(landscape_out.glob("*/surface.h5"))
