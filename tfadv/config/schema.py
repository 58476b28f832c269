"""The experiment schema: every key a YAML config may hold, with its type and default.

Strengths (ε, step sizes) are floats in pixel units of [0, 1]; a config may
write them as fractions, ``eps: 8/255``, which is how papers state them.

The names a config may use are owned by the packages that define them, not
copied here: attacks by ``tfadv.attacks`` (an attack section is validated by
building its ``AttackSpec``), normalizations by ``tfadv.models``, data splits
by ``tfadv.data``, evaluation presets by ``tfadv.evaluation`` and direction
options by ``tfadv.landscape`` (none of them reads configs). The training
method kinds are declared here (:data:`METHOD_KINDS`) and implemented by
``tfadv.training.methods``, which imports configs, never the other way.
"""
import dataclasses
from dataclasses import dataclass, field
from typing import Optional

from tfadv.attacks.spec import ATTACK_NAMES, AttackSpec
from tfadv.data.sources import SPLITS
from tfadv.evaluation.specs import PRESETS as EVAL_PRESETS
from tfadv.landscape.directions import IGNORES as LANDSCAPE_IGNORES
from tfadv.landscape.directions import MODES as LANDSCAPE_MODES
from tfadv.landscape.directions import NORMS as LANDSCAPE_NORMS
from tfadv.layers.pixel_preprocessing import PREPROCESS_MODES
from tfadv.models.norms import NORM_KINDS


@dataclass
class DataConfig:
    source: str = "digits"  # digits | cifar10 | cifar100 | path to a CIFAR archive or .npz
    data_dir: Optional[str] = None  # tensorflow-datasets data_dir
    batch_size: int = 128  # the global batch, split over all replicas (devices and workers)
    augment: bool = True  # pad-4 random crop + horizontal flip
    limit_train: Optional[int] = None  # first N training examples (quick runs)
    limit_test: Optional[int] = None  # first N test examples
    # classes of an .npz without label_names (else max label + 1, with a warning); labels
    # outside 0..num_classes-1 are refused when the data are loaded
    num_classes: Optional[int] = None


@dataclass
class ModelConfig:
    name: str = "resnet20"
    norm: str = "bn"  # bn | dual_bn | robmask
    norm_options: dict = field(default_factory=dict)  # e.g. {k: 2}
    options: dict = field(default_factory=dict)  # architecture options, e.g. {width: 16}
    init_from: Optional[str] = None  # start from this .keras model or run folder (fine-tuning)
    # the input range a brought model expects (images stay in [0, 1], ε in [0, 1] units):
    # 0..1 | 0..255 | -1..1 | torch | caffe; default: a keras.applications model's own, else 0..1
    preprocess: Optional[str] = None


@dataclass
class TrainConfig:
    epochs: int = 10
    optimizer: str = "sgd"  # sgd | adam
    learning_rate: float = 0.1
    momentum: float = 0.9  # sgd only
    nesterov: bool = False
    weight_decay: float = 5e-4
    # coupled: PyTorch's L2, g <- g + wd*w before momentum (the papers') | decoupled: Keras' / AdamW
    weight_decay_mode: str = "coupled"
    schedule: str = "cosine"  # cosine | constant | step
    step_milestones: list = field(default_factory=list)  # epochs where "step" divides the rate by 10
    warmup_epochs: int = 0
    mixed_precision: str = "float32"  # float32 | mixed_float16 | mixed_bfloat16
    jit_compile: bool = False  # XLA for the train step
    # default | mirrored (local devices) | multi_worker (MultiWorkerMirroredStrategy, one
    # `tfadv train` per machine with TF_CONFIG; data.batch_size is the global batch)
    distribute: str = "default"
    # multi_worker: seconds a worker waits for the others at a collective before it stops with
    # "lost worker ..." (None: tfadv.training.distribute.DEFAULT_WORKER_TIMEOUT, 300 s)
    worker_timeout: Optional[float] = None
    steps_per_epoch: Optional[int] = None
    verbose: int = 1  # Keras progress bar: 0 silent, 1 bar, 2 one line per epoch
    # A stronger validation attack than the training one, "name:key=value,..." (e.g.
    # "pgd:eps=8/255,steps=10"): val_strong_robust_accuracy on the first
    # validation_examples test examples every validation_every epochs (and the last).
    validation_attack: Optional[str] = None
    validation_examples: int = 1000
    validation_every: int = 1
    # robust: also keep model_best.keras, the epoch with the best robust validation accuracy
    # (validation_attack's, else the method's val_robust_accuracy); best.json names the epoch
    keep_best: Optional[str] = None


