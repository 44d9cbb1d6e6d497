"""Cut points by shares, shared by RFM quintiles and the learned 3:3:3:1 lifecycle."""

from __future__ import annotations

from collections.abc import Sequence


def cut_positions(n: int, shares: Sequence[int]) -> list[int]:
    """0-based positions in ascending order whose values cut n items into `shares`.

    Lets SQL fetch just those rows (ORDER BY … OFFSET i) instead of every customer's value.
    """
    if n <= 0:
        return []
    total = sum(shares)
    out, running = [], 0
    for share in shares[:-1]:
        running += share
        out.append(min(n - 1, max(0, (n * running + total - 1) // total - 1)))
    return out
