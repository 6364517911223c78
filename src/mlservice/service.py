"""The Flask class the service's app is made from."""

import functools

from flask import Flask


class Service(Flask):
    """Flask, keeping ensure_sync's answers.

    Flask asks `inspect` on every request, of every request hook and view it calls, whether it is
    a coroutine function; the answer never changes, so it is looked up once (`make bench`). The
    cache is bounded: functions made per request (after_this_request) do not pile up in it.
    """

    ensure_sync = functools.lru_cache(maxsize=256)(Flask.ensure_sync)