def _attack_config_fields():
    config_defaults = {"name": "pgd", "eps": 8 / 255}
    return [(spec_field.name, spec_field.type, field(default=config_defaults.get(spec_field.name)))
            for spec_field in dataclasses.fields(AttackSpec)]


AttackConfig = dataclasses.make_dataclass("AttackConfig", _attack_config_fields())
AttackConfig.__module__ = __name__
AttackConfig.__doc__ = """An attack as a config writes it: ``AttackSpec``'s settings, unresolved.

The keys are exactly :class:`tfadv.attacks.AttackSpec`'s fields; unset ones
stay ``None`` and take the attack's own defaults when the spec is built
(``AttackSpec.create(config.method.attack)``). Only the name and the radius
have config defaults: PGD at ε = 8/255. The loader validates every attack
section by building its spec.
"""


@dataclass
class MethodConfig:
    kind: str = "standard"  # standard | adversarial | finetune | advprop | robmask | bn_finetune
    attack: AttackConfig = field(default_factory=AttackConfig)
    adversarial_fraction: float = 1.0  # adversarial: share of adversarial examples per batch
    online: bool = False  # finetune: each batch with its fresh adversarial copy (2B per step) instead of a stored set
    eps_max: float = 8 / 255  # robmask, advprop with random_strength: ε = p · eps_max
    random_strength: bool = False  # advprop: ε = p · eps_max, p ~ U(0, 1) per batch, into the auxiliary BN
    aux_eps: list = field(default_factory=list)  # advprop: one auxiliary BN per strength, e.g. [4/255, 8/255]
    pgd_steps: int = 7  # robmask: PGD-m
    learning_rate_multipliers: dict = field(default_factory=dict)  # robmask: {basis, shift, network}
    robust_model: Optional[str] = None  # bn_finetune: the adversarially trained model it starts from
    freeze_statistics: bool = False  # bn_finetune: keep BN moving statistics fixed (default: updated, as the paper)
    train_on: str = "clean"  # bn_finetune: clean | adversarial (the attack's examples; paper 2's Table 1)


@dataclass
class EvalConfig:
    attacks: list = field(default_factory=list)  # list of AttackConfig mappings; empty: the preset
    preset: str = "paper1_table1"  # a name of tfadv.evaluation.PRESETS
    eps_sweep: Optional[list] = None  # None: paper 2's grid, tfadv.evaluation.specs.PAPER2_EPS
    p_grid: list = field(default_factory=lambda: [0.0, 0.25, 0.5, 0.75, 1.0])
    limit: Optional[int] = None
    batch_size: int = 128


@dataclass
class LandscapeConfig:
    dim: int = 2
    grid: str = "-1:1:51"
    y_grid: Optional[str] = None  # default: same as grid
    examples: int = 5000
    split: str = "train"
    norm: str = "filter"  # filter | layer | none
    ignore: str = "biasbn"  # biasbn | none
    mode: str = "weights"  # weights | states
    seed: int = 0
    attack: Optional[AttackConfig] = None  # adversarial loss surface
    hessian_top_k: int = 1
    hutchinson_samples: int = 0


@dataclass
class ExportConfig:
    out: Optional[str] = None  # default: export/<run name>
    default_p: float = 0.0
    uint8: bool = False


