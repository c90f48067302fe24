"""Extending evoplastic from outside the package: a family, an activation and a dataset registered here.

The family below (a linear regressor learning online by a two-term rule) is named nowhere under
evoplastic/: it is trained by ES through evoplastic.train, resumed, evaluated and compared.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
import torch

import evoplastic as ep
from evoplastic.config import ExperimentConfig
from evoplastic.core.evaluation import (
    EvaluateSettings,
    Evaluation,
    Metric,
    RuleToScore,
    ScoredRule,
    UnknownSettingError,
)
from evoplastic.core.family import ThetaSpace
from evoplastic.seeding import make_generator

PACKAGE = Path(ep.__file__).parent
QUICK = ("steps=2", "final_eval_tasks=5", "eval_every=0", "es.population_size=4", "task.k_shot=5",
         "task.n_query=3")


# --- a third family, defined entirely in this module -------------------------------------------------------

@dataclass(frozen=True)
class DeltaConfig:
    """A regression task: y = w*·x + noise; the learner sees n_samples pairs once, online."""

    n_features: int = 4
    n_samples: int = 12
    n_query: int = 8


@dataclass(frozen=True)
class DeltaExperimentConfig(ExperimentConfig):
    family: str = "delta_rule_test"
    delta: DeltaConfig = field(default_factory=DeltaConfig)


@dataclass
class DeltaBatch:
    x: torch.Tensor  # (T, S + Q, n)
    y: torch.Tensor  # (T, S + Q)

    @property
    def n_tasks(self) -> int:
        return len(self.x)

    def subset(self, part: slice) -> DeltaBatch:
        return DeltaBatch(self.x[part].clone(), self.y[part].clone())


class DeltaProblem:
    """Δw = θ_0 (y - w·x) x - θ_1 w per sample; loss = query MSE, accuracy = share of query errors below 0.5."""

    dtype = torch.float64

    def __init__(self, cfg: DeltaExperimentConfig, device: torch.device | None = None) -> None:
        self.cfg, self.device = cfg, torch.device("cpu")

    def draw(self, step: int | str, purpose: str, n_tasks: int) -> DeltaBatch:
        d = self.cfg.delta
        gen = make_generator(self.cfg.seed, purpose, "delta", step)
        w_star = torch.randn(n_tasks, d.n_features, generator=gen, dtype=self.dtype)
        x = torch.randn(n_tasks, d.n_samples + d.n_query, d.n_features, generator=gen, dtype=self.dtype)
        noise = 0.1 * torch.randn(n_tasks, d.n_samples + d.n_query, generator=gen, dtype=self.dtype)
        return DeltaBatch(x, torch.einsum("tsn,tn->ts", x, w_star) + noise)

    def scores(self, theta: torch.Tensor, batch: DeltaBatch, chunk: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        s = self.cfg.delta.n_samples
        theta = theta.to(self.dtype)
        w = torch.zeros(len(theta), batch.n_tasks, batch.x.shape[-1], dtype=self.dtype)
        for i in range(s):  # online: one sample at a time, every member and task at once
            x, y = batch.x[:, i], batch.y[:, i]
            error = y - (w * x).sum(-1)
            w = w + theta[:, 0, None, None] * error[..., None] * x - theta[:, 1, None, None] * w
        residual = batch.y[:, s:] - torch.einsum("ptn,tqn->ptq", w, batch.x[:, s:])
        return (residual**2).mean(-1), (residual.abs() < 0.5).to(self.dtype).mean(-1)

    def diagnostics(self, theta: torch.Tensor, step: int | str) -> dict:
        return {}

    def run_notes(self) -> dict:
        return {"delta_rule_test": "plain loop"}


class DeltaFamily:
    name = "delta_rule_test"
    config_class = DeltaExperimentConfig
    metrics = (Metric("accuracy", True, percent=True), Metric("mse", False, digits=4))

    @staticmethod
    def validate_config(cfg: DeltaExperimentConfig) -> None:
        if cfg.delta.n_samples < 1:
            raise ValueError(f"delta.n_samples must be ≥ 1, got {cfg.delta.n_samples}")

    def theta_space(self, cfg: DeltaExperimentConfig) -> ThetaSpace:
        return ThetaSpace(initial=cfg.rule.theta_init or (0.01, 0.0), scales=(0.1, 0.01), labels=("delta", "decay"))

    def build_problem(self, cfg: DeltaExperimentConfig, device: torch.device | None = None) -> DeltaProblem:
        return DeltaProblem(cfg, device)

    def describe(self, cfg: DeltaExperimentConfig) -> dict:
        return {"family": self.name, "rule": "delta + decay"}

    def evaluate(self, cfg, rules: list[RuleToScore], settings: EvaluateSettings) -> Evaluation:
        problem = DeltaProblem(cfg)
        batch = problem.draw(settings.seed, "evaluate", settings.tasks)
        rows = rules + ([RuleToScore("no learning", (0.0, 0.0), cfg)] if settings.baselines else [])
        scored = []
        for rule in rows:
            mse, acc = problem.scores(torch.tensor([rule.theta]), batch)
            scored.append(ScoredRule(rule.label, {"accuracy": acc[0].numpy(), "mse": mse[0].numpy()}, rule.theta))
        return Evaluation(self.metrics, scored, f"{settings.tasks} regression tasks")

    def rule_from_run(self, label: str, cfg, theta: list[float]) -> RuleToScore:
        return RuleToScore(label, tuple(theta), cfg)

    def parse_rule(self, text: str) -> RuleToScore | None:
        name, _, values = text.partition(":")
        if name != "delta":
            return None
        return RuleToScore(text, tuple(float(v) for v in values.split(",")), DeltaExperimentConfig())


ep.register_family(DeltaFamily(), replace=True)

DELTA = {"family": "delta_rule_test", "steps": 4, "eval_every": 2, "eval_tasks": 4, "final_eval_tasks": 6,
         "tasks_per_step": 3, "es": {"population_size": 6}}


def test_no_file_of_the_package_names_the_test_family():
    assert not [p for p in PACKAGE.rglob("*.py") if "delta_rule_test" in p.read_text()]


def test_a_family_registered_from_outside_trains_resumes_evaluates_and_compares(tmp_path):
    run = ep.train(DELTA, runs_dir=tmp_path / "a", plots=False)
    assert run.theta.shape == (2,) and run.theta_labels == ("delta", "decay")
    assert len(run.metrics) == 4 and run.summary["final/tasks"] == 6

    short = ep.train(DELTA, "steps=2", runs_dir=tmp_path / "b", plots=False)
    resumed = ep.resume(short.path, "steps=4", plots=False)
    assert np.array_equal(resumed.theta, run.theta)  # resume continues bit for bit
    assert ep.load_run(short.path).config.steps == 4  # the override is saved with the run

    table = ep.evaluate(run, tasks=7).table()
    assert list(table.index) == [run.path.name, "no learning"] and (table["tasks"] == 7).all()
    assert table.loc["no learning", "delta_accuracy"] == pytest.approx(
        table.loc["no learning", "accuracy"] - table.loc[run.path.name, "accuracy"])
    assert ep.evaluate("delta:0.05,0.0", tasks=3, baselines=False).rows[0].theta == (0.05, 0.0)

    report = ep.compare([run, short.path], out=tmp_path / "report", eval_tasks=4, baselines=True)
    assert report.path.is_file() and "no learning" in report.text and "4 regression tasks" in report.text


def test_the_evaluate_command_treats_an_outside_family_as_the_built_in_ones(tmp_path, capsys):
    """Its rule text is read by its own parser, its table prints in the grouped form the built-in families get,
    with its own description, and the command's task options reach its evaluate (which may refuse them)."""
    from evoplastic.analysis.evaluate import main as evaluate_main

    seen = []
    from evoplastic.families import get_family

    family = get_family("delta_rule_test")
    original = family.evaluate

    def spy(cfg, rules, settings):
        seen.append(settings.options)
        if "dataset" in settings.options:
            raise UnknownSettingError("unknown evaluation setting(s) dataset for the delta_rule_test family")
        return original(cfg, rules, settings)

    family.evaluate = spy
    try:
        argv = ["delta:0.05,0.0", "--tasks", "3", "--k-shot", "4", "--json", str(tmp_path / "e.json")]
        assert evaluate_main(argv) == 0
        out = capsys.readouterr().out
        assert out.startswith("3 regression tasks") and "**all** (3 tasks)" in out and "| no learning |" in out
        assert seen == [{"k_shot": 4}]
        data = json.loads((tmp_path / "e.json").read_text())
        assert data["family"] == "delta_rule_test" and [r["label"] for r in data["rows"]] == ["delta:0.05,0.0",
                                                                                            "no learning"]
        assert evaluate_main(["delta:0.05,0.0", "--dataset", "digits"]) == 2
        assert "dataset for the delta_rule_test family" in capsys.readouterr().err
    finally:
        del family.evaluate
    assert family.evaluate == original


