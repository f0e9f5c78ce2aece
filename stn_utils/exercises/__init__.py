"""Answer checks for the notebooks' exercises, one module per notebook.

Every check takes the reader's answer, prints whether it is right (and a hint when it
is not) and returns ``True`` or ``False``. An answer left at ``None``, or a function
stub that still raises ``NotImplementedError``, is reported as not answered yet, so a
notebook still runs top to bottom before the reader has tried.

Two kinds of exercise:

- the reader types a value (a theta, a number, a string) and a per-notebook check
  compares it with the right one, using :func:`report` for the verdict;
- the reader writes a function and :func:`check_function` runs it next to the
  package's reference on seeded random inputs (:class:`Case`), comparing shapes, values
  and, where they matter, gradients; :class:`Mistake` turns a known wrong version into
  a hint.
"""

from __future__ import annotations

import math

__all__ = ["report", "finite_numbers", "check_function", "Case", "Mistake", "borrowed_name"]

_TODO = "replace the None above with your answer and run the cell again."


def report(passed: bool, hint: str = "", *, answer=0, todo: str = _TODO, detail: str = "") -> bool:
    """Print the verdict on an answer and return ``passed``.

    Prints ``"Correct!"`` (followed by ``detail``, if given), ``"Not quite. <hint>"``, or,
    when ``answer`` is ``None``, ``"Not answered yet: <todo>"`` and returns ``False``.

    Args:
        passed: whether the answer is right.
        hint: what to look at again when it is not.
        answer: the reader's answer; ``None`` means "not attempted yet".
        todo: what the reader should do, for an answer not attempted yet.
        detail: what was checked, printed after ``"Correct!"``.
    """
    if answer is None:
        print("Not answered yet: " + todo)
        return False
    if passed:
        print("Correct!" + (" " + detail if detail else ""))
    else:
        print("Not quite. " + hint)
    return bool(passed)


def finite_numbers(answer, count: int) -> list[float] | None:
    """``answer`` as ``count`` finite floats (a tuple or list of numbers), or ``None`` when
    it is not that: for checks whose answer is a few numbers, e.g. ``(x, y, side)``."""
    try:
        values = [float(v) for v in answer]
    except (TypeError, ValueError):
        return None
    return values if len(values) == count and all(math.isfinite(v) for v in values) else None


# Imported after report, which the module uses.
from .functions import Case, Mistake, borrowed_name, check_function  # noqa: E402
