"""An evaluation split over several processes or machines, and the merge of its shards.

Shard ``I`` of ``N`` evaluates a **contiguous block of whole batches** of the
test examples: with ``B = ceil(num_examples / batch_size)`` batches, shard
``I`` takes batches ``floor(I·B/N)`` to ``floor((I+1)·B/N) − 1``. Whole
batches, because PGD's and APGD's random starts are seeded per batch
(:meth:`tfadv.attacks.AttackSpec.run`): a shard runs its batches under their
global numbers, so every example sees exactly the random start it would see
in an unsharded run. Contiguous, because the merged per-example results are
then the shards' results concatenated in order.

A shard writes ``OUT/shard-I-of-N/eval.json`` (resumable part by part, like
any evaluation) holding, besides the usual numbers, a ``shard`` record (its
block, the batch size and the fingerprint of the *whole* data) and, per part,
the per-example ``flipped`` bits and SSIM distances. :func:`merge_evaluations`
checks that all N shards are there, cover the data once and agree (plan,
models, attacks, data), then writes ``OUT/eval.json`` and ``OUT/eval.md`` as
an unsharded run would: accuracies from the concatenated ``correct`` bits,
the worst case from the concatenated per-example worst case, SSIM means from
the concatenated distances; every number equals the unsharded run's exactly.
"""
import math
import os
import re
import shutil

import numpy as np

from tfadv._files import atomic_write_text
from tfadv.checks import check_image_arrays, check_integer, parse_shard, resolve_shard  # noqa: F401  (re-exported: part of this module's API)
from tfadv.evaluation.results import (
    REPORT_FILE,
    data_fingerprint,
    decode_mask,
    encode_mask,
    load_results,
    new_results,
    part_key,
    save_results,
)

SHARD_FOLDER = re.compile(r"^shard-(\d+)-of-(\d+)$")


def shard_folder(out_dir, index, count):
    """``OUT/shard-I-of-N``."""
    return os.path.join(os.fspath(out_dir), f"shard-{int(index)}-of-{int(count)}")


def shard_block(num_examples, batch_size, index, count):
    """``(start, stop, first_batch)``: the examples ``[start, stop)`` shard ``index`` of ``count``
    evaluates, and the global number of its first batch. A shard may be empty (more shards than
    batches): then ``start == stop``."""
    batches = math.ceil(int(num_examples) / int(batch_size))
    first, last = (index * batches) // count, ((index + 1) * batches) // count
    return min(first * batch_size, num_examples), min(last * batch_size, num_examples), first


def evaluate_shard(models, x, y, shard, out_dir, *, batch_size=128, dataset=None, grid_examples=8,
                   **evaluate_args):
    """Evaluate shard ``I`` of ``N`` of ``x, y`` into ``OUT/shard-I-of-N/eval.json``.

    Args:
        models, x, y: as :func:`tfadv.evaluation.evaluate` (all the examples:
            the shard picks its block).
        shard: ``(I, N)`` or ``"I/N"``.
        out_dir: the evaluation's folder ``OUT``; the shard writes to its subfolder.
        batch_size, dataset, grid_examples, **evaluate_args: as ``evaluate``
            (figures are left to the merge; image grids come from shard 0,
            which holds the first examples).

    Returns:
        The shard's results (what its ``eval.json`` holds).
    """
    from tfadv.evaluation.runner import evaluate

    index, count = resolve_shard(shard) if isinstance(shard, str) else parse_shard("{}/{}".format(*shard))
    check_integer("batch_size", batch_size)
    x, y = check_image_arrays(x, y)
    start, stop, first_batch = shard_block(len(x), batch_size, index, count)
    if start == stop:
        raise ValueError(f"shard {index}/{count} is empty: {len(x)} examples make only "
                         f"{math.ceil(len(x) / batch_size)} batches of {batch_size}; use fewer shards.")
    folder = shard_folder(out_dir, index, count)
    evaluate_args["plots"] = False
    results = evaluate(models, x[start:stop], y[start:stop], out_dir=folder, batch_size=batch_size,
                       dataset=dataset, grid_examples=grid_examples if index == 0 else 0,
                       first_batch=first_batch, per_example=True, **evaluate_args)
    results["shard"] = {"index": index, "count": count, "start": start, "stop": stop,
                        "batch_size": int(batch_size), "first_batch": first_batch,
                        "dataset": {"name": dataset, "num_examples": int(len(x)),
                                    "fingerprint": data_fingerprint(x, y)}}
    save_results(results, folder)
    return results


