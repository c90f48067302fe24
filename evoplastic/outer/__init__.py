"""Outer optimisers over θ: evolution strategies and the paper's Adam loop, one interface."""

from evoplastic.outer.base import OuterLoop, make_outer

__all__ = ["OuterLoop", "make_outer"]
