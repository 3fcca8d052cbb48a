"""The seqbench pytest plugin's fixture for this folder.

Installed seqbench registers the plugin through its pytest11 entry point; the
import below makes these tests work from a checkout that is not installed
(or installed from another worktree), and overrides the plugin's fixture
with the identical one when both are present.
"""
from harness.pytest_plugin import seqbench_case  # noqa: F401
