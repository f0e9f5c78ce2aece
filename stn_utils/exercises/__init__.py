"""Answer checks for the notebooks' exercises, one module per notebook.

Every check takes the reader's answer, prints whether it is right (and a hint when it
is not) and returns ``True`` or ``False``. An answer left at ``None`` is reported as
not attempted, so a notebook still runs top to bottom before the reader has tried.
"""

from __future__ import annotations

__all__ = ["report"]


def report(passed: bool, hint: str = "", *, answer=0) -> bool:
    """Print the verdict on an answer and return ``passed``.

    Args:
        passed: whether the answer is right.
        hint: what to look at again when it is not.
        answer: the reader's answer; ``None`` means "not attempted yet".
    """
    if answer is None:
        print("Not answered yet: replace the None above with your answer and run the cell again.")
        return False
    if passed:
        print("Correct!")
    else:
        print("Not quite. " + hint)
    return bool(passed)
