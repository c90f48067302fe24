"""A tiny random search on θ improves the probe loss over initial_theta on a fixed set of tasks."""

import torch

from evoplastic.families.kcap.config import KcapConfig
from evoplastic.families.kcap.data import sample_tasks
from evoplastic.families.kcap.metrics import score
from evoplastic.families.kcap.network import init_state
from evoplastic.families.kcap.rules import initial_theta, theta_scales
from evoplastic.seeding import make_generator


def test_random_search_improves_the_probe_loss():
    """Deterministic (fixed seeds): 4 generations of 8 candidates in θ's scaled coordinates."""
    cfg = KcapConfig(n_hidden=16, cap=3, n_unlabelled=40, n_query=20)
    n_tasks = 6
    tasks = sample_tasks(cfg, n_tasks, make_generator(0, "t")).to("cpu", torch.float64)
    init = init_state(cfg, n_tasks, make_generator(0, "i"), torch.float64)

    def loss(candidates):
        s = score(candidates.repeat_interleave(n_tasks, 0), tasks, init, cfg, with_emd=False)
        return s["probe_loss"].view(len(candidates), n_tasks).mean(1)

    center, scales = initial_theta(cfg, torch.float64), theta_scales(cfg, torch.float64)
    start = best = loss(center[None]).item()
    g = make_generator(0, "search")
    for _ in range(4):
        candidates = center + 2 * scales * torch.randn(8, len(center), generator=g, dtype=torch.float64)
        values = loss(candidates)
        i = int(values.argmin())
        if values[i] < best:
            best, center = values[i].item(), candidates[i]
    assert best < 0.98 * start
