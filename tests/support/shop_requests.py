"""A stand-in for ``Shop.request`` (``lambdamesh.chaos.shoppers``): answers from a script.

The chaos run's shoppers and the load run's clients send every request through
``Shop.request``; their tests put this in its place, then read what was sent.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pytest

    from lambdamesh.chaos.shoppers import Shop

Answer = tuple[int, Any, dict[str, str]] | Exception
"""Status, decoded body and headers; or what the request raises instead."""


class ScriptedRequests:
    """Answers in the order given, and records every request; safe to call from threads.

    Parameters
    ----------
    answers
        The answers, first first.
    otherwise
        The answer once the script has run out (``None``: running out is an ``IndexError``).
    """

    def __init__(self, answers: list[Answer], *, otherwise: Answer | None = None) -> None:
        self.answers = answers
        self.otherwise = otherwise
        self.requests: list[tuple[str, str, Any, dict[str, str]]] = []
        self._lock = threading.Lock()

    def __call__(
        self, method: str, url: str, body: Any = None, headers: dict[str, str] | None = None
    ) -> tuple[int, Any, dict[str, str]]:
        with self._lock:
            self.requests.append((method, url, body, dict(headers or {})))
            if self.answers or self.otherwise is None:
                answer = self.answers.pop(0)
            else:
                answer = self.otherwise
        if isinstance(answer, Exception):
            raise answer
        return answer


def script(
    monkeypatch: pytest.MonkeyPatch, shop: Shop, *answers: Answer, otherwise: Answer | None = None
) -> ScriptedRequests:
    """Make ``shop`` answer from ``answers`` (then ``otherwise``); the script, to read back."""
    scripted = ScriptedRequests(list(answers), otherwise=otherwise)
    monkeypatch.setattr(shop, "request", scripted)
    return scripted
