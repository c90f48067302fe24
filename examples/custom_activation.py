# %% [markdown]
# # A custom unit: sign
#
# Registers a `sign` activation from outside the package and meta-trains a plasticity rule
# for a network of such units. A sign unit has no useful gradient, so the rule is searched by
# an evolution strategy (the quickstart config uses CMA-ES), which only needs each episode's
# score.
#
# Run it from the repository root: `python examples/custom_activation.py`.

# %%
import torch

import evoplastic as ep


@ep.register_activation("sign")
def sign(z: torch.Tensor) -> torch.Tensor:
    """+1 where the drive is positive, −1 elsewhere."""
    return torch.where(z > 0, torch.ones_like(z), -torch.ones_like(z))


# %% [markdown]
# ## Train two generations
#
# `network.activation=sign` selects the unit by the name it was registered under.

# %%
run = ep.train(
    "configs/quickstart.yaml",
    "steps=2",
    "final_eval_tasks=5",
    "network.activation=sign",
    runs_dir="runs",
)
print("run directory:", run.path)
print(dict(zip(run.theta_labels, run.theta.tolist())))
print(run.metrics)
