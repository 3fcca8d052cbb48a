"""Cases that span several processes: one per rank of a torch.distributed group (gloo on
the CPU, NCCL on GPUs), driven from the worker (group.py) and served by the ranks (ranks.py,
job.py)."""