def test_keys_of_another_family_name_it():
    with pytest.raises(ep.ConfigError, match="rule.terms belongs to family paper"):
        ep.make_config({**DELTA, "rule": {"terms": "bio"}})
    with pytest.raises(ep.ConfigError, match="delta belongs to family delta_rule_test"):
        ep.make_config("configs/quickstart.yaml", ["delta.n_samples=3"])
    with pytest.raises(ep.ConfigError, match="delta.n_samples must be ≥ 1"):
        ep.make_config(DELTA, ["delta.n_samples=0"])


# --- an activation, from a decorator and as 'module:attr' ---------------------------------------------------

def bent_identity(z: torch.Tensor) -> torch.Tensor:
    """A smooth unit for the module:attr test: (sqrt(z² + 1) - 1)/2 + z, σ' through y is not simple: none given."""
    return (torch.sqrt(z * z + 1) - 1) / 2 + z


def test_the_readme_lines_and_a_sign_unit(tmp_path):
    @ep.register_activation("sign", replace=True)
    def sign(z: torch.Tensor) -> torch.Tensor:
        return torch.sign(z)

    run = ep.train("configs/quickstart.yaml", "steps=2", "final_eval_tasks=5", runs_dir=tmp_path, plots=False)
    assert run.theta.shape == (3,)
    assert len(run.metrics) == 2
    ev = ep.evaluate(run, tasks=5)
    assert list(ev.table().index) == [run.path.name, "fa baseline", "bp baseline"]

    signed = ep.train("configs/quickstart.yaml", "network.activation=sign", *QUICK, runs_dir=tmp_path, plots=False)
    assert signed.config.network.activation == "sign" and np.isfinite(signed.theta).all()
    assert ep.evaluate(signed, tasks=3, baselines=False).rows[0].per_task["accuracy"].shape == (3,)
    resumed = ep.resume(signed.path, "steps=3", plots=False)
    assert len(resumed.metrics) == 3
    with pytest.raises(ep.ConfigError, match="registered without derivative_from_output"):
        ep.make_config("configs/quickstart.yaml", ["network.activation=sign", "outer=adam"])
    with pytest.raises(ep.ConfigError, match="plug-in: set es.compile=false"):
        ep.make_config("configs/quickstart.yaml", ["network.activation=sign", "es.compile=true"])


