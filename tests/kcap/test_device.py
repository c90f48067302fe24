"""CUDA gives the CPU's results (skipped without a GPU): tie rule, learning, scores, look-ahead gradient."""

import dataclasses

import pytest
import torch

from evoplastic.families.kcap.baselines import lookahead_loss
from evoplastic.families.kcap.config import KcapConfig
from evoplastic.families.kcap.data import sample_tasks
from evoplastic.families.kcap.metrics import score
from evoplastic.families.kcap.network import init_state, kcap
from evoplastic.families.kcap.rules import initial_theta
from evoplastic.seeding import make_generator

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")

TINY = KcapConfig(n_features=5, n_hidden=16, cap=3, recurrent_steps=2, n_unlabelled=20, labels_per_class=3,
                  n_query=10, lookahead_points=4)


def test_kcap_ties_on_cuda():
    x = torch.tensor([[0.0, 3.0, 1.0, 3.0, 1.0, 1.0]] * 4, device="cuda")
    assert kcap(x, 3).tolist() == [[0, 1, 1, 1, 0, 0]] * 4
    assert kcap(torch.zeros(2, 300, device="cuda"), 7)[:, :7].sum().item() == 14


@pytest.mark.parametrize("rule", ["pool", "mlp"])
def test_cuda_matches_cpu(rule):
    cfg = dataclasses.replace(TINY, rule=rule)
    tasks = sample_tasks(cfg, 2, make_generator(0, "tasks")).to("cpu", torch.float64)
    init = init_state(cfg, 2, make_generator(0, "init"), torch.float64)
    theta = initial_theta(cfg, torch.float64).repeat(4, 1)
    cpu = score(theta, tasks, init, cfg)
    gpu = score(theta.cuda(), tasks.to("cuda", torch.float64), init.map(lambda m: m.cuda()), cfg)
    for key, value in cpu.items():
        assert gpu[key].device.type == "cuda"
        assert torch.allclose(gpu[key].cpu(), value, atol=1e-8), key
    leaf = theta[:1].cuda().requires_grad_()
    lookahead_loss(leaf, tasks.to("cuda", torch.float64), init.map(lambda m: m.cuda()), cfg).backward()
    assert torch.isfinite(leaf.grad).all()
