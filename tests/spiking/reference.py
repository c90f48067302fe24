"""A plain reference of the spiking inner loop: one member, one time step, one neuron vector at a time, float64.

Written from the model's equations without the family's code (no low-rank factors, no batching):
dense per-step outer products accumulate each sample's eligibilities, and the surrogate
derivatives are written out again here.
"""

from __future__ import annotations

import math

import torch


def psi_of(u: torch.Tensor, name: str, k: float, gain: float) -> torch.Tensor:
    """γ·F'(u) for the four surrogates, from their formulas."""
    if name == "fast_sigmoid":
        d = 0.5 * k / (1 + k * u.abs()) ** 2
    elif name == "sigmoid":
        d = k * torch.exp(-k * u) / (1 + torch.exp(-k * u)) ** 2
    elif name == "atan":
        d = 0.5 * k / (1 + (math.pi * k * u / 2) ** 2)
    else:
        d = torch.clamp(k - k * k * u.abs(), min=0.0)
    return gain * d


def reference_episode(ws, feedback, mode, theta, terms, per_layer, sp, train_x, train_y, query_x, query_y,
                      train_spikes=None, query_spikes=None):
    """One member's episode; ws/feedback lists of float64 matrices; theta a 1-D float64 tensor.

    sp: the SpikingConfig. Returns (query loss, query accuracy, final weights).
    """
    ws = [w.clone().double() for w in ws]
    fbs = None if feedback is None else [b.double() for b in feedback]
    n_layers, r = len(ws), len(terms)
    n_out = ws[-1].shape[0]
    for k in range(train_x.shape[0]):
        spikes = None if train_spikes is None else train_spikes[k].double()
        _, rec = simulate(ws, train_x[k].double(), spikes, sp)
        logits = rec["logits"]
        p = torch.exp(logits - logits.max())
        p = p / p.sum()
        target = torch.zeros(n_out, dtype=torch.float64)
        target[int(train_y[k])] = 1.0
        steps = sp.steps
        psibar = [sum(rec["psi"][j][t] for t in range(steps)) / steps for j in range(n_layers)]
        signal = {n_layers: p - target}
        delta = {n_layers: signal[n_layers] * psibar[n_layers - 1]}
        for j in range(n_layers, 0, -1):
            if mode == "bp":
                sig = ws[j - 1].t() @ delta[j]
            elif mode == "fa":
                sig = fbs[j - 1].t() @ delta[j]
            else:
                sig = fbs[j - 1].t() @ delta[n_layers]
            signal[j - 1] = sig
            delta[j - 1] = sig * psibar[j - 2] if j > 1 else sig
        rate = [sum(rec["act"][0][t] for t in range(steps)) / steps]
        rate += [sum(rec["act"][j][t] for t in range(steps)) / steps for j in range(1, n_layers)]
        rate += [p]
        new = []
        for i, w in enumerate(ws):
            th = dict(zip(terms, (theta[i * r:(i + 1) * r] if per_layer else theta).tolist()))
            dw = torch.zeros_like(w)
            elig = torch.zeros_like(w)
            ltp = torch.zeros_like(w)
            ltd = torch.zeros_like(w)
            for t in range(steps):
                elig += torch.outer(rec["psi"][i][t], rec["xbar"][i][t])
                ltp += torch.outer(rec["act"][i + 1][t], rec["xbar"][i][t])
                ltd += torch.outer(rec["ybar_before"][i + 1][t], rec["act"][i][t])
            dw -= th.get("eprop", 0.0) * signal[i + 1].unsqueeze(1) * elig / steps
            dw -= th.get("stdp_ltp", 0.0) * ltp / steps
            dw -= th.get("stdp_ltd", 0.0) * ltd / steps
            dw -= th.get("post_err", 0.0) * torch.outer(rate[i + 1], delta[i])
            dw -= th.get("err_err", 0.0) * torch.outer(delta[i + 1], delta[i])
            dw -= th.get("oja", 0.0) * (torch.outer(rate[i + 1], rate[i])
                                         - torch.outer(rate[i + 1], rate[i + 1]) @ w)
            dw -= th.get("decay", 0.0) * w
            new.append(w + dw)
        ws = new
    losses, correct = [], []
    for q in range(query_x.shape[0]):
        spikes = None if query_spikes is None else query_spikes[q].double()
        _, rec = simulate(ws, query_x[q].double(), spikes, sp)
        logits = rec["logits"]
        losses.append(torch.logsumexp(logits, 0) - logits[int(query_y[q])])
        correct.append(float(int(logits.argmax()) == int(query_y[q])))
    return sum(losses) / len(losses), sum(correct) / len(correct), ws


def simulate(ws, x, spikes, sp):
    """One sample through the network, neuron vectors per step; records what the rule needs."""
    n_layers = len(ws)
    v = [torch.zeros(w.shape[0], dtype=torch.float64) for w in ws]
    s = [torch.zeros(w.shape[0], dtype=torch.float64) for w in ws]
    refr = [[0] * w.shape[0] for w in ws]
    ybar = [torch.zeros(w.shape[0], dtype=torch.float64) for w in ws]
    xbar = [torch.zeros(w.shape[1], dtype=torch.float64) for w in ws]
    rec = {"psi": [[] for _ in ws], "xbar": [[] for _ in ws], "act": [[] for _ in range(n_layers + 1)],
           "ybar_before": [[] for _ in range(n_layers + 1)]}
    total = torch.zeros(ws[-1].shape[0], dtype=torch.float64)
    for t in range(sp.steps):
        inp = x if spikes is None else spikes[t]
        rec["act"][0].append(inp)
        for i, w in enumerate(ws):
            xbar[i] = sp.beta * xbar[i] + inp
            rec["xbar"][i].append(xbar[i].clone())
            current = w @ inp
            spiking = i < n_layers - 1 or sp.readout == "count"
            if sp.reset == "subtract":
                v[i] = sp.beta * v[i] + current - sp.threshold * s[i]
            else:
                v[i] = sp.beta * v[i] * (1 - s[i]) + current
            rec["ybar_before"][i + 1].append(ybar[i].clone())
            if spiking:
                out = torch.zeros_like(v[i])
                psi = psi_of(v[i] - sp.threshold, sp.surrogate, sp.slope, sp.dampening)
                for n in range(len(out)):
                    if refr[i][n] > 0:
                        psi[n] = 0.0
                        refr[i][n] -= 1
                    elif v[i][n] > sp.threshold:
                        out[n] = 1.0
                        refr[i][n] = sp.refractory
                s[i] = out
            else:
                psi = torch.ones_like(v[i])
                s[i] = torch.zeros_like(v[i])
            ybar[i] = sp.beta * ybar[i] + s[i]
            rec["psi"][i].append(psi)
            rec["act"][i + 1].append(s[i].clone())
            inp = s[i]
        total = total + (s[-1] if sp.readout == "count" else v[-1])
    rec["logits"] = sp.readout_scale * total / sp.steps
    return v, rec
