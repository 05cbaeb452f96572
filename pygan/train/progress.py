"""The trainer's progress display: tqdm when installed, one plain line per evaluation otherwise."""

from __future__ import annotations

__all__ = ["Progress"]


class Progress:
    """tqdm when installed; otherwise one plain line per evaluation."""

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
