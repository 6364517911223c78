"""Shared by the stand-ins in bin/: record each call, keep state between calls.

A stand-in appends {"argv": [...], "stdin": ..., "files": {path: content}} as one JSON line to
$STANDIN_LOG (file:// arguments are read at call time: the deploy scripts delete them after), and
keeps what the fake cloud holds in $STANDIN_STATE (a JSON file the test writes first).
"""

import json
import os
import sys
from pathlib import Path


def record(stdin: bool = False) -> list[str]:
    argv = sys.argv[1:]
    files = {
        arg[len("file://") :]: Path(arg[len("file://") :]).read_text()
        for arg in argv
        if arg.startswith("file://")
    }
    entry = {"tool": Path(sys.argv[0]).name, "argv": argv, "files": files}
    if stdin:
        entry["stdin"] = sys.stdin.read()
    with open(os.environ["STANDIN_LOG"], "a", encoding="utf-8") as log:
        log.write(json.dumps(entry) + "\n")
    return argv


def load() -> dict:
    return json.loads(Path(os.environ["STANDIN_STATE"]).read_text())


def save(state: dict) -> None:
    Path(os.environ["STANDIN_STATE"]).write_text(json.dumps(state, indent=2))


def option(argv: list[str], name: str) -> str:
    """The value after `name`, or of `name=value`."""
    for i, arg in enumerate(argv):
        if arg == name:
            return argv[i + 1]
        if arg.startswith(name + "="):
            return arg.split("=", 1)[1]
    raise SystemExit(f"stand-in: {name} missing from {argv}")


def fail(message: str, code: int = 1) -> None:
    print(message, file=sys.stderr)
    raise SystemExit(code)
