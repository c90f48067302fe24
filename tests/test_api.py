"""The Python API as a notebook uses it: train with callbacks, load, plot, evaluate several rules, errors."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

import evoplastic as ep

QUICK = ("steps=2", "final_eval_tasks=3", "eval_every=1", "eval_tasks=2", "es.population_size=4", "task.k_shot=4",
         "task.n_query=2")


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    history = ep.callbacks.History()
    run = ep.train("configs/quickstart.yaml", *QUICK, runs_dir=tmp_path_factory.mktemp("runs"), callbacks=[history],
                   plots=False)
    return run, history


def test_importing_evoplastic_loads_no_torch():
    code = "import sys, evoplastic; evoplastic.ConfigError; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_callbacks_see_every_logged_step(quick_run):
    run, history = quick_run
    assert [r["step"] for r in history.records] == [0, 1] == run.metrics["step"].tolist()
    assert history.records[-1]["train/loss"] == run.metrics["train/loss"].iloc[-1]


def test_load_run_and_plots_as_figures(quick_run):
    run, _ = quick_run
    loaded = ep.load_run(run.path)
    assert np.array_equal(loaded.theta, run.theta) and loaded.summary["final/tasks"] == 3
    for kind in ("learning", "theta"):
        assert len(run.plot(kind).axes) >= 1
    with pytest.raises(ep.ConfigError, match="no 'nonsense' plot"):
        ep.plot(run, "nonsense")


def test_evaluate_rules_of_every_kind_on_the_same_tasks(quick_run):
    run, _ = quick_run
    ev = ep.evaluate([run, "bio:0.013,-0.054,-0.0065"], tasks=4, baselines=False,
                     overrides=["network.dims=[64,48,32,10]"])
    table = ev.table()
    assert list(table.index) == [run.path.name, "bio:0.013,-0.054,-0.0065"]
    assert table["tasks"].tolist() == [4, 4]
    a, b = (ev.per_task[label]["accuracy"] for label in table.index)
    assert table["delta_accuracy"].iloc[1] == pytest.approx(np.mean(b - a))  # paired, on the same tasks
    assert "± " in ev.to_text()


def test_errors_are_exceptions_not_exits(tmp_path):
    with pytest.raises(ep.ConfigError, match="unknown config key"):
        ep.train("configs/quickstart.yaml", "no_such_key=1", runs_dir=tmp_path)
    with pytest.raises(ep.ConfigError, match="es.population_size must be even"):
        ep.train("configs/quickstart.yaml", "es.algorithm=pgpe", "es.population_size=5", runs_dir=tmp_path)
    assert not any(tmp_path.iterdir())  # nothing written for a refused config
    with pytest.raises(ep.RunDirError, match="not a run directory"):
        ep.load_run(tmp_path)


def test_tensorboard_callback_writes_scalars(quick_run, tmp_path):
    pytest.importorskip("tensorboard", reason="the TensorBoard callback needs the optional tensorboard package")
    board = ep.callbacks.TensorBoard(tmp_path)
    for record in quick_run[0].metrics.to_dict("records"):
        board(record)
    board.close()
    assert any(p.name.startswith("events.out.tfevents") for p in tmp_path.iterdir())
