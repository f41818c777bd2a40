"""Run `pretrain` on several CPU ranks (gloo) from a test, through torch's elastic launcher.

The entry point is a function here (spawned processes import it by name), so a test can give
each rank its own fake clock and get every rank's return value back.
"""

from __future__ import annotations

import uuid


class TickingClock:
    """Fake time: every reading advances by `tick` seconds, whatever the machine's speed."""

    def __init__(self, tick):
        self.now, self.tick = 0.0, tick

    def __call__(self):
        self.now += self.tick
        return self.now


def frozen_clock():
    return 0.0


def rank_main(kwargs: dict, ticks: list[float] | None):
    """One rank: pretrain with `kwargs`, on a ticking clock of its own if `ticks` are given."""
    import os

    import torch

    from cramming.train.pretrain import pretrain

    torch.set_num_threads(1)
    rank = int(os.environ["RANK"])
    clock = TickingClock(ticks[rank]) if ticks else frozen_clock
    return pretrain(**kwargs, clock=clock)


def run_ranks(nproc: int, ticks: list[float] | None = None, **kwargs) -> dict[int, dict]:
    """{rank: what `pretrain(**kwargs)` returned on that rank}."""
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    config = LaunchConfig(min_nodes=1, max_nodes=1, nproc_per_node=nproc, run_id=str(uuid.uuid4()),
                          rdzv_backend="c10d", rdzv_endpoint="localhost:0", max_restarts=0,
                          monitor_interval=0.1, start_method="spawn")
    return elastic_launch(config, rank_main)(kwargs, ticks)
