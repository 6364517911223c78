"""The documentation shows what the project really does: README's curl examples answer as shown,
`make help` names real values, and the performance table says how it was measured."""

import re
import shlex
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"


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


EXAMPLES = curl_examples(README.read_text())


def test_the_readme_has_curl_examples_to_check():
    # Two JSON predictions, a CSV batch, the answers example and /readyz.
    assert len(EXAMPLES) >= 5
    assert {"/api/v1/predict", "/readyz"} <= {request["path"] for request, _ in EXAMPLES}


@pytest.mark.parametrize(
    ("request_", "shown"), EXAMPLES, ids=[request["path"][:30] for request, _ in EXAMPLES]
)
def test_readme_curl_example_answers_as_shown(client, request_, shown):
    status = re.match(r"(\d{3}) ", shown)
    response = client.open(
        request_["path"],
        method=request_["method"],
        data=request_["data"],
        headers=request_["headers"],
    )
    assert response.status_code == (int(status[1]) if status else 200)
    body = response.get_data(as_text=True).strip()
    assert pattern(shown.removeprefix(status[0]) if status else shown).fullmatch(body), body


@pytest.mark.parametrize(
    ("shown", "body", "matches"),
    [
        ('{"p":0.981…}', '{"p":0.9813107}', True),
        ('{"p":0.981…}', '{"p":0.9913107}', False),
        ('{"p":0.981…}', '{"p":0.981,"q":1}', False),
        ('{"a":"…","b":1}', '{"a":"x","b":1}', True),
        ('{"a":1, …}', '{"a":1,"b":2}', True),
        ('{"a":1, …}', '{"a":2,"b":2}', False),
        ('[{"a":1, …, "c":3}, …]', '[{"a":1,"b":2,"c":3},{"a":4}]', True),
        ('[{"a":1, …, "c":3}, …]', '[{"a":1,"b":2,"c":4},{"a":4}]', False),
        ("x,2.21…e-05", "x,2.2159e-05", True),
    ],
)
def test_shown_output_patterns(shown, body, matches):
    assert bool(pattern(shown).fullmatch(body)) is matches


def make_help(*args: str) -> str:
    done = subprocess.run(
        ["make", "--no-print-directory", "help", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return done.stdout


def test_make_help_shows_the_values_of_variables_it_names():
    default = make_help()
    assert "$(" not in default
    assert "on http://127.0.0.1:8000\n" in default
    assert "Build the container image mlservice:local " in default
    custom = make_help("HOST=0.0.0.0", "PORT=9123", "IMAGE=example/image:tag")
    assert "on http://0.0.0.0:9123\n" in custom
    assert "Build the container image example/image:tag " in custom


def test_the_performance_table_says_how_to_measure_it_again():
    doc = (ROOT / "docs" / "performance.md").read_text()
    table = doc[doc.index("<!-- bench:start -->") : doc.index("<!-- bench:end -->")]
    seconds = re.search(r"\bwrk -t\d+ -c\d+ -d(\d+)s\b", table)[1]
    bench = (ROOT / "scripts" / "bench.py").read_text()
    default = re.search(r'"--seconds", type=int, default=(\d+)', bench)[1]
    # Measured with make bench's duration, or the line names the command that was run.
    assert seconds == default or f"scripts/bench.py --seconds {seconds}" in table
