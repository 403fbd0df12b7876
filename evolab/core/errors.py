"""Errors whose message says what to do: a stage prints them without a traceback."""
from __future__ import annotations

from typing import Any


class StageError(RuntimeError):
    pass


class ConfigError(ValueError):
    """Bad user input; the message names the problem and the fix."""


class BackendUnavailable(StageError):
    """A backend that cannot run at all (its engine failed to build): no request can pass, so the stage stops
    at once instead of recording every request as a failure."""


class BudgetReached(StageError):
    """A stage spent its teacher budget (teacher.budget_tokens): it stops before the next live call; every
    answer so far is in the response cache, so raising the budget and rerunning resumes it."""


class TeacherUnreachable(StageError):
    """Every teacher call of a stage failed: the teacher is down or misconfigured, not the data."""


def check_teacher(calls: list[tuple[str, list[str]]], what: str, teacher: Any) -> None:
    """Every call of a stage failed (`calls`: each call's reason and errors): stop, naming the teacher (its settings:
    schema.TeacherSettings or a subclass)."""
    if calls and all(reason == "teacher_error" for reason, _ in calls):
        raise TeacherUnreachable(
            f"every teacher call of {what} failed, e.g. {calls[0][1][-1][:300]}. Check the teacher "
            f"({teacher.backend}, {getattr(teacher, 'base_url', None) or teacher.model}) "
            "and rerun: answers received so far are cached.")
