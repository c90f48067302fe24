"""The paper's system (Shervani-Tabar & Rosenbaum): a feed-forward network learning few-shot image
classification online with a ten-term plasticity rule, fa/bp/dfa feedback."""
