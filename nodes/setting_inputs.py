"""The core's setting checkers (:mod:`cinemo_core.settings`) applied to node inputs, naming the input.

ComfyUI checks a widget's min and max before the run; values from links arrive unchecked, so nodes check them
again when they run, by the same rules the standalone pipeline uses.
"""

from __future__ import annotations

from typing import Callable, Iterable

from ..cinemo_core.settings import SettingError

#: (input name, checker, value); a value of None is not known yet (a link, at validation time).
InputCheck = tuple[str, Callable[[object], object], object]


def input_problem(input_name: str, check: Callable[[object], object], value: object) -> str | None:
    """``"input_name: why"`` when ``check`` refuses ``value``, else None."""
    try:
        check(value)
    except SettingError as error:
        return f"{input_name}: {error}"
    return None


def input_problems(checks: Iterable[InputCheck]) -> list[str]:
    """Every refused input of ``checks``, skipping values not known yet (None)."""
    return [problem for name, check, value in checks if value is not None and (problem := input_problem(name, check, value))]


def check_inputs(checks: Iterable[InputCheck]) -> None:
    """Raise ``ValueError`` naming every refused input."""
    if problems := input_problems(checks):
        raise ValueError(" ".join(problems))
