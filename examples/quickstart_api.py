# %% [markdown]
# # Meta-learning a plasticity rule from Python
#
# CMA-ES tunes the `bio` plasticity rule (θ_0, θ_2, θ_9) of a small network that learns
# 5-way tasks online, one sample at a time, from scikit-learn's bundled 8×8 digits: no
# download is needed. Then the learned rule is scored on fresh tasks.
#
# Run it from the repository root, as a script (`python examples/quickstart_api.py`) or as a
# notebook (jupytext opens this percent-format file as one).

# %%
import evoplastic as ep

# %% [markdown]
# ## Train
#
# `ep.train` takes the same config file and `key=value` overrides as `evoplastic train`.
# A few generations keep this short; `configs/quickstart.yaml` runs 40.

# %%
run = ep.train("configs/quickstart.yaml", "steps=10", "final_eval_tasks=20", runs_dir="runs")
print("run directory:", run.path)
for label, value in zip(run.theta_labels, run.theta):
    print(f"{label} = {value:+.4f}")

# %% [markdown]
# `run.metrics` has one row per generation.

# %%
print(run.metrics.tail())

# %% [markdown]
# ## Evaluate
#
# The rule on 20 fresh tasks: each metric with its 95 % confidence interval over tasks, and
# the paired difference of every row to the first one (all rows see the same tasks).

# %%
ev = ep.evaluate(run, tasks=20)
print(ev.table())
