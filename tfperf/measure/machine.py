"""The machine's state during a block, read with psutil: CPU steal, the CPU other processes used, the load.

A block's rows are marked unstable when others used more than ``BUSY_OTHERS`` of the machine's CPU or the
hypervisor took more than ``BUSY_STEAL`` while it ran: a comparison measured beside another heavy process is not
a finding. The processes a scenario started itself (tf.data service workers, trainers) are its own work.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import psutil

BUSY_OTHERS = 0.10  # other processes used more than 10% of the machine's CPU during the block
BUSY_STEAL = 0.05  # the hypervisor took more than 5%


def cpu_seconds(pids: Sequence[int]) -> float:
    """CPU seconds (user + system) the processes have used (0 for one that is gone)."""
    total = 0.0
    for pid in pids:
        try:
            t = psutil.Process(pid).cpu_times()
            total += t.user + t.system
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            pass
    return total


@dataclass(frozen=True)
class Snapshot:
    wall: float
    cpu: Any  # psutil's system-wide cpu_times()
    own: float  # CPU seconds of this process and of the pids given


def snapshot(pids: Sequence[int] = ()) -> Snapshot:
    me = psutil.Process().cpu_times()
    return Snapshot(time.monotonic(), psutil.cpu_times(), me.user + me.system + cpu_seconds(pids))


def load(before: Snapshot, after: Snapshot) -> dict[str, Any]:
    """CPU steal, and the share of the machine's CPU that processes other than this one (and the processes it
    started) used, between two snapshots."""
    seconds = after.wall - before.wall
    out: dict[str, Any] = {"seconds": round(seconds, 3), "loadavg_1m": psutil.getloadavg()[0]}
    if seconds <= 0:
        return out
    a, b = before.cpu, after.cpu
    busy = sum(getattr(b, k, 0.0) - getattr(a, k, 0.0) for k in ("user", "nice", "system", "irq", "softirq"))
    steal = getattr(b, "steal", 0.0) - getattr(a, "steal", 0.0)
    capacity = seconds * (psutil.cpu_count() or 1)
    out["steal_share"] = round(steal / capacity, 4)
    out["others_cpu_share"] = round(max(0.0, busy - (after.own - before.own)) / capacity, 4)
    out["busy"] = out["others_cpu_share"] > BUSY_OTHERS or out["steal_share"] > BUSY_STEAL
    return out
