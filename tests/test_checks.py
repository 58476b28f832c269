"""tfadv.checks: the one home of the shared checks, their messages and the number parser."""
import numpy as np
import pytest

from tfadv import checks


@pytest.mark.parametrize("text, expected", [
    ("8/255", 8 / 255), (" 8 / 255 ", 8 / 255), ("0.3/64", 0.3 / 64), ("0.03", 0.03), ("1e-3", 1e-3),
    (2, 2.0), (np.float32(0.5), 0.5), ("1/0", None), ("inf", None), ("abc", None), (True, None),
    (float("nan"), None), (None, None),
])
def test_parse_number_reads_fractions_like_the_papers(text, expected):
    number = checks.parse_number(text)
    assert number == (None if expected is None else pytest.approx(expected, rel=1e-12))


def test_configs_and_attack_specs_parse_fractions_with_it(tmp_path):
    from tfadv.attacks import AttackSpec
    from tfadv.config import load_config

    path = tmp_path / "c.yaml"
    path.write_text("method: {attack: {name: stadv, eps: 8/255, flow_bound: 0.3/64}}\n")
    attack = load_config(path).method.attack
    assert attack.eps == checks.parse_number("8/255") == 8 / 255
    assert AttackSpec("stadv", flow_bound="0.3/64").flow_bound == pytest.approx(0.3 / 64)


@pytest.mark.parametrize("call, message", [
    (lambda: checks.check_choice("update", "nesterov", ("sign", "adam")),
     "update must be one of sign, adam. Received: update='nesterov'"),
    (lambda: checks.check_in_interval("eps_max", 0.0, low_open=True),
     r"eps_max must be in \(0, 1\]. Received: eps_max=0.0"),
    (lambda: checks.check_in_interval("strength", 1.5, or_none=True),
     r"strength must be None or in \[0, 1\]. Received: strength=1.5"),
    (lambda: checks.check_in_interval("clean_weight", "a"),
     r"clean_weight must be in \[0, 1\]. Received: clean_weight='a'"),
    (lambda: checks.check_image_arrays(np.full((2, 3, 3, 1), 2.0), np.zeros(2, int)),
     r"x must be in \[0, 1\]. Received: x in \[2, 2\]"),
    (lambda: checks.check_labels(np.zeros((2, 3, 3, 1)), np.zeros(3, int)),
     r"x and y must have the same batch size. Received: x.shape\[0\]=2, y.shape\[0\]=3"),
])
def test_messages_name_the_argument_and_the_value(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_accepted_values_pass_through():
    assert checks.check_choice("norm", "bn", ("bn",)) == "bn"
    assert checks.check_in_interval("strength", None, or_none=True) is None
    assert checks.check_in_interval("eps_max", 1.0, low_open=True) == 1.0
    x, y = checks.check_image_arrays(np.zeros((2, 3, 3, 1), np.float64), np.zeros(2, np.int32))
    assert x.dtype == np.float32 and y.dtype == np.int64


def test_the_layer_the_norm_factory_and_the_attacks_share_them():
    from tfadv import attacks, models
    from tfadv.layers import DualBatchNormalization

    for build in (lambda: DualBatchNormalization(branches=1),
                  lambda: models.build("tiny", input_shape=(8, 8, 1), norm="dual_bn",
                                       norm_options={"branches": 1})):
        with pytest.raises(ValueError, match="branches must be an integer >= 2. Received: branches=1"):
            build()
    with pytest.raises(ValueError, match="update must be one of sign, adam"):
        attacks.AttackSpec("pgd", eps=0.1, update="nesterov")
    x = np.zeros((2, 4, 4, 1), np.float32)
    with pytest.raises(ValueError, match="update must be one of sign, adam"):
        attacks.pgd(lambda images: images[:, 0, 0, :], x, np.zeros(2, np.int64), 0.1, 0.01, 1,
                    update="nesterov")


# ------------------------------------------------------------------ --shard auto

SLURM = {"SLURM_ARRAY_TASK_ID": "5", "SLURM_ARRAY_TASK_MIN": "3", "SLURM_ARRAY_TASK_COUNT": "4"}


@pytest.mark.parametrize("text, environ, expected", [
    ("1/3", {}, (1, 3)),
    ("auto", SLURM, (2, 4)),  # sbatch --array=3-6: task 5 is shard 2 of 4
    ("auto/4", SLURM, (2, 4)),
    ("auto", {"SLURM_ARRAY_TASK_ID": "0", "SLURM_ARRAY_TASK_COUNT": "2"}, (0, 2)),  # no MIN: 0
    ("auto", {"SLURM_ARRAY_TASK_ID": "8", "SLURM_ARRAY_TASK_MIN": "0", "SLURM_ARRAY_TASK_STEP": "4",
              "SLURM_ARRAY_TASK_COUNT": "4"}, (2, 4)),  # --array=0-15:4
    (" auto / 3 ", {"JOB_COMPLETION_INDEX": "2"}, (2, 3)),
    ("auto", {**SLURM, "JOB_COMPLETION_INDEX": "0"}, (2, 4)),  # Slurm first
])
def test_resolve_shard_reads_slurm_arrays_and_kubernetes_indexed_jobs(text, environ, expected):
    assert checks.resolve_shard(text, "--shard", environ=environ) == expected


@pytest.mark.parametrize("text, environ, message", [
    ("auto", {}, r"--shard=auto reads the shard from a Slurm array job \(SLURM_ARRAY_TASK_ID, "
                 r"SLURM_ARRAY_TASK_COUNT\) or a Kubernetes Indexed Job \(JOB_COMPLETION_INDEX"),
    ("auto", {"JOB_COMPLETION_INDEX": "1"}, "JOB_COMPLETION_INDEX=1 gives this pod's index but not the count"),
    ("auto/2", {"JOB_COMPLETION_INDEX": "2"}, r"shard index 2 read from JOB_COMPLETION_INDEX=2 is not in \[0, 2\)"),
    ("auto/3", SLURM, "auto/3 disagrees with the Slurm array's SLURM_ARRAY_TASK_COUNT=4"),
    ("auto", {"SLURM_ARRAY_TASK_ID": "1"}, "SLURM_ARRAY_TASK_COUNT is not"),
    ("auto", {"SLURM_ARRAY_TASK_ID": "x", "SLURM_ARRAY_TASK_COUNT": "2"},
     "SLURM_ARRAY_TASK_ID must be an integer. Received: SLURM_ARRAY_TASK_ID='x'"),
    ("auto/0", {"JOB_COMPLETION_INDEX": "0"}, "must be an integer >= 1"),
    ("auto/x", {"JOB_COMPLETION_INDEX": "0"}, "--shard must be I/N, auto or auto/N"),
    ("automatic", SLURM, "--shard must look like I/N"),
])
def test_resolve_shard_errors_name_the_variables(text, environ, message):
    with pytest.raises(ValueError, match=message):
        checks.resolve_shard(text, "--shard", environ=environ)


def test_resolve_shard_reads_the_process_environment(monkeypatch):
    for variable in (*SLURM, "SLURM_ARRAY_TASK_STEP", "JOB_COMPLETION_INDEX"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("JOB_COMPLETION_INDEX", "1")
    assert checks.resolve_shard("auto/2") == (1, 2)
