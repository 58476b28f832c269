"""``evaluate``: models × attacks → ``eval.json``, ``eval.md`` and figures, resumable per part.

The unit of work is a *part*: one model, one attack (or none, for clean
accuracy), one masking strength p. Parts run batch by batch through the
compiled attacks; the last, partial batch is padded to the batch size (by
repeating its last example, whose extra results are dropped) so that every
attack traces exactly once per model. After each part the results are
written to ``eval.json`` and ``eval.md``, so an evaluation that fails halfway
keeps what it finished, and a rerun skips every part whose model weights,
data and attack settings are unchanged.
"""

import dataclasses
import hashlib
import json
import os
import re
import time
from collections.abc import Mapping
from typing import Optional

import keras
import numpy as np
import tensorflow as tf

from tfadv.attacks import AttackSpec
from tfadv.checks import check_image_arrays, check_integer, check_strength
from tfadv._files import atomic_path, atomic_write_text
from tfadv.data.validation import check_model_data
from tfadv.evaluation.plots import plot_accuracy_vs_eps, plot_image_grid, plot_tradeoff
from tfadv.evaluation.loading import SavedModelFunction, load_model, weights_fingerprint
from tfadv.models.io import model_display_name
from tfadv.records import environment_record
from tfadv.evaluation.results import (
    REPORT_FILE,
    data_fingerprint,
    decode_mask,
    encode_mask,
    load_results,
    new_results,
    part_id,
    part_key,
    save_results,
)
from tfadv.evaluation.tables import format_report
from tfadv.metrics import CONVENTIONS as SSIM_CONVENTIONS
from tfadv.metrics import get_convention, ssim_distance
from tfadv.models.conditioning import BoundModel, bind, call_model, is_conditioned
from tfadv.records import resume_note

DEFAULT_TRADEOFF_ATTACK = AttackSpec("pgd", eps=8 / 255, steps=10)

STORED_SET_SUMMARY_KEY = "stored_adversarial_set"
"""The key under which an offline fine-tuning run's ``summary.json`` holds the 1 − SSIM of its
stored training set (``tfadv.training.methods.STORED_SET_SUMMARY_KEY``; evaluation does not
import training)."""


def _stored_set_record(source):
    """The stored-set 1 − SSIM record of the fine-tuning run ``source`` belongs to, if any."""
    if not isinstance(source, str) or not os.path.exists(source):
        return None
    folder = source if os.path.isdir(source) else os.path.dirname(source)
    path = os.path.join(folder, "summary.json")
    if not os.path.isfile(path):
        return None
    try:
        with open(path, encoding="utf-8") as handle:
            summary = json.load(handle)
    except (OSError, json.JSONDecodeError):
        return None
    record = summary.get(STORED_SET_SUMMARY_KEY) if isinstance(summary, dict) else None
    if record is not None and record.get("attack"):
        record = dict(record, label=AttackSpec.create(record["attack"]).label)
    return record
"""The trade-off curve's attack when neither ``tradeoff_attack`` nor ``attacks`` name one."""


@dataclasses.dataclass
class _Model:
    """One model under evaluation, whatever form it came in."""

    name: str
    source: str
    handle: object  # keras.Model, SavedModelFunction, BoundModel or a callable images -> logits
    fingerprint: Optional[str]
    conditioned: bool

    def __post_init__(self):
        self.predict = tf.function(self._predictions)

    def model_fn(self, p):
        """``images -> logits`` at strength ``p`` (ignored by models without one)."""
        return bind(self.handle, p)

    def _predictions(self, images, p):
        logits = call_model(self.handle, images, p, training=False)
        # Argmax of NaN logits is class 0: a broken model would score as if it guessed.
        return tf.argmax(logits, axis=-1, output_type=tf.int64), tf.reduce_all(tf.math.is_finite(logits))