@dataclass
class TuneConfig:
    tuner: str = "random"  # random | bayesian | hyperband
    max_trials: int = 4
    epochs: int = 2
    objective: str = "val_robust_accuracy"  # val_accuracy | val_robust_accuracy | weighted
    clean_weight: float = 0.5  # weighted: w·clean + (1−w)·robust
    eps_max_min: float = 4.0  # in units of 1/255
    eps_max_max: float = 12.0
    eps_max_step: float = 1.0
    tune_learning_rate: bool = False
    learning_rate_min: float = 1e-3
    learning_rate_max: float = 0.3
    tune_k: bool = False
    k_choices: list = field(default_factory=lambda: [2, 3, 4])
    retrain_best: bool = False  # retrain the best ε_max from scratch instead of keeping its model


@dataclass
class ExperimentConfig:
    name: str = "experiment"
    seed: int = 0
    output_dir: str = "runs"
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    method: MethodConfig = field(default_factory=MethodConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    landscape: LandscapeConfig = field(default_factory=LandscapeConfig)
    export: ExportConfig = field(default_factory=ExportConfig)
    tune: TuneConfig = field(default_factory=TuneConfig)


METHOD_KINDS = ("standard", "adversarial", "finetune", "advprop", "robmask", "bn_finetune")
"""The vocabulary of ``method.kind``. ``tfadv.training.methods.METHODS_BY_KIND``
implements each (and refuses to import if the two differ); declared here, at
the bottom of the layers, so configs never import training."""


# Closed vocabularies, checked after types: (section path, key) -> allowed values, or a
# function returning them (read when a config is validated). Each is its owner's
# own tuple; an attack's settings (update rule, stAdv's flow-bound unit, ...) are
# checked by building its AttackSpec, not here.
CHOICES = {
    ("model", "norm"): NORM_KINDS,
    ("model", "preprocess"): PREPROCESS_MODES,
    ("train", "optimizer"): ("sgd", "adam"),
    ("train", "schedule"): ("cosine", "constant", "step"),
    ("train", "mixed_precision"): ("float32", "mixed_float16", "mixed_bfloat16"),
    ("train", "distribute"): ("default", "mirrored", "multi_worker"),
    ("train", "weight_decay_mode"): ("coupled", "decoupled"),
    ("train", "keep_best"): ("robust",),
    ("method", "kind"): METHOD_KINDS,
    ("method", "train_on"): ("clean", "adversarial"),
    ("attack", "name"): ATTACK_NAMES,
    ("eval", "preset"): EVAL_PRESETS,  # the names of tfadv.evaluation.specs.PRESETS
    ("landscape", "norm"): LANDSCAPE_NORMS,
    ("landscape", "ignore"): LANDSCAPE_IGNORES,
    ("landscape", "mode"): LANDSCAPE_MODES,
    ("landscape", "split"): SPLITS,
    ("tune", "tuner"): ("random", "bayesian", "hyperband"),
    ("tune", "objective"): ("val_accuracy", "val_robust_accuracy", "weighted"),
}

# Numeric ranges: (section, key) -> (low, high), inclusive; None is open.
RANGES = {
    ("attack", "eps"): (0.0, 1.0),
    ("attack", "steps"): (1, None),
    ("attack", "restarts"): (1, None),
    ("method", "eps_max"): (1e-12, 1.0),
    ("method", "adversarial_fraction"): (0.0, 1.0),
    ("method", "pgd_steps"): (1, None),
    ("data", "batch_size"): (1, None),
    ("data", "num_classes"): (2, None),
    ("train", "epochs"): (0, None),
    ("train", "worker_timeout"): (1e-3, None),
    ("train", "validation_examples"): (1, None),
    ("train", "validation_every"): (1, None),
    ("train", "learning_rate"): (1e-12, None),
    ("train", "weight_decay"): (0.0, None),
    ("eval", "batch_size"): (1, None),
    ("export", "default_p"): (0.0, 1.0),
    ("tune", "clean_weight"): (0.0, 1.0),
    ("tune", "max_trials"): (1, None),
}
