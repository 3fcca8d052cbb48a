"""Attention and transformer layers split over several processes (torch.distributed): ring
attention, all-to-all (Ulysses) sequence parallelism, Megatron tensor parallelism."""
