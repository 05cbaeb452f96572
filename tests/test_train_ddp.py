"""Data parallelism of ``python -m pygan train`` (pygan.train.distributed): 2 CPU processes on gloo.

The trainer's contract: every rank draws the same *global* batch (real data, noise z, the penalty's
alpha, instance noise) from identically seeded generators and keeps its slice, and gradients are
averaged with one flattened all-reduce after ``backward()`` (no DDP wrapper, whose hooks do not
support the double backward of a gradient penalty). So 2 processes with ``--batch-size B`` must
train exactly what 1 process with ``--batch-size 2B`` trains, up to float rounding (the mean over
2B is computed as the average of two means over B). We check that on the final checkpoint: weights,
optimiser states, EMA, step counters, and the random generators' states (those bit for bit).

How the ranks are launched: each rank is a ``python -c`` process that sets RANK / WORLD_SIZE /
MASTER_ADDR / MASTER_PORT itself (what torchrun would) and calls ``pygan.train.cli.main`` once per
configuration, a fresh port each (``main`` destroys its process group at the end), so the ~3 s
import of torch is paid once per rank, not once per configuration. The single-process references
run in this process (``cli.main`` too). A separate test goes through torchrun's own command line
when torchrun is installed next to this Python (or on PATH).

Every subprocess has a timeout and is killed (its own process group) when it exceeds it, or when
another rank failed and it would otherwise wait in a collective for gloo's 30-minute timeout.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import torch.distributed as dist

ROOT = Path(__file__).resolve().parent.parent
WORLD = 2
BATCH = 16  # per process; the single-process reference uses WORLD * BATCH
STEPS = 4
TIMEOUT_S = 240  # whole launch (all configurations); the runs themselves take seconds
RTOL, ATOL = 1e-5, 1e-6  # float32, means over 2B vs averages of means over B, then a few Adam steps

pytestmark = pytest.mark.skipif(not (dist.is_available() and dist.is_gloo_available()),
                                reason="torch.distributed with the gloo backend is not available")

# name -> the loss and options. wgan-gp is the point (double backward through the critic); the
# second one adds instance noise (a rank-sliced draw of its own), an EMA generator (broadcast at the
# start) and lazy regularisation; nsgan-r1 double-backwards at the real batch; wgan goes through
# ClippedRMSprop.
CONFIGS = {
    "wgan-gp": ["--loss", "wgan-gp"],
    "wgan-gp+noise+ema+lazy": ["--loss", "wgan-gp", "--instance-noise", "0.1", "--ema", "0.9",
                               "--lazy-every", "2"],
    "nsgan-r1": ["--loss", "nsgan-r1"],
    "wgan": ["--loss", "wgan"],
}


def train_args(out: Path, batch: int, extra: list[str]) -> list[str]:
    """``pygan train``'s argv for a tiny run: MLPs 1x16, 4 generator steps, W1 on 64 samples."""
    return ["--data", "8gaussians", "--out", str(out), "--steps", str(STEPS), "--batch-size", str(batch),
            "--hidden", "16", "--layers", "1", "--eval-every", "2", "--ckpt-every", "2",
            "--eval-samples", "64", "--seed", "3", "--device", "cpu", "--no-plots", "--no-progress", *extra]


def _env(**extra: str) -> dict:
    env = {k: v for k, v in os.environ.items()
           if k not in ("RANK", "LOCAL_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE", "GROUP_RANK", "MASTER_ADDR",
                        "MASTER_PORT", "TORCHELASTIC_RUN_ID")}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)
    env.setdefault("PYGAN_REQUIRE_EXT", "1")
    env["OMP_NUM_THREADS"] = env["MKL_NUM_THREADS"] = "1"  # 2 processes on a small shared machine
    if "GLOO_SOCKET_IFNAME" not in env and Path("/sys/class/net/lo").exists():
        env["GLOO_SOCKET_IFNAME"] = "lo"  # all ranks are local; do not depend on the hostname resolving
    env.update(extra)
    return env