def _model_entries(models):
    if isinstance(models, (str, os.PathLike)) or not isinstance(models, (Mapping, list, tuple)):
        raise ValueError(
            f"models must be a dict name -> model (or path), or a list of paths. Received: models={models!r}"
        )
    if not isinstance(models, Mapping):
        named = {}
        for item in models:
            if not isinstance(item, (str, os.PathLike)):
                raise ValueError(f"A list of models must hold paths; use a dict to name models. Received: {item!r}")
            named[model_display_name(item)] = item
        models = named
    if not models:
        raise ValueError("models is empty: nothing to evaluate.")
    entries = []
    for name, model in models.items():
        source = "in memory"
        if isinstance(model, (str, os.PathLike)):
            source = os.path.abspath(os.fspath(model))
            model = load_model(model)
        if isinstance(model, BoundModel) and model.condition is None:
            model = model.model  # bound without a strength: the model itself
        if isinstance(model, SavedModelFunction):
            source = model.path
        if isinstance(model, (SavedModelFunction, keras.Model)):
            fingerprint, conditioned = weights_fingerprint(model), is_conditioned(model)
        elif isinstance(model, BoundModel):
            # A bound strength is part of the model's identity.
            condition = np.asarray(keras.ops.convert_to_numpy(model.condition)).tolist()
            fingerprint, conditioned = f"{weights_fingerprint(model.model)}@p={condition!r}", False
        elif callable(model):
            fingerprint, conditioned = weights_fingerprint(model), False
        else:
            raise ValueError(f"models[{name!r}] must be a model, a path or a callable. Received: {model!r}")
        entries.append(_Model(str(name), source, model, fingerprint, conditioned))
    return entries


def _specs(attacks, name):
    if isinstance(attacks, (str, Mapping, AttackSpec)):
        raise ValueError(f"{name} must be a list of attacks. Received: {name}={attacks!r}")
    return [AttackSpec.create(attack) for attack in (attacks or [])]


def _sweep_label(sweep):
    """E.g. ``L∞ PGD-100 (step ε/5, random start)``; generic when the sweep mixes settings."""
    moving = [spec for spec in sweep if spec.eps]
    if not moving or len({spec.label.split(" ε=")[0] for spec in moving}) != 1:
        return "the sweep attacks"
    head = "L∞ " + moving[0].label.split(" ε=")[0]
    if moving[0].name != "pgd":
        return head
    ratios = {round(spec.step_size / spec.eps, 9) for spec in moving}
    start = "random start" if moving[0].random_start else "no random start"
    if len(ratios) != 1:
        return f"{head} ({start})"
    ratio = ratios.pop()
    step = f"ε/{round(1 / ratio)}" if abs(1 / ratio - round(1 / ratio)) < 1e-6 else f"{ratio:g}·ε"
    return f"{head} (step {step}, {start})"


def _slug(text):
    return re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-").lower() or "x"


def _pad(array, size):
    """``array`` extended to ``size`` rows by repeating its last row."""
    missing = size - len(array)
    return array if missing == 0 else np.concatenate([array, np.repeat(array[-1:], missing, axis=0)])


class NonFiniteLogitsError(RuntimeError):
    """A model returned NaN or infinite logits; the message names the model and the attack."""


def _finite_predictions(model, images, strength, attack, p, batch_index):
    predictions, finite = model.predict(images, strength)
    if not bool(finite):
        under = "clean images" if attack is None else f"{attack.label} adversarial images"
        at = "" if p is None else f" at p={p:g}"
        raise NonFiniteLogitsError(
            f"model {model.name!r} returned NaN or infinite logits on {under}{at} (batch "
            f"{batch_index + 1}); its accuracy would be meaningless, so this part was not recorded "
            f"(parts finished before it are kept). Check the model (a diverged training run?)."
        )
    return predictions.numpy()


