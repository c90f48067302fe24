"""Spiking networks: LIF layers learning online by e-prop, STDP and the paper's terms in trace form."""
