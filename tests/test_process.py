"""mlservice.process: the process id without a system call, right after a fork too."""

import os

from mlservice import process


def test_the_id_is_this_process_s():
    assert process.pid() == os.getpid()


def test_a_forked_child_knows_its_own_id():
    # gunicorn forks its workers from a master that has already imported the service.
    reader, writer = os.pipe()
    child = os.fork()
    if child == 0:  # the child: report what it is told, then leave at once
        os.write(writer, str(process.pid()).encode())
        os._exit(0)
    os.close(writer)
    told = os.read(reader, 32)
    os.close(reader)
    os.waitpid(child, 0)
    assert int(told) == child != os.getpid()


def test_the_fork_hook_reads_the_id_again(monkeypatch):
    monkeypatch.setattr(process.os, "getpid", lambda: 4242)
    monkeypatch.setattr(process, "_pid", process._pid)  # restored after the test
    process._forked()
    assert process.pid() == 4242
