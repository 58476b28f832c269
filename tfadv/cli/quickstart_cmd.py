"""tfadv quickstart: the whole mission on the embedded digits, in minutes on 2 CPU cores.

Paper 1, shortened: a clean CIFAR ResNet-20, fine-tuned on 1:1 clean + FGSM,
PGD or stAdv images (one stored adversarial example per training image).
Paper 2, shortened: AdvProp (dual BN) and RobMask (ε-conditioned BN).
Then the Table 1 / Table 2 / ε-sweep evaluations and RobMask's trade-off
curve, 2-D loss landscapes of the four paper-1 models with their Hessian
sharpness, and a SavedModel export of RobMask queried at p = 0 and p = 1.

Every stage is resumable: running the command again skips finished work.
"""
import json
import os
import time

STAGES = 7


def add_parser(subparsers):
    parser = subparsers.add_parser(
        "quickstart", help="the whole mission on the embedded digits (minutes on CPU)",
        description="Train, fine-tune, evaluate, map the loss landscapes of and export models on "
        "the embedded digits (or --data FILE.npz), writing runs/quickstart/report.md. "
        "Re-running resumes; --overwrite starts again.",
    )
    parser.add_argument("--data", default="digits", help="dataset source (default: digits; or an .npz with x, y)")
    parser.add_argument("--out", default="runs", help="parent folder of runs/quickstart (default: runs)")
    parser.add_argument("--export-dir", default="export", help="where the SavedModel goes (default: export)")
    parser.add_argument("--epochs", type=int, default=6, help="clean training epochs (default: 6)")
    parser.add_argument("--eval-limit", type=int, default=200, help="test images evaluated (default: 200)")
    parser.add_argument("--overwrite", action="store_true", help="start again instead of resuming")
    parser.set_defaults(run=run)


_STARTED = time.time()


def _say(stage, text):
    elapsed = time.time() - _STARTED
    print(f"[quickstart {stage}/{STAGES} {elapsed // 60:02.0f}:{elapsed % 60:02.0f}] {text}", flush=True)


def experiment_configs(args):
    """The quickstart's runs as ``ExperimentConfig``s, named by role."""
    from tfadv.config import load_config

    root = os.path.join(args.out, "quickstart")
    common = {
        "output_dir": root,
        "data": {"source": args.data, "batch_size": 64, "augment": False},
        "train": {"learning_rate": 0.05, "verbose": 2},
    }

    def config(name, **sections):
        data = {"name": name, **{k: dict(v) for k, v in common.items() if isinstance(v, dict)},
                "output_dir": root}
        for key, value in sections.items():
            data[key] = {**data.get(key, {}), **value}
        return load_config(data=data)

    clean_dir = os.path.join(root, "clean")
    finetune_train = {"epochs": 1, "learning_rate": 0.01}  # one pass over the 2N clean + adversarial set
    return {
        "clean": config("clean", model={"name": "resnet20"}, train={"epochs": args.epochs}),
        # Paper 1's protocol with its attacks, shortened: FGSM at 8/255, PGD (the authors'
        # released code uses 8/255; fewer steps here), stAdv with fewer Adam steps.
        "fgsm": config("finetune-fgsm", model={"name": "resnet20", "init_from": clean_dir},
                       train=finetune_train,
                       method={"kind": "finetune", "attack": {"name": "fgsm", "eps": "8/255"}}),
        "pgd": config("finetune-pgd", model={"name": "resnet20", "init_from": clean_dir},
                      train=finetune_train,
                      method={"kind": "finetune",
                              "attack": {"name": "pgd", "eps": "8/255", "steps": 5, "step_size": "2/255"}}),
        "stadv": config("finetune-stadv", model={"name": "resnet20", "init_from": clean_dir},
                        train=finetune_train,
                        method={"kind": "finetune",
                                "attack": {"name": "stadv", "steps": 20, "learning_rate": 0.05}}),
        # Paper 2, shortened: PGD-3 instead of PGD-7, a few epochs.
        "advprop": config("advprop", model={"name": "resnet20", "norm": "dual_bn"},
                          train={"epochs": 3},
                          method={"kind": "advprop",
                                  "attack": {"name": "pgd", "eps": "8/255", "steps": 3, "step_size": "3/255"}}),
        "robmask": config("robmask", model={"name": "resnet20", "norm": "robmask"},
                          train={"epochs": 3},
                          method={"kind": "robmask", "eps_max": "8/255", "pgd_steps": 3,
                                  "attack": {"name": "pgd", "eps": "8/255", "steps": 3}}),
    }


