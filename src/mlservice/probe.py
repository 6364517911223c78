"""Asking a service over HTTP and waiting until something holds: one way for every tool.

`mlservice smoke`, the deploy scripts, scripts/container-test, the benchmarks and the tests use
these two helpers instead of loops and urllib calls of their own. Standard library only, so the
deploy scripts can use it before the project's environment exists.
"""

import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> object:
        return json.loads(self.body)


def http(
    method: str,
    url: str,
    *,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    timeout: float = 10,
) -> Reply:
    """One request. Any HTTP status is an answer (returned); no answer at all raises OSError."""
    if not url.startswith(("http://", "https://")):
        raise ValueError(f"{url!r} is not an http(s) URL")
    request = urllib.request.Request(url, data=body, headers=headers or {}, method=method)  # noqa: S310 (checked above)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 (checked above)
            return Reply(response.status, dict(response.headers), response.read())
    except urllib.error.HTTPError as error:
        return Reply(error.code, dict(error.headers), error.read())


class NotYet(Exception):
    """Raised by a check to say why it does not hold yet (kept as the reason if time runs out)."""


class WaitTimeout(Exception):
    def __init__(self, what: str, timeout: float, reason: str):
        super().__init__(
            f"gave up waiting for {what} after {timeout:g} s" + (f" ({reason})" if reason else "")
        )
        self.what, self.timeout, self.reason = what, timeout, reason


def wait_until(
    check: Callable[[], T],
    *,
    timeout: float,
    interval: float,
    what: str,
    retry_on: tuple[type[Exception], ...] = (NotYet,),
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """Call check() until it returns something truthy, and return that.

    A check that raises one of `retry_on` (NotYet; add OSError for a server that may not listen
    yet) has not held, and its message is the reason WaitTimeout gives when `timeout` seconds
    pass; any other exception ends the wait. check() runs at least once, and the last look comes
    at or after the deadline, so a wait never ends early.
    """
    deadline = clock() + timeout
    reason = ""
    while True:
        try:
            result = check()
        except retry_on as error:
            result, reason = None, str(error)
        if result:
            return result
        if clock() >= deadline:
            raise WaitTimeout(what, timeout, reason)
        sleep(min(interval, max(deadline - clock(), 0)))
