"""The trainer's terminal side: the progress display (tqdm when installed, one plain line per
evaluation otherwise) and Ctrl-C (the first asks the loop to stop after a checkpoint, the second stops
at once)."""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable, Iterator

__all__ = ["Progress", "ctrl_c_requests_stop"]


@contextlib.contextmanager
def ctrl_c_requests_stop(requested: Callable[[], bool], request: Callable[[], None]) -> Iterator[None]:
    """Within the block, the first SIGINT calls ``request()``; one while ``requested()`` raises
    KeyboardInterrupt. The previous handler is restored after (only the main thread can set one)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def on_sigint(signum, frame):
        if requested():  # a second Ctrl-C: stop now, without the checkpoint
            raise KeyboardInterrupt
        request()

    old = signal.signal(signal.SIGINT, on_sigint)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, old)


class Progress:
    """tqdm when installed; otherwise one plain line per evaluation.

    Args:
        total: the last step.
        initial: the step the bar starts at (a resumed run's).
        enabled: False shows nothing.
    """

    def __init__(self, total: int, initial: int, enabled: bool):
        self.enabled, self.total, self.bar = enabled, total, None
        self.last_w1 = None
        if not enabled:
            return
        try:
            from tqdm.auto import tqdm
        except ImportError:
            return
        self.bar = tqdm(total=total, initial=initial, unit="step", dynamic_ncols=True)

    def update(self, step: int, stats: dict) -> None:
        if self.bar is not None:
            self.bar.n = step
            post = {"loss_d": f"{stats['loss_d']:.4f}", "loss_g": f"{stats['loss_g']:.4f}"}
            if self.last_w1 is not None:
                post["W1"] = f"{self.last_w1:.4f}"
            self.bar.set_postfix(post, refresh=False)
            self.bar.update(0)

    def show(self, record: dict) -> dict:
        if record.get("w1") is not None:
            self.last_w1 = record["w1"]
        if self.enabled and self.bar is None:
            parts = [f"step {record['step']}/{self.total}"]
            for key in ("loss_d", "loss_g", "w1", "critic_estimate"):
                if record.get(key) is not None:
                    parts.append(f"{key} {record[key]:.4f}")
            if record.get("step_time"):
                parts.append(f"{record['step_time']:.3f} s/step")
            print("  ".join(parts), flush=True)
        return record

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
