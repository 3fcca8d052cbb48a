"""One page per workload, each built for the question its runs answer (generate, serve, train,
model); other workloads (op, classify, rlhf, ...) get the generic page (generic.py)."""
