"""pytest plugin `seqbench` (entry point pytest11): benchmark a registered impl in a test.

    def test_my_attention(seqbench_case):
        seqbench_case("attention", "my_attention", seq_len=512, heads=4, head_dim=32)

builds the case through the same workload code as `harness run`, checks it
against its reference (the test fails if the impl is wrong, skips if it
cannot run here) and times `prepared.run` with pytest-benchmark's
`benchmark` fixture. Under `--benchmark-disable` (the default in this repo's
pytest config) the call runs once, still a correctness smoke test.
"""
from __future__ import annotations

from functools import partial
from typing import Any, Callable

import pytest

from harness.errors import SKIPPED
from harness.measure import allocator
from harness.regression import WrongResult, build_case, prepare


def bench_case(benchmark: Any, family: str, impl: str, workload: str = "op", device: str = "cpu",
               **params: Any) -> dict[str, float]:
    """Check, then benchmark one case; returns the check's error metrics."""
    case = build_case(family, impl, workload, device, **params)
    try:
        prepared, errors = prepare(case)
    except SKIPPED as why:
        pytest.skip(f"{case.describe()}: {why}")
    except WrongResult as wrong:
        pytest.fail(f"wrong result, not timed: {wrong}", pytrace=False)
    benchmark.extra_info.update({"family": family, "impl": impl, "workload": workload, **params,
                                 **{k: float(v) for k, v in errors.items()}})
    allocator.steady()  # as in a harness worker
    benchmark(prepared.run)
    return errors


@pytest.fixture
def seqbench_case(benchmark: Any) -> Callable[..., dict[str, float]]:
    """`seqbench_case(family, impl, workload="op", **params)`: see bench_case."""
    return partial(bench_case, benchmark)
