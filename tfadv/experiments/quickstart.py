"""The quickstart profile: both papers, shortened, on the embedded digits, in minutes on 2 CPU cores.

Paper 1, shortened: a clean CIFAR ResNet-20, fine-tuned on 1:1 clean + FGSM,
PGD or stAdv images (one stored adversarial example per training image).
Paper 2, shortened: AdvProp (dual BN) and RobMask (ε-conditioned BN).
Then the Table 1 / Table 2 / ε-sweep evaluations and RobMask's trade-off
curve, 2-D loss landscapes of the four paper-1 models with their Hessian
sharpness, and a SavedModel export of RobMask queried at p = 0 and p = 1.
"""
import os

from tfadv.experiments.paper1 import Paper1Plan
from tfadv.experiments.paper2 import Paper2Plan
from tfadv.experiments.pipeline import Experiment, ExportPlan, LandscapePlan

PAPER1_ROLES = ("clean", "fgsm", "pgd", "stadv")
PAPER2_ROLES = ("clean", "advprop", "robmask")


def quickstart_configs(data="digits", out="runs", epochs=6):
    """The quickstart's runs as ``ExperimentConfig``s, by role, all in ``<out>/quickstart``."""
    from tfadv.config import load_config

    root = os.path.join(out, "quickstart")

    def config(name, **sections):
        tree = {"name": name, "output_dir": root,
                "data": {"source": data, "batch_size": 64, "augment": False},
                "train": {"learning_rate": 0.05, "verbose": 2}}
        for key, value in sections.items():
            tree[key] = {**tree.get(key, {}), **value}
        return load_config(data=tree)

    clean_dir = os.path.join(root, "clean")
    finetune_train = {"epochs": 1, "learning_rate": 0.01}  # one pass over the 2N clean + adversarial set
    return {
        "clean": config("clean", model={"name": "resnet20"}, train={"epochs": epochs}),
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


def quickstart_experiment(data="digits", out="runs", export_dir="export", epochs=6, eval_limit=200):
    """The quickstart as an :class:`Experiment`; its report is ``<out>/quickstart/report.md``."""
    from tfadv.evaluation import pgd_sweep

    root = os.path.join(out, "quickstart")
    configs = quickstart_configs(data, out, epochs)
    names = {role: config.name for role, config in configs.items()}  # run folder = evaluation name
    return Experiment(
        tag="quickstart",
        title="tfadv quickstart",
        out_dir=root,
        runs=configs,
        data_name=data,
        eval_limit=eval_limit,
        plans=[
            Paper1Plan(
                models={names[role]: role for role in PAPER1_ROLES},
                attacks=[{"name": "fgsm", "eps": "8/255"}, {"name": "pgd", "eps": "1/255", "steps": 10},
                         {"name": "stadv", "steps": 20, "learning_rate": 0.05}],
                eval_dir=os.path.join(root, "eval-paper1")),
            Paper2Plan(
                models={names[role]: role for role in PAPER2_ROLES},
                sweep=pgd_sweep(steps=10), p_grid=[0.0, 0.25, 0.5, 0.75, 1.0],
                tradeoff_attack={"name": "pgd", "eps": "8/255", "steps": 10, "step_size": "2/255"},
                eval_dir=os.path.join(root, "eval-paper2")),
        ],
        landscape=LandscapePlan(
            models={names[role]: role for role in PAPER1_ROLES}, out_dir=os.path.join(root, "landscapes"),
            grid="-1:1:11", examples=128, batch_size=128, hessian_examples=128, hessian_max_iterations=10,
            hutchinson_samples=2),
        export=ExportPlan(role="robmask", out_dir=os.path.join(export_dir, "quickstart-robmask")),
        intro=[f"Dataset `{data}`; CIFAR ResNet-20 models, both papers' protocols shortened (few epochs, "
               "few attack steps): this shows that the pipeline works, not what the papers measure."],
        summary={"data": data},
    )
