"""`harness run --executor ray` on a local Ray instance: the local executor's cases and statuses,
a Ray worker killed mid-case is an error row and the run goes on, a killed driver resumes losing
and repeating nothing, and one-line errors for a missing Ray or an unreachable cluster."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from harness import cli
from harness.results import load, read_records
from tests.conftest import PLUGINS, ROOT, TINY_MEASURE, harness_cli, run_in_process, tiny_attention_suite

ray = pytest.importorskip("ray", reason="Ray is not installed (pip install 'seqbench[ray]')")

SMOKE = ROOT / "suites" / "smoke.yaml"


@pytest.fixture(scope="module")
def cluster() -> str:
    """A local Ray instance for the whole module (it takes 10 s or more to start on 2 cores), joined
    by this process; its address, for drivers in other processes. Its workers import this tree's
    code and the test impls."""
    with pytest.MonkeyPatch.context() as patch:
        for name, value in {"PYTHONPATH": str(ROOT), "SEQBENCH_PLUGINS": PLUGINS, "RAY_USAGE_STATS_ENABLED": "0"}.items():
            patch.setenv(name, value)
        sigterm = signal.getsignal(signal.SIGTERM)
        context = ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False,
                           logging_level="ERROR")
        signal.signal(signal.SIGTERM, sigterm)  # ray.init takes it over; pytest's own stays
    try:
        yield context.address_info["gcs_address"]
    finally:
        ray.shutdown()


def run(capsys, *argv) -> tuple[int, str]:
    code = cli.main(["run", *map(str, argv)])
    return code, capsys.readouterr().err.strip()


def statuses(out: Path) -> dict[str, str]:
    [run_dir] = out.iterdir()
    return {r["case_id"]: r["status"] for r in read_records(run_dir)}


@pytest.fixture(scope="module")
def ray_run(cluster, tmp_path_factory) -> Path:
    """One run under Ray (each Ray run starts worker processes: seconds on 2 cores) of smoke.yaml's
    cases at seq_len 64, not causal, after an impl that kills its Ray worker mid-case and one
    whose worker process exits: the run folder."""
    suite = yaml.safe_load(SMOKE.read_text())
    suite["impls"] = ["test_kill_host", "test_exit", *suite["impls"]]
    suite["sweep"] = {"seq_len": [64], "causal": [False]}
    path, out = tmp_path_factory.mktemp("ray") / "smoke.yaml", tmp_path_factory.mktemp("ray-out")
    path.write_text(yaml.safe_dump(suite, sort_keys=False))
    import tests.fixtures.misbehaving  # noqa: F401  (the driver checks each impl exists)
    from harness import ray_executor

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(ray_executor.RayExecutor, "_driver_node", lambda self: "another node")
        assert cli.main(["run", str(path), "--executor", "ray", "--out", str(out)]) == 0
    [run_dir] = out.iterdir()
    return run_dir


def by_case(records: list[dict]) -> dict[tuple, str]:
    return {(r["label"], r["params"]["seq_len"], r["params"]["causal"]): r["status"] for r in records}


def test_smoke_under_ray_has_the_local_executors_cases_and_statuses(ray_run, tmp_path, monkeypatch, capsys):
    run_in_process(monkeypatch)
    code, err = run(capsys, SMOKE, "--where", "seq_len==64 and not causal", "--out", tmp_path)
    assert code == 0, err
    [local_dir] = tmp_path.iterdir()
    local = by_case(read_records(local_dir))
    under_ray = by_case(read_records(ray_run))
    assert len(local) == 3
    assert {case: under_ray[case] for case in local} == local
    frame = load(ray_run)
    assert list(frame["index"]) == sorted(frame["index"])  # the table in the suite's order, whatever ended first
    ok = frame["status"] == "ok"
    assert (frame.loc[ok, "wall_s"] >= frame.loc[ok, "worker_s"]).all()


def test_records_under_ray_carry_the_env_id_of_their_node(ray_run):
    """Every host here read its node's env as on another node (the fixture's hosts think the driver
    elsewhere): with Ray's OMP_NUM_THREADS undone, it is the env_id a driver here reads, `harness env`'s.
    (This process's own env.json may differ: other tests set its torch threads; then it is in envs/.)"""
    shown = harness_cli("env", "--device", "cpu")
    assert shown.returncode == 0, shown.stderr
    here = json.loads(shown.stdout)["env_id"]
    # (a row the driver made for a host that died carries the run's env_id: that host's was never read)
    assert {r["env_id"] for r in read_records(ray_run) if r["status"] == "ok"} == {here}
    run_env = json.loads((ray_run / "env.json").read_text())["env_id"]
    assert (ray_run / "envs" / f"{here}.json").exists() == (here != run_env)


def test_a_ray_worker_killed_mid_case_is_an_error_row_and_the_run_goes_on(ray_run):
    rows = {r["label"]: r for r in read_records(ray_run)}
    assert rows["test_kill_host"]["status"] == "error"
    assert "Ray worker died mid-case" in rows["test_kill_host"]["reason"]
    assert rows["test_exit"]["status"] == "error"  # its worker process died inside a live host, as locally
    assert "exited with status 3" in rows["test_exit"]["reason"]
    assert {rows[label]["status"] for label in ("naive", "sdpa_math", "sdpa_flash")} == {"ok"}


@pytest.mark.slow  # a driver process and two runs' workers: 20-60 s on 2 cores
def test_a_driver_killed_mid_run_then_resumed_loses_and_repeats_nothing(cluster, write_suite, tmp_path, capsys):
    seq_lens = [8, 12, 16, 20, 24, 28]
    suite = tiny_attention_suite(impls=["test_slow"], sweep={"seq_len": seq_lens},
                                 measure={**TINY_MEASURE, "min_reps": 3, "max_reps": 3, "threads": 1})
    path, out = write_suite(suite), tmp_path / "out"
    env = {**os.environ, "SEQBENCH_PLUGINS": PLUGINS, "PYTHONPATH": str(ROOT)}
    driver = subprocess.Popen([sys.executable, "-m", "harness", "run", str(path), "--out", str(out),
                               "--executor", "ray", "--ray-address", cluster],
                              cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              start_new_session=True)
    deadline = time.time() + 120
    while time.time() < deadline and driver.poll() is None:
        written = list(out.glob("*/records.jsonl")) if out.exists() else []
        if written and written[0].read_text().count("\n") >= 2:
            break
        time.sleep(0.05)
    os.killpg(driver.pid, signal.SIGKILL)  # the driver, with cases in flight on the cluster
    driver.wait()
    [run_dir] = out.iterdir()
    before = read_records(run_dir)
    assert 2 <= len(before) < len(seq_lens)
    code, err = run(capsys, path, "--resume", run_dir, "--executor", "ray")
    assert code == 0, err
    after = read_records(run_dir)  # refuses a case recorded twice
    assert after[:len(before)] == before
    assert sorted(r["params"]["seq_len"] for r in after) == seq_lens
    assert {r["status"] for r in after} == {"ok"}


def test_ray_not_installed_is_a_one_line_error(monkeypatch, capsys):
    import harness

    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` fails as where it is not installed
    monkeypatch.delitem(sys.modules, "harness.ray_executor", raising=False)
    monkeypatch.delattr(harness, "ray_executor", raising=False)
    code, err = run(capsys, SMOKE, "--executor", "ray")
    assert code == 2
    assert err.startswith("error: --executor ray: Ray is not installed (")
    assert err.endswith("); pip install 'seqbench[ray]'") and "\n" not in err


def test_an_unreachable_cluster_is_a_one_line_error(capsys):
    code, err = run(capsys, SMOKE, "--executor", "ray", "--ray-address", "127.0.0.1:1")
    assert code == 2
    assert err.startswith("error: --ray-address 127.0.0.1:1: cannot reach a Ray cluster there")
    assert "\n" not in err


def test_ray_address_without_the_ray_executor_is_refused(capsys):
    code, err = run(capsys, SMOKE, "--ray-address", "127.0.0.1:6379")
    assert (code, err) == (2, "error: --ray-address: only with --executor ray")


def test_a_case_no_node_can_hold_is_an_error_row_naming_what_it_needs(cluster, write_suite, tmp_path, capsys):
    suite = tiny_attention_suite(sweep={"seq_len": [16]}, measure={**TINY_MEASURE, "threads": 3})
    code, err = run(capsys, write_suite(suite), "--executor", "ray", "--out", tmp_path / "out")
    assert code == 0, err
    [run_dir] = (tmp_path / "out").iterdir()
    [record] = read_records(run_dir)
    assert record["status"] == "error"
    assert record["reason"] == ("no node of the Ray cluster has 3 CPUs and 0 GPUs free to give "
                                "(the largest has 2 CPUs, 0 GPUs)")


def test_a_case_holds_one_gpu_or_its_threads_or_the_smallest_nodes_cpus():
    from harness.ray_executor import Shape, shape_of
    from tests.conftest import make_case

    def case(device: str, threads: int | None):
        return make_case("op", "attention", "naive", device=device, measure={"threads": threads},
                         seq_len=16, batch=1, heads=1, head_dim=8)

    assert shape_of(case("cuda", None), 16) == Shape(1, 1)
    assert shape_of(case("cuda", 4), 16) == Shape(4, 1)
    assert shape_of(case("cpu", 3), 16) == Shape(3, 0)
    assert shape_of(case("cpu", None), 16) == Shape(16, 0)
