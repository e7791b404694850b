"""Outcome codes of the borderline engine and the layout of its per-pair state.

Pure Python (no extension needed): engine.py, reference.py, the reports and the atlas import these;
tests/test_build.py checks that csrc/common/bracket.h agrees with them.
"""

from __future__ import annotations

import enum

__all__ = [
    "Status",
    "STATUS_TEXT",
    "FAILURES",
    "F_LO",
    "F_HI",
    "F_G_LO",
    "F_G_HI",
    "I_ATTEMPTS",
    "I_STATUS",
    "I_INTRUDER",
    "I_SIDE",
    "EMPTY_ROW",
]


class Status(enum.IntEnum):
    """Outcome of one pair. PENDING never appears in a finished result.

    The one Python source of these codes: reference.py, the reports and the atlas derive theirs
    from it, and tests/test_build.py checks that csrc/common/bracket.h's StatusCode agrees.
    """

    PENDING = -1
    SUCCESS = 0  # |p_source - p_target| < beta at the returned point
    THIRD_CLASS = 1  # the evaluated point is predicted as a third class (see `intruder`)
    STALLED = 2  # the point equals a bracket end in the working precision: no progress left
    MAX_STEPS = 3  # max_steps points evaluated without success
    INVALID_BRACKET = 4  # a not predicted source or b not predicted target: not bisected
    NONFINITE = 5  # softmax undefined at an end or a point: NaN or +inf logits, or all -inf


#: what each failure means, for reports and logs
STATUS_TEXT = {
    Status.SUCCESS: "success",
    Status.THIRD_CLASS: "a third class won at the midpoint",
    Status.STALLED: "no progress left in float precision",
    Status.MAX_STEPS: "step cap reached",
    Status.INVALID_BRACKET: "ends not classified as s and t",
    Status.NONFINITE: "softmax undefined (NaN, +inf or all -inf logits)",
}
#: the outcomes a finished pair can have that are not SUCCESS
FAILURES = tuple(s for s in Status if s not in (Status.PENDING, Status.SUCCESS))

# Columns of the engine's per-pair state (csrc/common/bracket.h): fstate float64 [P, 4] and
# istate int64 [P, 4].
F_LO, F_HI, F_G_LO, F_G_HI = 0, 1, 2, 3
I_ATTEMPTS, I_STATUS, I_INTRUDER, I_SIDE = 0, 1, 2, 3
# The index of an empty slot in the engine's fixed-size live batch (bracket_propose / bracket_update
# read and write no pair state for it; csrc/common/bracket.h, kEmptyRow).
EMPTY_ROW = -1