def free_ports(n: int) -> list[int]:
    """n distinct ports that were free a moment ago (held together, so they differ)."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def _kill(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # the group we created for it (start_new_session)
        except ProcessLookupError:
            pass
        proc.wait(timeout=30)


def wait_all(procs: list[subprocess.Popen], logs: list[Path], timeout: float, grace: float = 20.0) -> list[int]:
    """Wait for every process; kill the rest ``grace`` s after one fails, and all after ``timeout`` s.

    Returns the exit codes; fails the test (with each process's log) on a timeout.
    """
    deadline = time.monotonic() + timeout
    failed_at = None
    try:
        while any(p.poll() is None for p in procs):
            now = time.monotonic()
            if failed_at is None and any(p.poll() not in (None, 0) for p in procs):
                failed_at = now  # a peer of a failed rank would wait in a collective: give up soon
            if now > deadline or (failed_at is not None and now > failed_at + grace):
                for p in procs:
                    _kill(p)
                if now > deadline:
                    pytest.fail(f"timed out after {timeout:.0f} s:\n" + _logs(logs))
                break
            time.sleep(0.1)
    finally:
        for p in procs:
            _kill(p)
    return [p.returncode for p in procs]


def _logs(logs: list[Path]) -> str:
    return "\n".join(f"--- {log.name}:\n{log.read_text()[-4000:] if log.exists() else '(none)'}" for log in logs)


# One process per rank runs every configuration in turn (one process group each, on its own port).
# It also records this process's thread count before the first run and after each one (Linux: one
# entry per thread in /proc/self/task) in threads-rank<r>.json: gloo's worker threads must be joined
# when main() returns, not left to die at interpreter exit (see test_process_group_dies_with_main).
RANK_RUNNER = """
import json, os, sys, time
from pygan.train.cli import main
def threads():
    return len(os.listdir("/proc/self/task")) if os.path.isdir("/proc/self/task") else None
def settled(before):
    # A joined thread can take a moment to leave /proc/self/task on a loaded machine: wait up to 10 s
    # for the count to come back (a group that outlives main() keeps its threads for good).
    deadline = time.monotonic() + 10.0
    while (n := threads()) is not None and before is not None and n > before and time.monotonic() < deadline:
        time.sleep(0.05)
    return n
counts = {"before": threads(), "after": []}
codes = []
for port, argv in json.loads(sys.argv[1]):
    os.environ["MASTER_PORT"] = str(port)
    code = main(argv)
    counts["after"].append(settled(counts["before"]))
    print(f"rank {os.environ['RANK']}: pygan train {' '.join(argv)} -> {code}", file=sys.stderr, flush=True)
    codes.append(code)
    if code:
        break
with open(f"threads-rank{os.environ['RANK']}.json", "w") as f:
    json.dump(counts, f)
sys.exit(max(codes))
"""


def launch_ranks(argvs_per_rank: list[list[list[str]]], tmp: Path) -> None:
    """Run ``cli.main`` over the given argv lists on WORLD ranks (rank r runs argvs_per_rank[r]).

    Retries once with other ports if a port was taken in between (EADDRINUSE).
    """
    n_jobs = len(argvs_per_rank[0])
    for attempt in range(2):
        try:
            ports = free_ports(n_jobs)
        except OSError as exc:
            pytest.skip(f"cannot bind a TCP port on 127.0.0.1 for the process group: {exc}")
        procs, logs = [], []
        for rank in range(WORLD):
            log = tmp / f"rank{rank}-try{attempt}.log"
            env = _env(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(WORLD), LOCAL_WORLD_SIZE=str(WORLD),
                       MASTER_ADDR="127.0.0.1", MASTER_PORT=str(ports[0]))
            jobs = json.dumps([[port, argv] for port, argv in zip(ports, argvs_per_rank[rank])])
            with open(log, "w") as f:
                procs.append(subprocess.Popen([sys.executable, "-c", RANK_RUNNER, jobs], env=env, cwd=tmp,
                                              stdout=f, stderr=subprocess.STDOUT, start_new_session=True))
            logs.append(log)
        codes = wait_all(procs, logs, TIMEOUT_S)
        if all(c == 0 for c in codes):
            return
        text = _logs(logs)
        if attempt == 0 and ("EADDRINUSE" in text or "ddress already in use" in text):
            continue
        pytest.fail(f"data-parallel run failed (exit codes {codes}):\n{text}")


def run_single(argv: list[str]) -> None:
    """The reference: one process (this one), no process group."""
    from pygan.train.cli import main

    assert dist.is_available() and not dist.is_initialized()
    assert main(argv) == 0


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Every configuration trained twice: 1 process with batch 2B (``single/<name>``) and 2 processes
    with batch B. Rank 0 writes into ``ddp/<name>``; rank 1 is given ``rank1/<name>`` as its --out so
    that anything it wrote would show there (under torchrun the ranks share one --out: tested below)."""
    tmp = tmp_path_factory.mktemp("ddp")
    dirs = {kind: {name: tmp / kind / name for name in CONFIGS} for kind in ("single", "ddp", "rank1")}
    argvs = [[train_args(dirs["ddp" if rank == 0 else "rank1"][name], BATCH, extra)
              for name, extra in CONFIGS.items()] for rank in range(WORLD)]
    launch_ranks(argvs, tmp)
    for name, extra in CONFIGS.items():
        run_single(train_args(dirs["single"][name], WORLD * BATCH, extra))
    return dirs


def load(out: Path) -> dict:
    return torch.load(out / "checkpoint.pt", map_location="cpu", weights_only=True)


def metrics(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


def assert_same_training(single: Path, ddp: Path) -> None:
    """The 2-process run's checkpoint equals the single-process run's (floats to RTOL/ATOL, RNG exactly)."""
    a, b = load(single), load(ddp)
    assert (b["step"], b["critic_steps"]) == (a["step"], a["critic_steps"]) and a["step"] == STEPS
    # The global batch is the same: every generator (trainer's, data's, torch's) made the same draws.
    assert torch.equal(b["rng"]["trainer"], a["rng"]["trainer"])
    assert torch.equal(b["rng"]["torch"], a["rng"]["torch"])
    assert torch.equal(b["data"]["generator"], a["data"]["generator"])
    for key in ("generator", "critic", "ema", "g_optimizer", "d_optimizer"):
        torch.testing.assert_close(b[key], a[key], rtol=RTOL, atol=ATOL,
                                   msg=lambda m, key=key: f"{key}: 2 processes x batch {BATCH} differ from "
                                                          f"1 process x batch {WORLD * BATCH}: {m}")
    same = {k: v for k, v in a["config"].items() if k not in ("batch_size", "out")}
    assert {k: v for k, v in b["config"].items() if k not in ("batch_size", "out")} == same
    assert (a["config"]["batch_size"], b["config"]["batch_size"]) == (WORLD * BATCH, BATCH)


@pytest.mark.parametrize("name", list(CONFIGS))
def test_two_processes_match_one_with_twice_the_batch(runs, name):
    assert_same_training(runs["single"][name], runs["ddp"][name])


@pytest.mark.parametrize("name", list(CONFIGS))
def test_only_rank_0_writes(runs, name):
    ddp, single = runs["ddp"][name], runs["single"][name]
    assert not runs["rank1"][name].exists(), sorted(p.name for p in runs["rank1"][name].rglob("*"))
    assert sorted(p.name for p in ddp.iterdir()) == sorted(p.name for p in single.iterdir())
    # One line per evaluation (steps 0, 2, 4), each written once, with the same exact W1 and critic
    # estimate as the single process's (rank 0 evaluates the same generator on the same held-out data).
    got, want = metrics(ddp), metrics(single)
    assert [r["step"] for r in got] == [r["step"] for r in want] == [0, 2, 4]
    for g, w in zip(got, want):
        assert g["w1"] == pytest.approx(w["w1"], rel=1e-4, abs=1e-6)
        assert g["critic_estimate"] == pytest.approx(w["critic_estimate"], rel=1e-4, abs=1e-6)


def test_wgan_gp_penalty_trains_the_critic_under_data_parallelism(runs):
    """The penalty's double backward reaches the critic's weights on every rank: its gradient is in the
    all-reduced update. Evidence: the trained critic differs from one trained with λ = 0 (run alone)."""
    out = runs["single"]["wgan-gp"].parent / "wgan-gp-no-penalty"
    run_single(train_args(out, WORLD * BATCH, ["--loss", "wgan-gp", "--penalty-weight", "0"]))
    with_penalty, without = load(runs["ddp"]["wgan-gp"])["critic"], load(out)["critic"]
    diff = max((with_penalty[k] - without[k]).abs().max().item() for k in with_penalty)
    assert diff > 100 * ATOL


def test_logged_losses_are_the_global_batch_losses(runs):
    """The logged loss_d / loss_g / penalty are the global batch's (all-reduced), not rank 0's half."""
    got, want = metrics(runs["ddp"]["wgan-gp"]), metrics(runs["single"]["wgan-gp"])
    for g, w in zip(got[1:], want[1:]):
        for key in ("loss_d", "loss_g", "penalty"):
            assert g[key] == pytest.approx(w[key], rel=1e-4, abs=1e-6), key


def test_process_group_dies_with_main(runs):
    """Each ``main()`` leaves no gloo thread behind: its process group is really destroyed.

    Regression: the first optimiser imports ``torch.distributed.nn.functional`` (through
    ``torch._dynamo``), whose default arguments captured the default group when imported after
    ``init_process_group``; the group then outlived ``destroy_process_group`` and, at interpreter
    exit, a gloo worker releasing the last collective's tensors aborted the rank (SIGABRT, "terminate
    called without an active exception") in about 1 torchrun run in 8.
    """
    tmp = runs["ddp"]["wgan-gp"].parent.parent
    for rank in range(WORLD):
        counts = json.loads((tmp / f"threads-rank{rank}.json").read_text())
        if counts["before"] is None:
            pytest.skip("no /proc/self/task to count threads")
        assert counts["after"] == [counts["before"]] * len(CONFIGS), (rank, counts)


def _torchrun() -> str | None:
    beside = Path(sys.executable).parent / "torchrun"
    return str(beside) if beside.exists() else shutil.which("torchrun")


@pytest.mark.skipif(_torchrun() is None, reason="torchrun is not installed next to this Python or on PATH")
def test_torchrun_command_line(runs, tmp_path):
    """``torchrun --standalone --nproc_per_node=2 -m pygan train ...``: both ranks share one --out; the
    result equals the single process's, and rank 0 alone wrote the files (each metrics line once)."""
    out = tmp_path / "run"
    log = tmp_path / "torchrun.log"
    cmd = [_torchrun(), "--standalone", "--nnodes=1", f"--nproc_per_node={WORLD}", "-m", "pygan", "train",
           *train_args(out, BATCH, CONFIGS["wgan-gp"])]
    with open(log, "w") as f:
        proc = subprocess.Popen(cmd, env=_env(), cwd=tmp_path, stdout=f, stderr=subprocess.STDOUT,
                                start_new_session=True)
    (code,) = wait_all([proc], [log], TIMEOUT_S)
    assert code == 0, _logs([log])
    assert_same_training(runs["single"]["wgan-gp"], out)
    assert sorted(p.name for p in out.iterdir()) == ["checkpoint.pt", "config.json", "metrics.jsonl"]
    assert [r["step"] for r in metrics(out)] == [0, 2, 4]
    assert log.read_text().count("pygan train: done at step 4") == 1  # rank 0's summary line only
