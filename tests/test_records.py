"""The source revision beside every result (issue 19, point 8)."""
import hashlib
import json
import os
import shutil
import subprocess

import pytest

from tfadv import records
from tfadv.training import runs

needs_git = pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")


def _git(cwd, *args):
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True,
                   env={**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t",
                        "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"})


def _package(root):
    package = os.path.join(root, "pkg")
    os.makedirs(os.path.join(package, "sub"))
    with open(os.path.join(package, "__init__.py"), "w") as handle:
        handle.write("x = 1\n")
    with open(os.path.join(package, "sub", "a.py"), "w") as handle:
        handle.write("y = 2\n")
    return package


@needs_git
def test_a_checkout_gives_its_commit_and_dirty_flag(tmp_path):
    package = _package(str(tmp_path))
    _git(tmp_path, "init", "-q")
    _git(tmp_path, "add", "-A")
    _git(tmp_path, "commit", "-q", "-m", "one")
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=tmp_path, capture_output=True, text=True).stdout.strip()
    assert records.probe_revision(package) == {"git_commit": head, "dirty": False}
    with open(os.path.join(package, "sub", "a.py"), "a") as handle:
        handle.write("z = 3\n")
    assert records.probe_revision(package) == {"git_commit": head, "dirty": True}


def test_an_installed_copy_gives_version_and_a_hash_of_its_sources(tmp_path):
    package = _package(str(tmp_path))
    expected = hashlib.sha256()
    for relative, text in (("__init__.py", b"x = 1\n"), ("sub/a.py", b"y = 2\n")):
        expected.update(relative.encode() + b"\0" + text + b"\0")
    probed = records.probe_revision(package)
    assert probed == {"version": records.tfadv.__version__, "sources_sha256": expected.hexdigest()}
    with open(os.path.join(package, "sub", "a.py"), "a") as handle:
        handle.write("z = 3\n")
    assert records.probe_revision(package)["sources_sha256"] != expected.hexdigest()


def test_the_environment_record_carries_the_revision():
    source = records.environment_record()["source"]
    assert source == records.source_revision()
    assert set(source) in ({"git_commit", "dirty"}, {"version", "sources_sha256"})


def test_resume_note_names_both_revisions():
    a, b = {"git_commit": "a" * 40, "dirty": False}, {"git_commit": "b" * 40, "dirty": False}
    assert records.resume_note(a, current=dict(a)) is None
    note = records.resume_note(a, "run", current=b)
    assert note == f"Resuming a run begun by commit {'a' * 12} with commit {'b' * 12}."
    assert "(dirty)" in records.resume_note(a, current={**a, "dirty": True})
    assert "an unrecorded revision" in records.resume_note(None, current=a)


def test_resuming_a_run_folder_of_another_revision_says_so_once(tmp_path, monkeypatch):
    from tfadv.config import load_config

    config = load_config(data={"name": "r", "model": {"name": "tiny"}, "data": {"source": "digits"}})
    first = {"git_commit": "1" * 40, "dirty": False}
    second = {"git_commit": "2" * 40, "dirty": False}
    said = []
    monkeypatch.setattr(runs, "source_revision", lambda: first)
    runs.prepare_folder(config, str(tmp_path / "r"), say=said.append)
    assert said == []
    runs.prepare_folder(config, str(tmp_path / "r"), say=said.append)  # same code: nothing to say
    assert said == []
    monkeypatch.setattr(runs, "source_revision", lambda: second)
    runs.prepare_folder(config, str(tmp_path / "r"), say=said.append)
    assert len(said) == 1 and "commit 111111111111" in said[0] and "commit 222222222222" in said[0]
    with open(tmp_path / "r" / runs.REVISION_FILE) as handle:
        assert json.load(handle) == {"created_by": first, "resumed_by": [second]}
