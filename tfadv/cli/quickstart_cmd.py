"""tfadv quickstart: the main job on the embedded digits, in minutes on 2 CPU cores.

Trains a small CIFAR ResNet clean on scikit-learn's digits (or any .npz given
with --data) and evaluates it, writing runs/quickstart/ with a report.
"""
import os
import time


def add_parser(subparsers):
    parser = subparsers.add_parser(
        "quickstart", help="the main job on the embedded digits (a few minutes on CPU)",
        description="Train and evaluate on the embedded digits (or --data FILE.npz) and write "
        "runs/quickstart/report.md.",
    )
    parser.add_argument("--data", default="digits", help="dataset source (default: digits; or an .npz with x, y)")
    parser.add_argument("--out", default="runs", help="parent folder of the run folders (default: runs)")
    parser.add_argument("--epochs", type=int, default=6, help="clean training epochs (default: 6)")
    parser.add_argument("--overwrite", action="store_true", help="start again instead of resuming")
    parser.set_defaults(run=run)


def clean_config(args):
    from tfadv.config import load_config

    return load_config(data={
        "name": "quickstart-clean",
        "output_dir": os.path.join(args.out, "quickstart"),
        "data": {"source": args.data, "batch_size": 64, "augment": False},
        "model": {"name": "resnet20"},
        "train": {"epochs": args.epochs, "learning_rate": 0.05, "verbose": 2},
    })


def run(args):
    from tfadv.training import load_split_arrays, train_from_config
    from tfadv.training.runs import write_json

    started = time.time()
    report_dir = os.path.join(args.out, "quickstart")
    os.makedirs(report_dir, exist_ok=True)
    print(f"[quickstart] 1/2 training a clean ResNet-20 on {args.data!r}")
    config = clean_config(args)
    result = train_from_config(config, overwrite=args.overwrite)
    print("[quickstart] 2/2 evaluating")
    x_test, y_test = load_split_arrays(config.data, "test")
    import keras

    result.model.compile(loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                         metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")])
    loss, accuracy = result.model.evaluate(x_test, y_test, batch_size=256, verbose=0)
    summary = {"clean_test_accuracy": accuracy, "clean_test_loss": loss,
               "test_examples": int(len(y_test)), "seconds": round(time.time() - started, 1)}
    write_json(os.path.join(report_dir, "summary.json"), summary)
    report = os.path.join(report_dir, "report.md")
    with open(report, "w", encoding="utf-8") as handle:
        handle.write(
            "# tfadv quickstart\n\n"
            f"Dataset: `{args.data}`; model: CIFAR ResNet-20 trained {args.epochs} epochs "
            f"(run folder `{result.run_dir}`).\n\n"
            "| model | clean accuracy |\n|---|---|\n"
            f"| clean | {accuracy:.4f} |\n"
        )
    print(f"[quickstart] clean test accuracy {accuracy:.4f}; report: {report}")
    return 0
