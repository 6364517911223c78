"""Helpers for tests: the project's own command-line tools (.venv/bin), a local registry,
Prometheus samples read with prometheus_client's own parser, the docs' curl examples and
README's list of the files a user edits for their own model."""

import json
import os
import re
import shlex
import shutil
import socket
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from mlservice.probe import WaitTimeout, http, wait_until

ROOT = Path(__file__).resolve().parents[1]
BIN = ROOT / ".venv" / "bin"


def unavailable(message: str) -> None:
    """Skip on a laptop; under CI=true (which installs every tool the tests drive) fail."""
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


def require(tool: str, how: str) -> str:
    """The path of `tool`, or unavailable() saying `how` to get it."""
    found = shutil.which(tool)
    if found is None:
        unavailable(f"{tool} is not installed ({how})")
    return found


def run_tool(*args: str) -> subprocess.CompletedProcess:
    """Run .venv/bin/<args[0]> in the repository root; the caller checks the result."""
    return subprocess.run(
        [str(BIN / args[0]), *args[1:]],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@contextmanager
def running_registry(binary: str, tmp: Path, htpasswd: Path | None = None) -> Iterator[str]:
    """Debian's docker-registry on a free loopback port (basic auth if htpasswd is given);
    yields its host:port, stops it afterwards."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = {
        "version": 0.1,
        "storage": {"filesystem": {"rootdirectory": str(tmp / "data")}},
        "http": {"addr": f"127.0.0.1:{port}"},
    }
    if htpasswd:
        config["auth"] = {"htpasswd": {"realm": "registry", "path": str(htpasswd)}}
    (tmp / "config.yml").write_text(json.dumps(config))  # JSON is YAML
    log_path = tmp / "registry.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [binary, "serve", str(tmp / "config.yml")], stdout=log, stderr=log
        )

    def up() -> bool:
        if process.poll() is not None:
            pytest.fail(f"docker-registry exited: {log_path.read_text()}")
        # With auth, it is up when it asks for credentials.
        return http("GET", f"http://127.0.0.1:{port}/v2/", timeout=2).status == (
            401 if htpasswd else 200
        )

    try:
        try:
            wait_until(up, timeout=20, interval=0.2, what="docker-registry", retry_on=(OSError,))
        except WaitTimeout as error:
            pytest.fail(f"{error}: {log_path.read_text()}")
        yield f"127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=10)


Samples = dict[tuple[str, frozenset], float]


def metric_samples(text: str) -> Samples:
    """Every sample of a /metrics answer by (name, labels)."""
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def sample(samples: Samples, name: str, **labels: str) -> float:
    """One sample's value; 0 when the series does not exist (nothing counted yet)."""
    return samples.get((name, frozenset(labels.items())), 0.0)


def requests_total(samples: Samples, route: str, method: str, status: str) -> float:
    return sample(
        samples, "mlservice_http_requests_total", route=route, method=method, status=status
    )


YOUR_MODEL_FILES = re.compile(
    r"<!-- your-model-files:start -->(.*?)<!-- your-model-files:end -->", re.DOTALL
)


def your_model_files(readme: Path = ROOT / "README.md") -> list[str]:
    """The paths README's "Bring your own model" tells a user to edit (folders end in /)."""
    [table] = YOUR_MODEL_FILES.findall(readme.read_text())
    return re.findall(r"^\| `([^`]+)` \|", table, flags=re.MULTILINE)


# --- The docs' curl examples: each command with the output it shows --------------------------


def shell_commands(block: str):
    """(command, shown output) for each command in a ```sh block.

    The output is the comment on the command's last line when it starts with `{`, else the
    comment lines right below the command; prose comments (`# the model card`) show none.
    """
    lines = block.splitlines()
    index, pending = 0, []
    while index < len(lines):
        line = lines[index]
        index += 1
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        pending.append(line)
        text = "\n".join(pending)
        try:
            shlex.split(text)
        except ValueError:
            continue  # a quoted string goes on over the next line
        if line.endswith("\\"):
            continue
        command, shown = text, []
        inline = re.search(r"\s+# (.*)$", line)
        if inline:
            command = text[: len(text) - len(line) + inline.start()]
            if inline[1].startswith("{"):
                shown = [inline[1]]
        while not inline and index < len(lines) and lines[index].startswith("# "):
            shown.append(lines[index][2:])
            index += 1
        yield command, "\n".join(shown)
        pending = []


def curl_examples(markdown: str) -> list[tuple[dict, str]]:
    """README's curl commands against the local service, each with the output it shows."""
    examples = []
    for block in re.findall(r"^```sh\n(.*?)^```", markdown, flags=re.M | re.S):
        for command, shown in shell_commands(block):
            tokens = shlex.split(command.replace("\\\n", " "))
            if "curl" not in tokens or not shown:
                continue
            stdin = None
            if tokens[0] == "printf":
                stdin = tokens[1].replace("\\n", "\n")
                tokens = tokens[tokens.index("|") + 1 :]
            request = {"method": "GET", "headers": {}, "data": None}
            args = iter(tokens[1:])
            for arg in args:
                if arg == "-H":
                    name, value = next(args).split(": ", 1)
                    request["headers"][name] = value
                elif arg in {"-d", "--data-binary"}:
                    value = next(args)
                    request["method"] = "POST"
                    request["data"] = stdin if value == "@-" else value
                elif arg.startswith("localhost:8000/"):
                    request["path"] = arg.removeprefix("localhost:8000")
            examples.append((request, shown))
    return examples


def pattern(shown: str) -> re.Pattern:
    """The shown output as a pattern: `0.98…` stands for more digits, any other `…` for more."""
    parts = []
    for piece in re.split(r"(\d…|\s*…,?\s*)", shown):
        if re.fullmatch(r"\d…", piece):
            parts.append(re.escape(piece[0]) + r"\d*")
        elif piece.strip(" ,") == "…":
            parts.append(".*?")
        else:
            parts.append(re.escape(piece))
    return re.compile("".join(parts))


def answers_as_shown(client, request: dict, shown: str) -> str | None:
    """Why the app's answer to a curl example differs from the output shown, or None."""
    status = re.match(r"(\d{3}) ", shown)
    response = client.open(
        request["path"], method=request["method"], data=request["data"], headers=request["headers"]
    )
    expected = int(status[1]) if status else 200
    body = response.get_data(as_text=True).strip()
    if response.status_code != expected:
        return f"{request['path']} answered {response.status_code}, not {expected}: {body[:300]}"
    if not pattern(shown.removeprefix(status[0]) if status else shown).fullmatch(body):
        return f"{request['path']} answered {body[:300]!r}, not as shown: {shown!r}"
    return None


def copy_model(model_path: Path, folder: Path) -> Path:
    """Copy the model artifact, its card and its ONNX compile (when there is one) into folder."""
    for path in (model_path, model_path.with_suffix(".json"), model_path.with_suffix(".onnx")):
        if path.exists():
            shutil.copy(path, folder)
    return folder / model_path.name