def test_an_activation_named_module_attr_is_recorded_and_reimported(tmp_path):
    name = f"{__name__}:bent_identity"
    run = ep.train("configs/quickstart.yaml", f"network.activation={name}", *QUICK, runs_dir=tmp_path, plots=False)
    meta = (run.path / "meta.json").read_text()
    assert name in meta
    assert ep.load_run(run.path).config.network.activation == name
    with pytest.raises(ep.ConfigError, match="cannot import 'no_such_lab.units:sign'"):
        ep.make_config("configs/quickstart.yaml", ["network.activation=no_such_lab.units:sign"])


@ep.register_activation("stochastic_binary", stochastic=True, replace=True)
def stochastic_binary(z: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Fires with probability sigmoid(z), drawing from the episode's generator."""
    return (torch.rand(z.shape, generator=generator, dtype=z.dtype, device=z.device) < torch.sigmoid(z)).to(z.dtype)


def test_a_stochastic_unit_is_seeded_by_the_run(tmp_path):
    args = ("configs/quickstart.yaml", "network.activation=stochastic_binary", "eval_every=1", "eval_tasks=3",
            *QUICK[:1], "final_eval_tasks=4", "es.population_size=4", "task.k_shot=5", "task.n_query=3")
    first, again = (ep.train(*args, runs_dir=tmp_path / d, plots=False) for d in ("a", "b"))
    assert np.array_equal(first.theta, again.theta)
    assert first.metrics["train/loss"].tolist() == again.metrics["train/loss"].tolist()
    other = ep.train(*args, "seed=1", runs_dir=tmp_path / "c", plots=False)
    assert other.metrics["train/loss"].tolist() != first.metrics["train/loss"].tolist()
    short = ep.train(*args, "steps=1", runs_dir=tmp_path / "d", plots=False)
    assert np.array_equal(ep.resume(short.path, "steps=2", plots=False).theta, first.theta)


# --- a dataset ----------------------------------------------------------------------------------------------

def test_a_registered_dataset_trains_and_is_validated(tmp_path):
    @ep.register_dataset("stripes", replace=True)
    def stripes(split: str, data_dir: str):
        gen = np.random.default_rng(0 if split == "train" else 1)
        labels = np.repeat(np.arange(6), 40)
        images = gen.random((len(labels), 64)) * 0.2
        for k in range(6):
            images[labels == k, k * 10:(k + 1) * 10] += 0.8
        return images.clip(0, 1).astype(np.float32), labels

    run = ep.train("configs/quickstart.yaml", "task.dataset=stripes", *QUICK, runs_dir=tmp_path, plots=False)
    assert run.config.task.dataset == "stripes" and 0 <= run.summary["final/accuracy"] <= 1

    @ep.register_dataset("broken", replace=True)
    def broken(split: str, data_dir: str):
        return np.full((10, 64), np.nan, dtype=np.float32), np.arange(10) % 2

    with pytest.raises((ValueError, OSError), match="broken.*NaN"):
        ep.train("configs/quickstart.yaml", "task.dataset=broken", *QUICK, runs_dir=tmp_path / "x", plots=False)
    assert not (tmp_path / "x").exists() or not any((tmp_path / "x").iterdir())  # nothing written


# --- the command line with a plug-in, and MPI -------------------------------------------------------------

def _cli(*args: str, mpi: int = 0, cwd: Path) -> subprocess.CompletedProcess:
    from evoplastic.bench.mpi import child_env, mpiexec_command

    env = child_env(1)
    env["PYTHONPATH"] = f"{Path(__file__).parent}:{PACKAGE.parent}"
    prefix = [*mpiexec_command(mpi)] if mpi else []
    return subprocess.run([*prefix, sys.executable, "-m", "evoplastic", *args], capture_output=True, text=True,
                          env=env, cwd=cwd, timeout=300)


def test_mpi_two_ranks_equal_one_process_with_a_plugin_activation(tmp_path):
    from evoplastic.bench.mpi import find_mpiexec

    if find_mpiexec() is None:
        pytest.skip("no mpiexec next to sys.executable or on PATH (pip install mpich)")
    config = str(PACKAGE.parent / "configs" / "quickstart.yaml")
    args = ["train", config, "network.activation=test_plugins:bent_identity", *QUICK, "--no-progress"]
    one = _cli(*args, "--runs-dir", str(tmp_path / "one"), cwd=tmp_path)
    two = _cli(*args, "--runs-dir", str(tmp_path / "two"), mpi=2, cwd=tmp_path)
    assert one.returncode == 0, one.stderr
    assert two.returncode == 0, two.stderr
    theta = [ep.load_run(next((tmp_path / d).iterdir())).theta for d in ("one", "two")]
    assert np.array_equal(*theta)


# --- a plasticity term ------------------------------------------------------------------------------------

@ep.register_term("hebb_copy", scale=1e-2, formula="e_l y_{l-1}^T", replace=True)
def hebb_copy(ctx):
    """The paper's T0 written as a plug-in: one factor pair (e_ℓ, y_{ℓ-1})."""
    return [(ctx.post_error, ctx.pre)]


def test_a_plugin_term_computes_what_the_builtin_term_computes():
    from evoplastic.families.paper.inner import run_episode
    from evoplastic.families.paper.network import NetworkConfig, init_network, make_activation
    from evoplastic.families.paper.space import RuleSpace
    from evoplastic.families.paper.tasks import TaskBatch

    gen = torch.Generator().manual_seed(0)
    dims, n_tasks, steps = (12, 9, 7, 5), 3, 6
    tasks = TaskBatch(torch.rand(n_tasks, steps, 12, generator=gen, dtype=torch.float64),
                      torch.randint(0, 5, (n_tasks, steps), generator=gen),
                      torch.rand(n_tasks, 4, 12, generator=gen, dtype=torch.float64),
                      torch.randint(0, 5, (n_tasks, 4), generator=gen), torch.arange(5).repeat(n_tasks, 1))
    init = init_network(NetworkConfig(dims=dims), n_tasks, gen, torch.float64)
    act = make_activation(NetworkConfig(dims=dims))
    builtin = run_episode(torch.tensor([[0.3, -0.05]] * n_tasks, dtype=torch.float64),
                          RuleSpace((0, 2), 3), tasks, init, act)
    plugin = run_episode(torch.tensor([[-0.05, 0.3]] * n_tasks, dtype=torch.float64),
                         RuleSpace((2,), 3, plugin_terms=("hebb_copy",)), tasks, init, act)
    assert torch.allclose(plugin.loss, builtin.loss, rtol=1e-12, atol=1e-12)
    for a, b in zip(plugin.weights, builtin.weights):
        assert torch.allclose(a, b, rtol=1e-12, atol=1e-12)
    other = run_episode(torch.tensor([[-0.05, 0.1]] * n_tasks, dtype=torch.float64),
                        RuleSpace((2,), 3, plugin_terms=("hebb_copy",)), tasks, init, act)
    assert not torch.allclose(other.loss, builtin.loss)  # the coefficient really reaches the update


def test_a_plugin_term_trains_resumes_and_evaluates(tmp_path):
    run = ep.train("configs/quickstart.yaml", "rule.plugin_terms=[hebb_copy]", *QUICK, runs_dir=tmp_path,
                   plots=False)
    assert run.theta_labels == ("θ_0", "θ_2", "θ_9", "θ_hebb_copy")
    assert "plasticity term:hebb_copy" in (run.path / "meta.json").read_text()
    resumed = ep.resume(run.path, "steps=3", plots=False)
    assert len(resumed.metrics) == 3 and resumed.theta.shape == (4,)
    table = ep.evaluate(resumed, tasks=3).table()
    assert len(table) == 3 and np.isfinite(table["accuracy"]).all()
    adam = ep.train("configs/quickstart.yaml", "rule.plugin_terms=[hebb_copy]", "outer=adam", "steps=1",
                    "final_eval_tasks=2", "eval_every=0", "task.k_shot=3", "task.n_query=2", runs_dir=tmp_path,
                    plots=False)
    assert adam.theta[-1] != 0.0  # the meta-gradient reaches the plug-in coefficient
    with pytest.raises(ep.ConfigError, match="es.compile=false"):
        ep.make_config("configs/quickstart.yaml", ["rule.plugin_terms=[hebb_copy]", "es.compile=true"])
    with pytest.raises(ep.ConfigError, match="rule.plugin_terms.*no_such_term"):
        ep.make_config("configs/quickstart.yaml", ["rule.plugin_terms=[no_such_term]"])
