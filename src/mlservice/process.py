"""This process's id, without a system call each time it is asked.

os.getpid() is a system call, and a request asks for the id several times: its log line, each
metric it counts (prometheus_client checks for a fork before every write) and the ONNX session.
The id is read once, and again in the child after each os.fork(), which is how gunicorn starts
its workers.
"""

import os

_pid = os.getpid()


def _forked() -> None:
    global _pid
    _pid = os.getpid()


os.register_at_fork(after_in_child=_forked)


def pid() -> int:
    """The id of the running process, as os.getpid() would say."""
    return _pid