def _train_all(configs, overwrite):
    from tfadv.training import train_from_config

    results = {}
    for role, config in configs.items():
        print(f"  - {config.name}: {config.method.kind}"
              f"{' with ' + config.method.attack.name if config.method.kind != 'standard' else ''}, "
              f"{config.train.epochs} epochs", flush=True)
        results[role] = train_from_config(config, overwrite=overwrite)
    return results


def _evaluate(runs, args, x_test, y_test, root):
    from tfadv.evaluation import evaluate, pgd_sweep

    paper1 = {role: runs[role].run_dir for role in ("clean", "fgsm", "pgd", "stadv")}
    table1 = evaluate(
        {os.path.basename(path): path for path in paper1.values()}, x_test, y_test,
        attacks=[{"name": "fgsm", "eps": "8/255"}, {"name": "pgd", "eps": "1/255", "steps": 10},
                 {"name": "stadv", "steps": 20, "learning_rate": 0.05}],
        out_dir=os.path.join(root, "eval-paper1"), dataset=f"{args.data}[test][:{len(x_test)}]",
        force=args.overwrite,
    )
    paper2 = {role: runs[role].run_dir for role in ("clean", "advprop", "robmask")}
    sweep = evaluate(
        {os.path.basename(path): path for path in paper2.values()}, x_test, y_test,
        sweep=pgd_sweep(steps=10), p_grid=[0.0, 0.25, 0.5, 0.75, 1.0],
        tradeoff_attack={"name": "pgd", "eps": "8/255", "steps": 10, "step_size": "2/255"},
        out_dir=os.path.join(root, "eval-paper2"), dataset=f"{args.data}[test][:{len(x_test)}]",
        force=args.overwrite,
    )
    return table1, sweep


def _landscapes(runs, x_train, y_train, root):
    from tfadv import landscape
    from tfadv.training import load_model

    out = os.path.join(root, "landscapes")
    surfaces, names, sharpness = [], [], {}
    for role in ("clean", "fgsm", "pgd", "stadv"):
        name = os.path.basename(runs[role].run_dir)
        result = landscape.run_landscape(
            load_model(runs[role].run_dir), x_train, y_train, out, name=name, dim=2,
            grid="-1:1:11", examples=128, batch_size=128, hessian_top_k=1, hutchinson_samples=2,
            hessian_examples=128, hessian_max_iterations=10, progress=True,
        )
        surfaces.append(result["surface"])
        names.append(name)
        sharpness[name] = result["sharpness"]
    figures = {
        kind: landscape.compare_figure(surfaces, names, os.path.join(out, f"comparison_{kind}.png"), kind=kind)
        for kind in ("contour", "3d")
    }
    return figures, sharpness, out


def _export_and_query(runs, args, x_test):
    import numpy as np
    import tensorflow as tf

    from tfadv.export import export_model

    out = os.path.join(args.export_dir, "quickstart-robmask")
    export_model(runs["robmask"].run_dir, out, overwrite=True)
    served = tf.saved_model.load(out).signatures["serve_tradeoff"]
    images = tf.constant(x_test[:8])
    answers = {}
    for p in (0.0, 1.0):
        outputs = served(images=images, p=tf.constant(p, tf.float32))
        answers[p] = np.argmax(outputs["probabilities"].numpy(), axis=1).tolist()
    return out, answers


