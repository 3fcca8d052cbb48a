"""Profiling: a torch.profiler pass per case after timing, its trace, operator table and where the time goes."""
