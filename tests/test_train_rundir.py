"""One trainer per run directory: the lock (a second trainer, --force and --resume refuse a live
run and name its PID; the OS releases it when the holder dies), stale temporary files, and a
read-only --out.
"""

from __future__ import annotations

import errno
import os
import subprocess
import sys
import time

import pytest

from pygan.train import build, run
from pygan.train.rundir import LOCK_FILE, RunDirectoryBusy, RunLock
from train_fixtures import load_ckpt, read_metrics, run_cli, subprocess_env, tiny_args, tiny_config


def test_a_second_trainer_on_the_same_out_is_refused(tmp_path, capsys):
    """While a trainer holds --out, building another (new, --force, --resume) refuses and names
    the holder's PID, before touching anything; once the first has finished, --resume works."""
    out = tmp_path / "run"
    first = build(tiny_config(out, steps=3))
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.name != LOCK_FILE}
    for extra in ({}, {"force": True}, {"resume": True}):
        with pytest.raises(RunDirectoryBusy, match=f"PID {os.getpid()}") as info:
            build(tiny_config(out, **extra))
        assert info.value.pid == os.getpid()
        if extra:
            assert f"--{next(iter(extra))}" in str(info.value)
    rc, err = run_cli(tiny_args(out, "--force"), capsys)
    assert rc == 2 and f"PID {os.getpid()}" in err and "--force" in err
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.name != LOCK_FILE} == before
    assert first.fit(3) == "done"
    assert not (out / LOCK_FILE).exists()  # released, and its file removed
    assert run(tiny_config(out, steps=6, resume=True)).step == 6


def test_lock_dies_with_its_process(tmp_path, capsys):
    """A live `python -m pygan train`: --force and --resume refuse naming its PID and delete nothing;
    after kill -9 (no clean-up ran) --resume takes over and the metrics have no step twice."""
    out = tmp_path / "run"
    args = [sys.executable, "-m", "pygan", "train", *tiny_args(out, "--loss", "nsgan")]
    args[args.index("--steps") + 1] = "1000000"
    args[args.index("--eval-every") + 1] = "1"
    args[args.index("--ckpt-every") + 1] = "2"
    proc = subprocess.Popen(args, env=subprocess_env(), cwd=tmp_path, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 90
        while not ((out / "checkpoint.pt").exists() and len(read_metrics(out)) >= 4):
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "no training progress within 90 s"
            time.sleep(0.05)
        metrics = (out / "metrics.jsonl").read_text()
        for flag in ("--force", "--resume"):
            rc, err = run_cli(tiny_args(out, "--loss", "nsgan", flag), capsys)
            assert rc == 2 and f"PID {proc.pid}" in err and flag in err, err
        assert (out / "metrics.jsonl").read_text().startswith(metrics)  # nothing deleted or rewritten
        proc.kill()
        proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert (out / LOCK_FILE).exists()  # left behind by the killed process, and not a problem:
    until = load_ckpt(out / "checkpoint.pt")["step"] + 2
    rc, err = run_cli(tiny_args(out, "--loss", "nsgan", "--resume", "--steps", str(until)), capsys)
    assert rc == 0, err
    steps = [r["step"] for r in read_metrics(out)]
    assert steps == sorted(set(steps))


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_stale_temporaries_are_removed(tmp_path):
    """A start removes the temporary files of dead writers (only the run's own files'); --force
    removes them whatever their PID."""
    out = tmp_path / "run"
    run(tiny_config(out, steps=3))
    dead = _dead_pid()
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        stale = [out / f".checkpoint.tmp-{dead}.pt", out / f".metrics.tmp-{dead}.jsonl",
                 out / f".samples.tmp-{dead}.png"]
        live = out / f".checkpoint.tmp-{sleeper.pid}.pt"
        other = out / f".notes.tmp-{dead}.txt"  # not a file a run writes: never touched
        for path in (*stale, live, other):
            path.write_bytes(b"half a file")
        run(tiny_config(out, steps=6, resume=True))
        assert not any(p.exists() for p in stale)
        assert live.exists() and other.exists()
        run(tiny_config(out, steps=2, force=True))
        assert not live.exists() and other.exists()
    finally:
        sleeper.kill()
        sleeper.wait()


def test_read_only_out_is_a_message_and_exit_2(tmp_path, capsys, monkeypatch):
    """--out where the lock file cannot be created (a read-only file system): exit code 2 and one
    line saying so, not a traceback."""
    out = tmp_path / "run"
    assert run_cli(tiny_args(out, "--loss", "nsgan"), capsys)[0] == 0
    real_open = os.open

    def read_only(path, flags, *args, **kwargs):
        if str(path).endswith(LOCK_FILE):
            raise OSError(errno.EROFS, "Read-only file system", str(path))
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", read_only)
    rc, err = run_cli(tiny_args(out, "--loss", "nsgan", "--resume", "--steps", "6"), capsys)
    assert rc == 2 and "not writable" in err and "Read-only file system" in err
    assert err.strip().count("\n") == 0


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root writes into read-only directories")
def test_read_only_directory_is_a_message_and_exit_2(tmp_path, capsys):
    out = tmp_path / "run"
    assert run_cli(tiny_args(out, "--loss", "nsgan"), capsys)[0] == 0
    out.chmod(0o555)
    try:
        rc, err = run_cli(tiny_args(out, "--loss", "nsgan", "--resume", "--steps", "6"), capsys)
    finally:
        out.chmod(0o755)
    assert rc == 2 and "not writable" in err


def test_run_lock_is_exclusive_and_reentrant_per_object(tmp_path):
    a, b = RunLock(tmp_path / "d"), RunLock(tmp_path / "d")
    a.acquire()
    a.acquire()  # already held: a no-op
    with pytest.raises(RunDirectoryBusy, match=f"PID {os.getpid()}"):
        b.acquire()
    a.release()
    b.acquire()
    assert b.held and not a.held
    b.release()
    assert not (tmp_path / "d" / LOCK_FILE).exists()