def find_shards(out_dir):
    """``{(I, N): folder}`` of the shard folders in ``out_dir``."""
    found = {}
    for name in sorted(os.listdir(out_dir)) if os.path.isdir(out_dir) else []:
        match = SHARD_FOLDER.match(name)
        if match and os.path.isfile(os.path.join(out_dir, name, "eval.json")):
            found[(int(match.group(1)), int(match.group(2)))] = os.path.join(out_dir, name)
    return found


def _refuse(folder, problem):
    raise ValueError(f"cannot merge {os.path.join(folder, 'eval.json')}: {problem}")


def _load_shards(out_dir):
    shards = find_shards(out_dir)
    if not shards:
        raise ValueError(f"{out_dir} holds no shard-I-of-N/eval.json to merge. Received: out_dir={out_dir!r}")
    counts = sorted({count for _, count in shards})
    if len(counts) > 1:
        raise ValueError(f"{out_dir} holds shards of different splits (N = {counts}); "
                         "delete the folders of the split you do not want to merge.")
    count = counts[0]
    missing = [os.path.basename(shard_folder(out_dir, i, count)) for i in range(count) if (i, count) not in shards]
    if missing:
        raise ValueError(f"cannot merge {out_dir}: missing shard(s) {', '.join(missing)} "
                         "(or their eval.json)")
    loaded = [(shards[(i, count)], load_results(shards[(i, count)])) for i in range(count)]
    reference = loaded[0][1].get("shard")
    if reference is None:
        _refuse(loaded[0][0], "it has no shard record (not written by an evaluation shard)")
    expected_start = 0
    for index, (folder, results) in enumerate(loaded):
        record = results.get("shard")
        if record is None or (record["index"], record["count"]) != (index, count):
            _refuse(folder, f"its shard record {record} does not say shard {index} of {count}")
        for key in ("batch_size", "dataset"):
            if record[key] != reference[key]:
                _refuse(folder, f"its {key} differs from shard 0's ({record[key]!r} vs {reference[key]!r})")
        block = shard_block(reference["dataset"]["num_examples"], reference["batch_size"], index, count)
        if (record["start"], record["stop"], record["first_batch"]) != block or record["start"] != expected_start:
            _refuse(folder, f"it covers examples [{record['start']}, {record['stop']}), expected {block[:2]}")
        if results["dataset"]["num_examples"] != record["stop"] - record["start"]:
            _refuse(folder, "its results are not on its block of examples")
        expected_start = record["stop"]
        if results["plan"] != loaded[0][1]["plan"]:
            _refuse(folder, "its attacks, sweep or p grid differ from shard 0's")
        if set(results["models"]) != set(loaded[0][1]["models"]):
            _refuse(folder, f"its models {sorted(results['models'])} differ from shard 0's "
                            f"{sorted(loaded[0][1]['models'])}")
        for name, model in results["models"].items():
            first = loaded[0][1]["models"][name]
            if model.get("fingerprint") != first.get("fingerprint"):
                _refuse(folder, f"model {name!r} has other weights than in shard 0")
            if set(model["parts"]) != set(first["parts"]):
                _refuse(folder, f"model {name!r} is incomplete: parts {sorted(set(first['parts']) ^ set(model['parts']))} "
                                "are in one shard and not the other; rerun that shard's command")
            for part_name, part in model["parts"].items():
                if part.get("attack") != first["parts"][part_name].get("attack") or "per_example" not in part:
                    _refuse(folder, f"part {part_name!r} of {name!r} was made with other settings")
    if expected_start != reference["dataset"]["num_examples"]:
        _refuse(loaded[-1][0], f"the shards cover {expected_start} of {reference['dataset']['num_examples']} examples")
    return [results for _, results in loaded], [folder for folder, _ in loaded]


