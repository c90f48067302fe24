# %% [markdown]
# # Plasticity rules for spiking networks, from Python
#
# CMA-ES searches a rule for a small network of leaky integrate-and-fire neurons that learns
# 5-way tasks of scikit-learn's 8×8 digits online (no download): e-prop's eligibility term, the
# paper's err_err and Oja terms and two STDP pair terms. ES scores every candidate with exact
# spikes; then Adam tunes the same rule through surrogate gradients, and both rules are scored
# beside e-prop on the same fresh tasks.
#
# Run it from the repository root, as a script (`python examples/spiking_rules.py`) or as a
# notebook (jupytext opens this percent-format file as one).

# %%
import evoplastic as ep

# %% [markdown]
# ## Evolution strategies with exact spikes
#
# `configs/spiking/quickstart.yaml` runs 25 generations; a few keep this short.

# %%
es = ep.train("configs/spiking/quickstart.yaml", "name=spiking_es", "steps=6", "final_eval_tasks=20",
              "final_baselines=false", runs_dir="runs")
print("run directory:", es.path)
print({label: round(float(v), 5) for label, v in zip(es.theta_labels, es.theta)})

# %% [markdown]
# ## Adam with surrogate gradients
#
# The same network and terms; the spike's forward value stays the exact step, its derivative is
# the surrogate (fast sigmoid, slope 5, scaled by 0.3). The run record says which gradient it used.

# %%
adam = ep.train("configs/spiking/quickstart.yaml", "name=spiking_adam", "outer=adam", "steps=6", "adam.lr=0.1",
                "final_eval_tasks=20", "final_baselines=false", runs_dir="runs")
print("run directory:", adam.path)
print({label: round(float(v), 5) for label, v in zip(adam.theta_labels, adam.theta)})

# %% [markdown]
# ## Both rules beside e-prop, on the same fresh tasks
#
# Every row sees the same tasks and initial weights: the table gives each rule's accuracy with its
# 95 % confidence interval and the paired difference to the first row.

# %%
ev = ep.evaluate([es, adam], tasks=20)
print(ev.to_text())
