"""What the update being handled has already shown people, so a failed one is re-delivered only
when handling it again cannot show anything twice."""

from __future__ import annotations

from contextvars import ContextVar

# Calls that change what people see (a message, an edit, a press answered), per update.
_VISIBLE: ContextVar[list[str] | None] = ContextVar("visible_calls", default=None)


def track_visible_calls() -> None:
    """Start counting the current update's visible calls. Each update is handled in a task of its
    own, so the count stays set for the errors handler, which runs after the middlewares returned."""
    _VISIBLE.set([])


def note_call(method: str) -> None:
    made = _VISIBLE.get()
    if made is not None and not method.startswith("get"):
        made.append(method)


def visible_calls_made() -> bool:
    return bool(_VISIBLE.get())
