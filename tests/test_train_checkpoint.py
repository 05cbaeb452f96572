"""Checkpoints are checked on load (fields, types, step >= 0, shapes, a checksum of the payload) and
every read or write failure is one line naming the file, what is wrong and the last good checkpoint.
"""

from __future__ import annotations

import errno
import os

import pytest
import torch

from pygan.train import build, run
from pygan.train.checkpoint import CheckpointError, CheckpointWriteError, checksum
from train_fixtures import load_ckpt, run_cli, tiny_args, tiny_config


def _one_line(err: str) -> bool:
    # (a warning that other processes keep the CPUs busy may come before it)
    return len([line for line in err.strip().splitlines() if "pygan train: warning:" not in line]) == 1


def _trained(tmp_path, capsys, steps="3"):
    out = tmp_path / "run"
    assert run_cli(tiny_args(out, "--loss", "nsgan", "--steps", steps), capsys)[0] == 0
    return out


def _resume(out, capsys):
    return run_cli(tiny_args(out, "--loss", "nsgan", "--resume", "--steps", "6"), capsys)


def test_a_flipped_bit_in_tensor_data_is_refused(tmp_path, capsys):
    out = _trained(tmp_path, capsys)
    state = load_ckpt(out / "checkpoint.pt")
    assert isinstance(state["checksum"], str) and state["checksum"] == checksum(state)
    weight = max(state["critic"].values(), key=lambda t: t.numel())
    raw = bytearray((out / "checkpoint.pt").read_bytes())
    at = raw.find(weight.numpy().tobytes())
    assert at > 0
    raw[at + 17] ^= 0x01
    (out / "checkpoint.pt").write_bytes(bytes(raw))
    metrics = (out / "metrics.jsonl").read_text()
    rc, err = _resume(out, capsys)
    assert rc == 2 and _one_line(err), err
    assert "checkpoint.pt" in err and "checksum" in err and "--force" in err
    assert (out / "metrics.jsonl").read_text() == metrics


def _edit(state, case):
    if case == "negative-step":
        state["step"] = -5
    elif case == "string-step":
        state["step"] = "3"
    elif case == "missing-rng":
        del state["rng"]
    elif case == "shape":
        key = next(iter(state["critic"]))
        state["critic"][key] = torch.zeros(3, 3)
    elif case == "missing-tensor":
        state["generator"].pop(next(iter(state["generator"])))
    elif case == "optimizer-shape":
        entry = next(iter(state["d_optimizer"]["state"].values()))
        entry["exp_avg"] = torch.zeros(7)
    elif case == "format":
        state["format"] = 99
    return state


@pytest.mark.parametrize("case, expected", [
    ("negative-step", "step must be an int >= 0, got -5"),
    ("string-step", "step must be an int >= 0, got '3'"),
    ("missing-rng", "rng:"),
    ("shape", "has shape [3, 3] in the checkpoint"),
    ("missing-tensor", "missing"),
    ("optimizer-shape", "exp_avg of parameter"),
    ("format", "format 99"),
])
def test_checkpoint_fields_are_checked_before_anything_changes(tmp_path, capsys, case, expected):
    """A well-formed file with a bad field (checksum made to match): exit code 2, one line naming
    the file and the field; the run's files are untouched (step -5 used to delete every metric)."""
    out = _trained(tmp_path, capsys)
    state = _edit(load_ckpt(out / "checkpoint.pt"), case)
    state["checksum"] = checksum(state)
    torch.save(state, out / "checkpoint.pt")
    ckpt, metrics = (out / "checkpoint.pt").read_bytes(), (out / "metrics.jsonl").read_text()
    rc, err = _resume(out, capsys)
    assert rc == 2 and _one_line(err), err
    assert "checkpoint.pt" in err and expected in err
    assert (out / "checkpoint.pt").read_bytes() == ckpt and (out / "metrics.jsonl").read_text() == metrics


@pytest.mark.parametrize("case, expected", [
    ("empty", "empty"),
    ("truncated", "truncated"),
    ("garbage", "not a torch.save archive"),
    ("text", "not a torch.save archive"),
])
def test_unreadable_checkpoint_is_one_line(tmp_path, capsys, case, expected):
    out = _trained(tmp_path, capsys)
    path = out / "checkpoint.pt"
    data = path.read_bytes()
    path.write_bytes({"empty": b"", "truncated": data[:len(data) // 2], "garbage": os.urandom(3000),
                      "text": "step: 3\n".encode()}[case])
    rc, err = _resume(out, capsys)
    assert rc == 2 and _one_line(err), err
    assert str(path) in err and expected in err and "--force" in err
    assert "Errno" not in err and "EOFError" not in err and "codec" not in err


def test_trainer_load_checkpoint_raises_checkpoint_error(tmp_path):
    """From Python: CheckpointError (a ValueError) naming the file."""
    out = tmp_path / "run"
    trainer = run(tiny_config(out, steps=3))
    (out / "checkpoint.pt").write_bytes(b"")
    with pytest.raises(CheckpointError, match="checkpoint.pt: the file is empty"):
        trainer.load_checkpoint()


def _no_space_fsync(fd):
    raise OSError(errno.ENOSPC, "No space left on device")


def _enforce_fail(obj, f, *args, **kwargs):
    # What torch.save raises when the file object's write fails (the OSError is its __context__).
    f.write(b"half")
    try:
        raise OSError(errno.ENOSPC, "No space left on device")
    except OSError:
        raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 704 vs 598") from None


@pytest.mark.parametrize("how", ["fsync", "torch.save"])
def test_disk_full_names_the_last_good_checkpoint(tmp_path, monkeypatch, how):
    """A write that fails for lack of space: one line with "no space left", the file, and the last
    good checkpoint's path and step; the previous checkpoint is intact and no temporary file is left."""
    out = tmp_path / "run"
    trainer = build(tiny_config(out, steps=3))
    trainer.fit(3)
    good = (out / "checkpoint.pt").read_bytes()
    if how == "fsync":
        monkeypatch.setattr(os, "fsync", _no_space_fsync)
    else:
        monkeypatch.setattr(torch, "save", _enforce_fail)
    trainer.step = 4
    with pytest.raises(CheckpointWriteError) as info:
        trainer.save_checkpoint()
    message = str(info.value)
    assert isinstance(info.value, OSError) and "\n" not in message
    assert "no space left" in message and f"{out / 'checkpoint.pt'} (step 3)" in message
    assert (out / "checkpoint.pt").read_bytes() == good
    assert [p.name for p in out.iterdir() if p.name.startswith(".")] == []


def test_cli_disk_full_exit_code_1(tmp_path, capsys, monkeypatch):
    """The command: exit code 1 and one line naming the last good checkpoint."""
    calls = []

    def fsync(fd):
        calls.append(fd)
        if len(calls) > 1:  # the checkpoint at step 3 is written, the one at step 4 is not
            _no_space_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    out = tmp_path / "run"
    rc, err = run_cli(tiny_args(out, "--loss", "nsgan"), capsys)
    assert rc == 1 and _one_line(err), err
    assert "no space left" in err and "checkpoint.pt (step 3)" in err
    assert load_ckpt(out / "checkpoint.pt")["step"] == 3


def test_format_1_checkpoints_still_load(tmp_path):
    """A checkpoint of the previous format (no checksum) resumes."""
    out = tmp_path / "run"
    run(tiny_config(out, steps=3))
    state = load_ckpt(out / "checkpoint.pt")
    state["format"] = 1
    del state["checksum"]
    torch.save(state, out / "checkpoint.pt")
    assert run(tiny_config(out, resume=True)).step == 6
