"""All-or-nothing writes (issue 16, point 5): writers killed at random points leave parseable files.

A driver process imports tfadv's writers once, then forks a child 20 times;
each child rewrites every kind of file tfadv writes for a user, in a loop,
with a growing version number, until the driver SIGKILLs it after a random
delay. After each kill every file must parse and be internally consistent
(one version throughout): the old file or the new one, never a mix.
"""
import subprocess
import sys
import textwrap

DRIVER = textwrap.dedent(r'''
    import json, os, random, signal, sys, time
    import numpy as np
    import h5py, yaml

    from tfadv._files import atomic_write_json, atomic_write_text, save_figure
    from tfadv.config import load_config, save_config
    from tfadv.evaluation.results import load_results, new_results, save_results
    from tfadv.landscape.directions import Directions, load_directions, save_directions
    from tfadv.landscape.surface_file import open_surface_file, read_surface, write_point
    from tfadv.records import write_json
    from tfadv.training.callbacks import HistoryCSV, read_history
    from tfadv.tuning.report import write_summary

    folder, kills = sys.argv[1], int(sys.argv[2])
    path = lambda name: os.path.join(folder, name)
    os.makedirs(folder, exist_ok=True)
    SIZE = 20000  # large enough that a kill often lands mid-write
    grid = np.linspace(-1, 1, 5)
    surface_settings = {"split": "train", "seed": 0}
    open_surface_file(path("surface.h5"), surface_settings, grid, None)
    import matplotlib
    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    def write_all(version):
        payload = [version] * SIZE
        results = new_results({"name": "v", "version": version})
        results["models"] = {"m": {"payload": payload}}
        save_results(results, folder)                                          # eval.json
        atomic_write_text(path("eval.md"), f"v{version}\n" + "x" * SIZE + f"\nv{version}\n")  # eval.md
        write_json(path("summary.json"), {"version": version, "payload": payload})     # summary.json
        atomic_write_json(path("settings.json"), {"version": version, "payload": payload})
        config = load_config(data={"name": f"v{version}", "train": {"epochs": version + 1}})
        save_config(config, path("config.yaml"))                               # config.yaml
        HistoryCSV(path("history.csv")).on_epoch_end(version, {"loss": float(version)})
        directions = Directions(x=[np.full(SIZE, version, np.float32)], settings={"version": version})
        save_directions(directions, path("directions.h5"))                     # directions.h5
        write_point(path("surface.h5"), (version % len(grid),), {"train_loss": float(version),
                                                                   "train_acc": 0.5})
        rows = [{"trial": "0", "status": "COMPLETED", "eps_max_255": float(version), "eps_max": 0.1,
                 "clean": 0.5, "robust": 0.4, "objective": 0.45, "best_epoch": 1}]
        write_summary(rows, rows[0], "mean", 8 / 255, path("tuning.md"), path("tuning.json"),
                      {"payload": payload})
        figure = Figure()
        figure.add_subplot().plot(np.arange(200) * version)
        save_figure(figure, path("figure.png"), dpi=60)

    def check_all():
        versions = set()
        results = load_results(folder)
        assert set(results["models"]["m"]["payload"]) == {results["dataset"]["version"]}
        versions.add(results["dataset"]["version"])
        lines = open(path("eval.md"), encoding="utf-8").read().split("\n")
        assert lines[0] == lines[2] and len(lines[1]) == SIZE, "eval.md mixed"
        for name in ("summary.json", "settings.json"):
            data = json.load(open(path(name)))
            assert set(data["payload"]) == {data["version"]}, name
        tuning = json.load(open(path("tuning.json")))
        assert set(tuning["payload"]) == {tuning["best"]["eps_max_255"]}
        assert open(path("tuning.md"), encoding="utf-8").read().startswith("# ε_max search")
        config = load_config(path("config.yaml"))
        assert config.train.epochs == int(config.name[1:]) + 1
        rows = read_history(path("history.csv"))
        epochs = [int(r["epoch"]) for r in rows]
        assert epochs == sorted(set(epochs)) and float(rows[-1]["loss"]) == epochs[-1] - 1
        directions = load_directions(path("directions.h5"))
        assert set(directions.x[0].tolist()) == {directions.settings["version"]}
        assert read_surface(path("surface.h5"))["loss"].shape == (5,)
        import matplotlib.image
        assert matplotlib.image.imread(path("figure.png")).ndim == 3

    write_all(0)
    check_all()
    rng = random.Random(0)
    version = 1
    for kill in range(kills):
        child = os.fork()
        if child == 0:  # the writer: rewrite everything until killed
            try:
                while True:
                    write_all(version)
                    version += 1
            finally:
                os._exit(1)
        time.sleep(rng.uniform(0.02, 0.5))
        os.kill(child, signal.SIGKILL)
        os.waitpid(child, 0)
        check_all()
        version += 1000  # the next child writes versions the killed one never reached
    print("checked", kills)
''')


def test_killed_writers_leave_every_file_parseable(tmp_path):
    result = subprocess.run([sys.executable, "-c", DRIVER, str(tmp_path / "out"), "20"],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "checked 20" in result.stdout
