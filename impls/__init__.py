"""Every implementation seqbench can measure, registered by family (see impls.registry)."""
