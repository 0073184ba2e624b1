"""The embedded supervisor's restart of kept-up services, alone (no processes): what is restarted,
and how a service that keeps failing to start is retried without holding up the rest."""

from __future__ import annotations

from typing import Any

from scheduler.dev.supervisor import Supervisor
from shared.settings import Settings


class Proc:
    def __init__(self, code: int | None) -> None:
        self.returncode = code

    def poll(self) -> int | None:
        return self.returncode


class FakeStack:
    def __init__(self) -> None:
        self.procs: dict[str, Any] = {}


def supervisor(stack: FakeStack, start: Any) -> Supervisor:
    # Redis and the broker are never reached: only the restart step runs here.
    settings = Settings(redis_url="redis://127.0.0.1:1/0")
    return Supervisor(stack, settings, [], keep_up={"delivery": start})  # type: ignore[arg-type]


def test_only_an_exited_service_is_started_again() -> None:
    stack, started = FakeStack(), []

    def start() -> None:
        started.append(1)
        stack.procs["delivery"] = Proc(None)

    sup = supervisor(stack, start)
    sup._restart_exited()  # not started by the stack (or stopped through it): left alone
    stack.procs["delivery"] = Proc(None)
    sup._restart_exited()  # running
    assert started == []
    stack.procs["delivery"] = Proc(-9)
    sup._restart_exited()
    sup._restart_exited()  # the new one runs
    assert started == [1]


def test_a_failing_start_is_retried_later_with_a_growing_delay() -> None:
    stack, tries = FakeStack(), []

    def start() -> None:
        tries.append(1)
        stack.procs["delivery"] = Proc(1)
        raise RuntimeError("exited during start")

    sup = supervisor(stack, start)
    stack.procs["delivery"] = Proc(-9)
    sup._restart_exited()
    sup._restart_exited()  # within the delay: not tried again
    assert len(tries) == 1 and sup.restart_delay_s("delivery") == 1.0
    sup.retry_at["delivery"] = 0  # the delay has passed
    sup._restart_exited()
    assert len(tries) == 2 and sup.restart_delay_s("delivery") == 2.0


def test_nothing_starts_once_stopping() -> None:
    stack, started = FakeStack(), []
    sup = supervisor(stack, lambda: started.append(1))
    stack.procs["delivery"] = Proc(-9)
    sup.stop_event.set()
    sup._restart_exited()
    assert started == []