def write_report(path, args, runs, table1, sweep, figures, sharpness, export_dir, answers, y_test, seconds):
    from tfadv.evaluation import embed_report, format_report
    from tfadv.landscape import sharpness_table
    from tfadv.training.runs import runs_table

    root = os.path.dirname(path)

    def rel(target):
        return os.path.relpath(target, root)

    lines = [
        "# tfadv quickstart", "",
        f"Dataset `{args.data}`; CIFAR ResNet-20 models; evaluated on the first {len(y_test)} test "
        f"images. Total time {seconds / 60:.1f} min. Every run folder holds its resolved config.",
        "", "## Runs", "", runs_table(list(runs.values()), root),
    ]
    lines += ["", "## Paper 1: Tables 1 and 2", "", embed_report(format_report(table1), "eval-paper1"),
              "## Paper 2: ε sweep and the RobMask trade-off", "",
              embed_report(format_report(sweep), "eval-paper2"),
              "## Loss landscapes (filter-normalized, 2-D)", ""]
    for kind, figure in figures.items():
        lines.append(f"![{kind}]({rel(figure)})")
    lines += ["", "Sharpness (top Hessian eigenvalue, Hutchinson trace) of each model's training loss:",
              "", sharpness_table(sharpness), "",
              "## Export", "",
              f"RobMask exported to `{export_dir}` (see export/README.md). Predictions of "
              "`serve_tradeoff` for the first 8 test images, loaded with `tf.saved_model.load`:", "",
              "| p | predictions | labels |", "|---|---|---|"]
    for p, predicted in answers.items():
        lines.append(f"| {p:g} | {predicted} | {y_test[:8].tolist()} |")
    from tfadv._files import atomic_write_text

    atomic_write_text(path, "\n".join(lines) + "\n")


def run(args):
    from tfadv.training import load_split_arrays
    from tfadv.training.runs import write_json

    started = time.time()
    root = os.path.join(args.out, "quickstart")
    if args.overwrite and os.path.isdir(root):
        import shutil

        shutil.rmtree(root)
    os.makedirs(root, exist_ok=True)
    configs = experiment_configs(args)
    _say(1, f"training a clean ResNet-20 on {args.data!r}")
    runs = _train_all({"clean": configs["clean"]}, False)
    _say(2, "paper 1: fine-tuning on 1:1 clean + FGSM / PGD / stAdv images (stored once per image)")
    runs.update(_train_all({k: configs[k] for k in ("fgsm", "pgd", "stadv")}, False))
    _say(3, "paper 2: AdvProp (dual BN) and RobMask (ε-conditioned BN)")
    runs.update(_train_all({k: configs[k] for k in ("advprop", "robmask")}, False))

    data = configs["clean"].data
    x_test, y_test = load_split_arrays(data, "test")
    x_test, y_test = x_test[: args.eval_limit], y_test[: args.eval_limit]
    _say(4, f"evaluating on {len(y_test)} test images (Table 1, Table 2, ε sweep, trade-off)")
    table1, sweep = _evaluate(runs, args, x_test, y_test, root)
    _say(5, "2-D loss landscapes and Hessian sharpness of the four paper-1 models")
    x_train, y_train = load_split_arrays(data, "train")
    figures, sharpness, _ = _landscapes(runs, x_train, y_train, root)
    _say(6, "exporting RobMask as a SavedModel and querying it at p = 0 and p = 1")
    export_dir, answers = _export_and_query(runs, args, x_test)
    for p, predicted in answers.items():
        print(f"  p = {p:g}: {predicted}  (labels {y_test[:8].tolist()})")
    seconds = time.time() - started
    report = os.path.join(root, "report.md")
    _say(7, "writing the report")
    write_report(report, args, runs, table1, sweep, figures, sharpness, export_dir, answers, y_test, seconds)
    write_json(os.path.join(root, "summary.json"), {
        "seconds": round(seconds, 1), "data": args.data,
        "runs": {role: r.run_dir for role, r in runs.items()},
        "export": export_dir, "predictions": {str(p): v for p, v in answers.items()},
        "sharpness": json.loads(json.dumps(sharpness, default=float)),
    })
    print(f"[quickstart] done in {seconds / 60:.1f} min: {report}")
    return 0
