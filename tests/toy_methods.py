"""Methods for the toy task, honest and otherwise, used by the harness tests."""

from __future__ import annotations

import math
import os
import time


def estimate(train, ctx):
    """Running mean, checkpointed every 100 samples."""
    total, n = 0.0, 0
    for _ in range(int(ctx.limits["samples"]) // 100):
        x = train.draw(100)
        total, n = total + x.sum(), n + 100
        ctx.count(100)
        ctx.checkpoint(total / n, step=n)
    return total / n


def zero(train, ctx):
    return 0.0


def crash(train, ctx):
    raise RuntimeError("boom")


def slow(train, ctx):
    while True:
        time.sleep(0.2)
        ctx.checkpoint(float(train.draw(10).mean()))


def temp_files_then_hang(train, ctx):
    """Leaves a file in the temporary folder, says where, then hangs until killed at the cap."""
    import tempfile

    fd, path = tempfile.mkstemp(suffix=".left-behind")
    os.write(fd, b"x" * 1000)
    os.close(fd)
    ctx.record_config(temp_file=path)
    ctx.checkpoint(float(train.draw(100).mean()))
    while True:
        time.sleep(1.0)


def hang(train, ctx):
    """Checkpoints once, then sleeps for ever without checkpointing again."""
    ctx.checkpoint(float(train.draw(100).mean()))
    while True:
        time.sleep(1.0)


def exit_3(train, ctx):
    import sys

    sys.exit(3)


def hard_exit(train, ctx):
    ctx.checkpoint(float(train.draw(100).mean()))
    os._exit(1)


def segfault(train, ctx):
    import ctypes

    ctypes.string_at(0)


def hog_memory(train, ctx):
    """Allocates 64 MiB blocks, touching every page, until something stops it."""
    import numpy as np

    ctx.checkpoint(float(train.draw(100).mean()))
    blocks = []
    while True:
        blocks.append(np.ones(8 * 2**20))


def hog_memory_small_pages(train, ctx):
    """Allocates 64 MiB blocks of anonymous memory in 4 KiB pages, touching every page, up to 2 GiB
    (above any cap a test sets; a run whose cap holds never gets there), then waits to be killed.

    Not numpy: numpy asks for transparent huge pages for large arrays, and on a VM whose balloon
    reports free 2 MiB blocks to the host (free page reporting) each huge page faults back in from
    the host at about 70 MiB/s, so a hog can take seconds to reach its cap. 4 KiB pages, asked for
    with MADV_NOHUGEPAGE, come in at about 2 GiB/s there."""
    import mmap

    ctx.checkpoint(float(train.draw(100).mean()))
    block, page, blocks = 64 * 2**20, mmap.PAGESIZE, []
    while len(blocks) * block < 2 * 2**30:
        m = mmap.mmap(-1, block, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
        if hasattr(mmap, "MADV_NOHUGEPAGE"):
            m.madvise(mmap.MADV_NOHUGEPAGE)
        m[::page] = b"\1" * (block // page)
        blocks.append(m)
    while True:
        time.sleep(1.0)


def nan(train, ctx):
    return math.nan


def wrong_type(train, ctx):
    return "not a number"


def no_solution(train, ctx):
    return None


def unpicklable(train, ctx):
    return lambda: 0.0


def bisect(train, ctx):
    """Finds the mean by asking the task 40 times whether it lies above a guess (ctx.ask)."""
    lo, hi = -5.0, 5.0
    for _ in range(40):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if ctx.ask(mid) else (lo, mid)
    return (lo + hi) / 2


def ask_forever(train, ctx):
    """Asks past the task's limit of 64: the task's refusal is a ValueError here."""
    for i in range(100):
        ctx.ask(float(i))
    return 0.0


def markup_error(train, ctx):
    """An error whose text looks like rich markup: printed as text, never interpreted."""
    raise RuntimeError("unbalanced [/bold] and [link=file:///x]closing[/link] tags")


def borrows_a_baseline(train, ctx):
    """A plugin that reaches for advbench's own baselines (refused: plugins get contracts only)."""
    import advbench.baselines.pc  # noqa: F401

    return 0.0


def bisect_and_boast(train, ctx):
    """Asks honestly, then claims a trillion units of work (ctx.count is the method's word)."""
    ctx.count(1e12)
    return bisect(train, ctx)


class LazyEstimate:
    """Its training happens when the scoring process first asks for it: ``seconds`` of CPU."""

    def __init__(self, draws, seconds: float) -> None:
        self.draws, self.seconds = draws, seconds

    def estimate(self) -> float:
        import time

        end = time.process_time() + self.seconds
        while time.process_time() < end:  # the deferred "training"
            pass
        return float(self.draws.mean())


def lazy_one_second(train, ctx):
    """Hands in untrained draws at once; the work (0.6 s of CPU) waits for the scoring process."""
    solution = LazyEstimate(train.draw(2000), 0.6)
    ctx.checkpoint(solution, step=1)
    return solution


def lazy_five_seconds(train, ctx):
    solution = LazyEstimate(train.draw(2000), 5.0)
    ctx.checkpoint(solution, step=1)
    return solution


def checkpoint_flood(train, ctx):
    """Hands in checkpoints until the harness refuses one (past 1000: it keeps them until scoring)."""
    value = float(train.draw(1000).mean())
    handed = 0
    try:
        while handed < 2000:
            ctx.checkpoint(value, step=handed)
            handed += 1
    except ValueError as exc:
        ctx.record_config(handed=handed, refused=str(exc))
    return value
