"""Errors an impl raises for the harness to read (impls never import harness)."""
from __future__ import annotations


class Unsupported(ValueError):
    """An impl asked to do what it does not define, with params that are otherwise valid
    (an attention impl without a causal form as a decoder mixer, ALiBi on a kernel that
    takes no bias). The message is the reason, one line; the harness records the case
    as `skipped` with it, as it does for an unavailable impl."""


class PluginError(ImportError):
    """A module named in SEQBENCH_PLUGINS cannot be imported: the user's setting, said in one line."""
