"""Scale-out: parameter sweeps on a local process pool or a SLURM job array."""