def _merge_part(parts, model_fingerprint, dataset_fingerprint):
    first = parts[0]
    total = sum(part["num_examples"] for part in parts)
    correct = decode_mask("".join(part["correct"] for part in parts))
    clean_count = sum(round(part["clean_accuracy"] * part["num_examples"]) for part in parts)
    flipped = decode_mask("".join(part["per_example"]["flipped"] for part in parts))
    merged = {key: first[key] for key in ("attack_id", "label", "attack", "p")}
    merged.update(
        num_examples=total, accuracy=float(correct.mean()), clean_accuracy=float(np.float64(clean_count) / total),
        correct=encode_mask(correct), flipped=int(flipped.sum()), ssim_distance_flipped=None,
        ssim_distance_all=None, seconds=round(sum(part["seconds"] for part in parts), 3),
    )
    if first["per_example"]["ssim_distance"] is not None:
        merged["ssim_distances"] = {}
        for name in first["per_example"]["ssim_distance"]:
            distances = np.concatenate([np.asarray(part["per_example"]["ssim_distance"][name], np.float64)
                                        for part in parts])
            merged["ssim_distances"][name] = {
                "all": float(distances.mean()),
                "flipped": float(distances[flipped].mean()) if flipped.any() else None}
        # The default convention's, under the names older results used (as an unsharded run).
        merged["ssim_distance_all"] = merged["ssim_distances"]["gaussian"]["all"]
        merged["ssim_distance_flipped"] = merged["ssim_distances"]["gaussian"]["flipped"]
    merged["key"] = part_key(model_fingerprint, dataset_fingerprint, first["attack"], first["p"])
    if "samples" in first:
        merged["samples"] = first["samples"]
    return merged


def merge_evaluations(out_dir, plots=True):
    """Combine ``OUT/shard-I-of-N/eval.json`` (all N) into ``OUT/eval.json`` and ``OUT/eval.md``.

    Returns:
        The merged results, what an unsharded evaluation of the same models,
        attacks and examples writes (``seconds`` is the shards' sum).

    Raises:
        ValueError: naming the shard when one is missing, incomplete, or
            made with other data, batch size, attacks or model weights.
    """
    from tfadv.evaluation.runner import _write_figures
    from tfadv.evaluation.tables import format_report

    out_dir = os.fspath(out_dir)
    shards, folders = _load_shards(out_dir)
    dataset = shards[0]["shard"]["dataset"]
    results = new_results(dict(dataset))
    results["plan"] = shards[0]["plan"]
    for name, first in shards[0]["models"].items():
        record = {"parts": {}, "worst_case": None}
        # The model's own record (source, fingerprint, stored set, ...) is the same in every shard.
        record.update({key: value for key, value in first.items() if key not in ("parts", "worst_case")})
        for part_name in first["parts"]:
            record["parts"][part_name] = _merge_part([s["models"][name]["parts"][part_name] for s in shards],
                                                     first["fingerprint"], dataset["fingerprint"])
        worst = [s["models"][name]["worst_case"] for s in shards]
        if all(w is not None for w in worst):
            correct = decode_mask("".join(w["correct"] for w in worst))
            record["worst_case"] = {"accuracy": float(correct.mean()), "attacks": worst[0]["attacks"],
                                    "correct": encode_mask(correct)}
        results["models"][name] = record
    samples = os.path.join(folders[0], "samples")
    if os.path.isdir(samples):
        shutil.copytree(samples, os.path.join(out_dir, "samples"), dirs_exist_ok=True)
    if plots:
        results["figures"] = _write_figures(results, out_dir)
    save_results(results, out_dir)
    report = os.path.join(out_dir, REPORT_FILE)
    atomic_write_text(report, format_report(results))
    return results
