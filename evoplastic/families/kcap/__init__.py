"""The k-cap RNN family (Balwani, Gupta & Shu): unsupervised recurrent plasticity judged by a few-label linear probe.

Modules run downward: config → data → network → rules → loop → metrics → baselines → problem → family.
Docstring only, so that the config schema can import ``kcap.config`` without the numeric stack.
"""
