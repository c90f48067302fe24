"""Speed: the inner-loop bench, the one-run suite of ratios, the machine roofline and MPI scaling."""
