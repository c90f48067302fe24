"""Running an experiment: the training loop, the run directory and MPI population scoring."""
