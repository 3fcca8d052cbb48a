"""Workloads (op, model, generate, serve, train); see base.Workload."""
from harness.workloads.base import get, names

__all__ = ["get", "names"]