def _run_part(model, attack, p, x, y, batch_size, progress, jit_compile, keep, first_batch=0,
              per_example=False):
    """Clean and adversarial predictions of every example, batch by batch.

    Returns the part's record and, if ``keep`` > 0, the first ``keep``
    clean/adversarial images for the image grid. Batch ``index`` seeds its
    random starts as batch ``first_batch + index`` (a shard of a larger
    evaluation, :mod:`tfadv.evaluation.shards`); ``per_example`` adds the
    per-example ``flipped`` bits and SSIM distances a merge needs.
    """
    count = len(x)
    size = min(batch_size, count)
    model_fn = model.model_fn(p)
    strength = tf.constant(0.0 if p is None else p, tf.float32)
    clean_correct = np.zeros(count, bool)
    adversarial_correct = np.zeros(count, bool)
    flipped = np.zeros(count, bool)
    # Every convention at once: SSIM is cheap beside the attack, and the table picks one.
    distances = None if attack is None else {name: np.zeros(count) for name in SSIM_CONVENTIONS}
    samples = {"x_adv": [], "predictions": []}
    batches = -(-count // size)
    bar = keras.utils.Progbar(batches, unit_name="batch") if progress else None
    started = time.perf_counter()
    for index, start in enumerate(range(0, count, size)):
        stop = min(start + size, count)
        real = stop - start
        x_batch, y_batch = _pad(x[start:stop], size), _pad(y[start:stop], size)
        clean_predictions = _finite_predictions(model, x_batch, strength, None, p, index)[:real]
        if attack is None:
            x_adv, adversarial_predictions = x_batch[:real], clean_predictions
        else:
            x_adv_padded = attack.run(model_fn, x_batch, y_batch, batch_index=first_batch + index,
                                      jit_compile=jit_compile)
            adversarial_predictions = _finite_predictions(model, x_adv_padded, strength, attack, p,
                                                          first_batch + index)[:real]
            x_adv = np.asarray(x_adv_padded)[:real]
            for name, values in distances.items():
                values[start:stop] = ssim_distance(x[start:stop], x_adv, convention=name).per_image
        clean_correct[start:stop] = clean_predictions == y[start:stop]
        adversarial_correct[start:stop] = adversarial_predictions == y[start:stop]
        flipped[start:stop] = adversarial_predictions != clean_predictions
        if start < keep:  # the first examples, for the image grid
            take = min(keep - start, real)
            samples["x_adv"].append(x_adv[:take])
            samples["predictions"].append(adversarial_predictions[:take])
        if bar is not None:
            running = float(adversarial_correct[:stop].mean())
            bar.update(index + 1, [("accuracy", running)], finalize=index + 1 == batches)
    part = {
        "attack_id": None if attack is None else attack.id,
        "label": "Clean" if attack is None else attack.label,
        "attack": None if attack is None else attack.settings(),
        "p": p,
        "num_examples": count,
        "accuracy": float(adversarial_correct.mean()),
        "clean_accuracy": float(clean_correct.mean()),
        "correct": encode_mask(adversarial_correct),
        "flipped": int(flipped.sum()),
        "ssim_distance_flipped": None,
        "ssim_distance_all": None,
        "seconds": round(time.perf_counter() - started, 3),
    }
    if distances is not None:
        part["ssim_distances"] = {
            name: {"all": float(values.mean()),
                   "flipped": float(values[flipped].mean()) if flipped.any() else None}
            for name, values in distances.items()
        }
        # The default convention's, under the names older results used.
        part["ssim_distance_all"] = part["ssim_distances"]["gaussian"]["all"]
        part["ssim_distance_flipped"] = part["ssim_distances"]["gaussian"]["flipped"]
    if per_example:
        part["per_example"] = {
            "flipped": encode_mask(flipped),
            "ssim_distance": None if distances is None else {
                name: values.tolist() for name, values in distances.items()},
        }
    if not keep:
        return part, None
    samples = {key: np.concatenate(value) for key, value in samples.items()}
    return part, dict(x=x[:keep], y=y[:keep], **samples)


def _worst_case(record, attacks, p):
    """Per example, correct only if correct clean and under every attack: the min over attacks."""
    ids = [part_id(None, p)] + [part_id(attack.id, p) for attack in attacks]
    if len(ids) == 1 or any(i not in record["parts"] for i in ids):
        return None
    correct = np.logical_and.reduce([decode_mask(record["parts"][i]["correct"]) for i in ids])
    return {"accuracy": float(correct.mean()), "attacks": [a.id for a in attacks], "correct": encode_mask(correct)}


def _start(out_dir, dataset, force, say):
    """The stored results to continue from, or fresh ones (other data, or none stored)."""
    if out_dir is None or not os.path.exists(os.path.join(out_dir, "eval.json")):
        return new_results(dataset)
    try:
        results = load_results(out_dir)
    except ValueError:
        if not force:
            raise
        say(f"{out_dir}/eval.json is unreadable; starting afresh (force=True).")
        return new_results(dataset)
    if results.get("dataset", {}).get("fingerprint") != dataset["fingerprint"]:
        say(f"{out_dir}/eval.json holds results on other data; starting afresh.")
        return new_results(dataset)
    previous = results.get("environment", {})
    earlier = list(previous.get("earlier_sources", []))
    note = resume_note(previous.get("source"), "evaluation")
    if note:
        say(f"{out_dir}: {note}")
        earlier.append(previous.get("source"))  # parts already stored were computed by that code
    results["dataset"] = dataset
    results["environment"] = environment_record()
    if earlier:
        results["environment"]["earlier_sources"] = earlier
    return results


def evaluate(
    models,
    x,
    y,
    attacks=(),
    out_dir=None,
    *,
    sweep=(),
    p_grid=None,
    tradeoff_attack=None,
    p=0.0,
    ssim_convention="gaussian",
    dataset=None,
    batch_size=128,
    force=False,
    progress=True,
    plots=True,
    grid_examples=8,
    jit_compile=None,
    first_batch=0,
    per_example=False,
):
    """Evaluate models under attacks: the papers' tables, the worst case and the trade-off curve.

    For every model: clean top-1 accuracy; for each attack of ``attacks``,
    accuracy under it and mean 1 − SSIM(adversarial, clean) over the
    examples whose prediction it changed and over all; the per-example worst
    case (an example counts only if it is classified correctly clean and
    under every attack); accuracy under each attack of ``sweep`` (an ε
    sweep, :func:`tfadv.evaluation.pgd_sweep`); and, for conditioned models,
    clean and robust accuracy at each masking strength of ``p_grid``.

    Args:
        models: ``{name: model}`` where a model is a ``keras.Model``, a path
            (run folder, ``.keras`` file or SavedModel directory, see
            :func:`tfadv.evaluation.load_model`), a :class:`SavedModelFunction`
            or any callable images -> logits; or a list of paths (named
            after their folders or files).
        x: float images ``[N, H, W, C]`` in [0, 1].
        y: int labels ``[N]``.
        attacks: the table's attacks: :class:`AttackSpec`\\ s, names or
            mappings (``{"name": "pgd", "eps": "8/255", "steps": 10}``).
        out_dir: folder for ``eval.json``, ``eval.md``, the figures and the
            image samples; ``None`` computes in memory only (no resume).
        sweep: attacks whose accuracies form the ε-sweep table and plot.
        p_grid: masking strengths in [0, 1] of the trade-off curve
            (conditioned models only; e.g. ``[0, 0.25, 0.5, 0.75, 1]``).
        tradeoff_attack: the attack of the trade-off curve; default the first
            of ``attacks``, else PGD-10 at 8/255.
        p: the strength at which conditioned models fill the other tables.
        ssim_convention: the SSIM convention of the 1 − SSIM table
            (:data:`tfadv.metrics.CONVENTIONS`: ``"gaussian"``, the default,
            or ``"skimage_compare_ssim"``, the released code's likely call).
            Every part stores all conventions, so switching recomputes nothing.
        dataset: the data's name, recorded with the results.
        batch_size: examples per compiled attack call.
        force: recompute every part even if ``eval.json`` has it.
        progress: print a progress bar per part.
        plots: write the PNG figures (``out_dir`` only).
        grid_examples: examples in each attack's image grid (0: none).
        jit_compile: compile the attacks with XLA: ``None`` (default) where an accelerator is
            present, ``True``/``False`` to force. XLA's CPU convolutions are much slower.
        first_batch: the index of ``x``'s first batch in a larger evaluation it is a shard
            of, so that seeded random starts match (see :mod:`tfadv.evaluation.shards`).
        per_example: also store each part's per-example ``flipped`` bits and SSIM
            distances (``part["per_example"]``), which a merge of shards needs.

    Returns:
        The results dict, exactly what ``eval.json`` holds (see
        :mod:`tfadv.evaluation.results`).

    Raises:
        ValueError: bad data, models, attacks (unknown name, ε outside
            [0, 1], ...), strengths or batch size; a path that is no model.
    """
    x, y = check_image_arrays(x, y)
    attacks, sweep = _specs(attacks, "attacks"), _specs(sweep, "sweep")
    p = check_strength("p", p)
    ssim_convention = get_convention(ssim_convention).name
    p_grid = None if p_grid is None else [check_strength("p_grid", value) for value in p_grid]
    check_integer("batch_size", batch_size, minimum=1)
    check_integer("grid_examples", grid_examples, minimum=0)
    if p_grid and tradeoff_attack is None:
        tradeoff_attack = attacks[0] if attacks else DEFAULT_TRADEOFF_ATTACK
    tradeoff_attack = None if tradeoff_attack is None else AttackSpec.create(tradeoff_attack)
    entries = _model_entries(models)
    for model in entries:  # a model that cannot take these images fails here, before any attack
        if isinstance(model.handle, keras.Model):
            check_model_data(model.handle, x, y, dataset or "the data", f"model {model.name!r}")
    out_dir = None if out_dir is None else os.fspath(out_dir)

    def say(message):
        if progress:
            print(message, flush=True)

    dataset_record = {"name": dataset, "num_examples": int(len(x)), "fingerprint": data_fingerprint(x, y)}
    results = _start(out_dir, dataset_record, force, say)
    results["plan"] = {
        "attacks": [attack.id for attack in attacks],
        "sweep": [spec.id for spec in sweep],
        "sweep_eps": [spec.eps for spec in sweep],
        "sweep_label": _sweep_label(sweep) if sweep else None,
        "tradeoff_attack": None if tradeoff_attack is None or not p_grid else tradeoff_attack.id,
        "p_grid": p_grid,
        "p": p,
        "ssim_convention": ssim_convention,
    }

    def flush():
        if out_dir is not None:
            save_results(results, out_dir)
            atomic_write_text(os.path.join(out_dir, REPORT_FILE), format_report(results))

    for model in entries:
        record = results["models"].get(model.name)
        if record is None or record.get("fingerprint") != model.fingerprint:
            if record is not None:
                say(f"[{model.name}] the weights changed since the stored results: recomputing.")
            record = {"parts": {}, "worst_case": None}
        record.update(source=model.source, fingerprint=model.fingerprint, conditioned=model.conditioned,
                      stored_set=_stored_set_record(model.source))
        results["models"][model.name] = record
        main_p = p if model.conditioned else None
        jobs = [(None, main_p)] + [(attack, main_p) for attack in attacks + sweep]
        if model.conditioned and p_grid and tradeoff_attack is not None:
            jobs += [(tradeoff_attack, value) for value in p_grid]
        jobs = list({part_id(None if a is None else a.id, q): (a, q) for a, q in jobs}.items())
        for number, (name, (attack, q)) in enumerate(jobs, start=1):
            settings = None if attack is None else attack.settings()
            key = part_key(model.fingerprint, dataset_record["fingerprint"], settings, q)
            stored = record["parts"].get(name)
            label = ("Clean" if attack is None else attack.label) + ("" if q is None else f" @ p={q:g}")
            if not force and key is not None and stored is not None and stored.get("key") == key:
                say(f"[{model.name}] {number}/{len(jobs)} {label}: stored, skipped (force=True recomputes)")
                continue
            say(f"[{model.name}] {number}/{len(jobs)} {label}")
            keep = grid_examples if out_dir is not None and attack in attacks and q == main_p else 0
            part, samples = _run_part(model, attack, q, x, y, batch_size, progress, jit_compile, keep,
                                      first_batch, per_example)
            part["key"] = key
            if samples is not None:
                part["samples"] = _save_samples(out_dir, model.name, name, samples)
            record["parts"][name] = part
            flush()
        record["worst_case"] = _worst_case(record, attacks, main_p)
        flush()

    if out_dir is not None and plots:
        results["figures"] = _write_figures(results, out_dir)
        flush()
    return results


def _save_samples(out_dir, model_name, name, samples):
    folder = os.path.join(out_dir, "samples")
    os.makedirs(folder, exist_ok=True)
    relative = f"samples/{_slug(model_name)}-{hashlib.sha256(name.encode()).hexdigest()[:10]}.npz"
    with atomic_path(os.path.join(out_dir, relative), suffix=".npz") as temporary:
        np.savez_compressed(temporary, **samples)
    return relative


def _write_figures(results, out_dir):
    """Every figure the results can fill; returns their file names (relative to ``out_dir``)."""
    figures = []
    for file_name, plot in (("accuracy_vs_eps.png", plot_accuracy_vs_eps), ("tradeoff.png", plot_tradeoff)):
        if plot(results, os.path.join(out_dir, file_name)):
            figures.append(file_name)
    plan = results["plan"]
    for model_name, record in results["models"].items():
        p = plan["p"] if record.get("conditioned") else None
        for attack_id in plan["attacks"]:
            part = record["parts"].get(part_id(attack_id, p))
            if not part or "samples" not in part or not os.path.exists(os.path.join(out_dir, part["samples"])):
                continue
            with np.load(os.path.join(out_dir, part["samples"])) as samples:
                file_name = f"grid-{_slug(model_name)}-{_slug(part['label'])}.png"
                plot_image_grid(
                    samples["x"], samples["x_adv"], os.path.join(out_dir, file_name),
                    title=f"{model_name}: {part['label']}", labels=samples["y"], predictions=samples["predictions"],
                )
            figures.append(file_name)
    return figures
