"""Shared scoring: the protocols a network family implements and the fitness reduction the outer loops see."""
