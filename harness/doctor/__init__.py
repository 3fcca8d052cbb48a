"""`harness doctor`: what this machine runs (its stack) and whether every impl that can run
here is right here: each one's correctness check, at the shapes that matter on the device,
against its reference, at the workload's tolerance (stack.py, checks.py, plan.py, kernels.py)."""
