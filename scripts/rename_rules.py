"""The naming rule of scripts/rename: the package name a repository gets, and how each place in
the project spells it. docs/template.md documents both; tests/test_rename_rules.py checks them.

Standard library only: the rename runs before `make env`, and from copier's own checkout of the
template. Nothing here depends on the Python version or on what is installed, so every run of
the rename (the first one, and copier's re-runs for each template version) writes the same tree.
"""

from __future__ import annotations

import io
import json
import keyword
import re
import sys
import tokenize
import tomllib
from collections.abc import Iterable
from pathlib import Path

OLD = "mlservice"

# -- The package name ------------------------------------------------------------------------

# What GitHub accepts as a repository name.
GITHUB_NAME = re.compile(r"[A-Za-z0-9._-]{1,100}")
# Lowercase words of letters and digits joined by single underscores, the first word starting
# with a letter: a Python identifier whose dash form is a valid distribution, image and
# Lightsail/App Engine service name.
PACKAGE = re.compile(r"[a-z][a-z0-9]*(?:_[a-z0-9]+)*")
# The longest name derived from the package name, the Lightsail staging service NAME-staging
# (docs/deploy/lightsail.md), must stay within Lightsail's 63 characters.
MAX_LENGTH = 63 - len("-staging")
# Before a repository name that starts with a digit (Python names cannot).
DIGIT_PREFIX = "app"
# Standard-library modules the running Python may not list: removed in 3.12 and 3.13, or new in
# 3.14. A package must not shadow them on any supported Python, and the rule must not depend on
# the Python that runs it.
OTHER_STDLIB = frozenset(
    {
        *("asynchat", "asyncore", "distutils", "imp", "smtpd"),  # removed in 3.12
        *("aifc", "audioop", "cgi", "cgitb", "chunk", "crypt", "imghdr", "lib2to3", "mailcap"),
        *("msilib", "nis", "nntplib", "ossaudiodev", "pipes", "sndhdr", "spwd", "sunau"),
        *("telnetlib", "uu", "xdrlib"),  # removed in 3.13
        *("annotationlib", "compression"),  # new in 3.14
    }
)
STDLIB = frozenset(sys.stdlib_module_names) | OTHER_STDLIB
# Locked packages whose import names differ from their distribution names. The lock has no
# import names; tests/test_rename_rules.py checks this list against the installed environment.
IMPORT_NAMES = {
    "attrs": ("attr",),
    "boolean-py": ("boolean",),
    "cyclonedx-python-lib": ("cyclonedx",),
    "graphql-core": ("graphql",),
    "linkify-it-py": ("linkify_it",),
    "markdown-it-py": ("markdown_it",),
    "opentelemetry-api": ("opentelemetry",),
    "packageurl-python": ("packageurl",),
    "pip-requirements-parser": ("packaging_legacy_version",),
    "protobuf": ("google",),
    "pytest": ("py",),
    "pytest-xdist": ("xdist",),
    "python-dateutil": ("dateutil",),
    "pyyaml": ("yaml",),
    "rpds-py": ("rpds",),
    "ruamel-yaml": ("ruamel",),
    "scikit-learn": ("sklearn",),
}


class RenameError(Exception):
    """A name that cannot be the package's; the message is one line."""


def normalized(distribution: str) -> str:
    """A distribution name as PEP 503 compares it: lowercase, runs of -_. as one dash."""
    return re.sub(r"[-_.]+", "-", distribution).lower()


def dependency_names(lock: str) -> frozenset[str]:
    """Every import name the locked packages (dev tools included) may take, from uv.lock's text:
    each distribution name in import form, and the import names that differ from it."""
    names: set[str] = set()
    for package in tomllib.loads(lock).get("package", []):
        distribution = normalized(package["name"])
        names.add(distribution.replace("-", "_"))
        names.update(IMPORT_NAMES.get(distribution, ()))
    return frozenset(names)


def package_from_repository(repository: str) -> str:
    """The package name for a repository name: lowercase words of its letters and digits joined
    by underscores, `app_` before a leading digit, trailing words dropped past MAX_LENGTH."""
    if not GITHUB_NAME.fullmatch(repository):
        raise RenameError(
            f"{repository!r} is not a GitHub repository name (letters, digits, '-', '_' and '.',"
            " at most 100 characters)"
        )
    words = re.findall(r"[a-z0-9]+", repository.lower())
    if not words:
        raise RenameError(f"{repository!r} has no letter or digit to make a package name of")
    if words[0][0].isdigit():
        words[0] = f"{DIGIT_PREFIX}_{words[0]}"
    while len(words) > 1 and len("_".join(words)) > MAX_LENGTH:
        words.pop()
    return "_".join(words)[:MAX_LENGTH]


def check_package(name: str, dependencies: Iterable[str], folders: Iterable[str]) -> None:
    """Refuse a name that cannot be the import name of a new, distinct package here."""
    if not PACKAGE.fullmatch(name):
        raise RenameError(
            f"{name!r} is not a package name: use lowercase letters, digits and single"
            " underscores, starting with a letter (e.g. loan_default)"
        )
    if len(name) > MAX_LENGTH:
        raise RenameError(
            f"{name!r} is {len(name)} characters long: at most {MAX_LENGTH}, so that"
            " NAME-staging is a valid Lightsail service name"
        )
    if keyword.iskeyword(name):
        raise RenameError(f"{name!r} is a Python keyword, so it cannot be imported")
    if keyword.iskeyword(spell(name, "class")):
        raise RenameError(f"{name!r} is {spell(name, 'class')} as a class name, a Python keyword")
    if name in STDLIB:
        raise RenameError(f"{name!r} is a standard-library module; the package would shadow it")
    if name in set(dependencies):
        raise RenameError(
            f"{name!r} is the import name of a dependency; the package would shadow it"
        )
    if name in {"tests", *folders}:
        raise RenameError(f"{name!r} is a folder of this repository; choose another name")


# -- How each place spells it ----------------------------------------------------------------

SNAKE, KEBAB, UPPER, CAMEL = "loan_default", "loan-default", "LOAN_DEFAULT", "LoanDefault"
# Where the name appears → how it is spelled there, shown for the package loan_default.
CONTEXTS = {
    "import": SNAKE,  # import name, package folder src/NAME/, dotted names (NAME.wsgi:app)
    "identifier": SNAKE,  # a Python name in code, or part of a snake_case word
    "shell variable": SNAKE,  # $NAME, NAME=… in a shell script
    "constant": UPPER,  # a Python constant
    "environment variable": UPPER,  # and any other name in capitals
    "class": CAMEL,  # a mixed-case name such as a class
    "distribution": KEBAB,  # pyproject.toml and uv.lock, pip, importlib.metadata
    "console script": KEBAB,  # the commands NAME and NAME-server
    "image": KEBAB,  # OCI image names (lowercase): NAME:local, NAME/python-base
    "service": KEBAB,  # Lightsail and App Engine service names (<= 63 a-z, 0-9, -)
    "title": KEBAB,  # titles and prose: the README, the page, the OpenAPI document
}


def spell(package: str, context: str) -> str:
    """The package name as CONTEXTS says it is written in `context`."""
    words = package.split("_")
    return {
        SNAKE: package,
        KEBAB: "-".join(words),
        UPPER: package.upper(),
        CAMEL: "".join(word.capitalize() for word in words),
    }[CONTEXTS[context]]


# -- Which context each occurrence is in -----------------------------------------------------

# The name as a word of its own, in any case, or at the start of a CamelCase one (MlserviceError).
WORD = re.compile(
    rf"(?<![A-Za-z0-9])(?:{OLD.upper()}(?![A-Za-z0-9])|(?!{OLD.upper()})(?i:{OLD})(?![a-z0-9]))"
)
PYTHON, SHELL, TOML, TEXT = "python", "shell", "toml", "text"
# Before an occurrence, on its line: the Python import name follows.
IMPORT_BEFORE = re.compile(r"(\bsrc/|\bimport |\bfrom |(^|\s)-m |--cov=|\{\s*)$")
# A variable: before an occurrence anywhere; before or around one in a shell script.
VARIABLE_BEFORE = re.compile(r"\$\{?[!#]?$")
SHELL_BEFORE = re.compile(r"\b(for|unset) $")
SHELL_SET = re.compile(r"(^|[;&|(]|\b(local|export|readonly|declare|typeset)(\s+-\w+)*)\s*$")
SHELL_SET_AFTER = re.compile(r"\+?=")
SERVICE_BEFORE = re.compile(r"(--service-name[ =]|serviceName\W+|SERVICE\W+)$", re.IGNORECASE)
TITLE_BEFORE = re.compile(r"(^#+ .*|<title>[^<]*|\"title\": \")$")
# After an occurrence.
ENTRY_AFTER = re.compile(r"/([\w-]+(?:\.[\w-]+)*)")  # NAME/templates/…, NAME/config.py
DOTTED_AFTER = re.compile(r"\\?\.[A-Za-z_{(]")  # NAME.wsgi, NAME\.(\w+), NAME.{module}
IMAGE_AFTER = re.compile(r":[\w.-]|/[a-z0-9]|@sha256:")  # NAME:local, NAME/python-base
TOML_KEY_AFTER = re.compile(r"[\w-]*[ \t]*=")
TOML_KEY = re.compile(r"([A-Za-z0-9_.-]+)[ \t]*=")


def kind_of(path: str, text: str) -> str:
    """How a file is read: as Python, a shell script, TOML, or plain text. A script without an
    extension is known by its first line (`.` never matches past it)."""
    if path.endswith(".py") or re.match(r"#!.*\bpython", text):
        return PYTHON
    if path.endswith((".sh", ".bash")) or re.match(r"#!.*\b(ba)?sh\b", text):
        return SHELL
    if path.endswith((".toml", ".lock")):
        return TOML
    return TEXT


def text_context(text: str, start: int, end: int, kind: str, entries: frozenset[str]) -> str:
    """The context of a lowercase occurrence in text: prose, a string, a comment, a config."""
    before = text[:start].rpartition("\n")[2]  # the line up to the occurrence
    if before.endswith("_") or text.startswith("_", end):
        return "identifier"
    if VARIABLE_BEFORE.search(before) or (
        kind == SHELL
        and (
            SHELL_BEFORE.search(before)
            or (SHELL_SET_AFTER.match(text, end) and SHELL_SET.search(before))
        )
    ):
        return "shell variable"
    if IMPORT_BEFORE.search(before):
        return "import"
    entry = ENTRY_AFTER.match(text, end)
    if entry and entry[1] in entries:
        return "import"
    if DOTTED_AFTER.match(text, end):
        # :NAME.label.N is a Lightsail image; //NAME.host… a URL's host; else a Python name.
        return "service" if before.endswith((":", "//", "@")) else "import"
    if kind == TOML and (toml := toml_context(text, start, end, before)):
        return toml
    if IMAGE_AFTER.match(text, end):
        return "image"
    if SERVICE_BEFORE.search(before):
        return "service"
    if TITLE_BEFORE.search(before):
        return "title"
    return "distribution"


def toml_context(text: str, start: int, end: int, before: str) -> str | None:
    """In TOML: a key is a console script; a string that is just the name is the distribution
    under `name` and an import name anywhere else (ruff's known-first-party, coverage's source)."""
    if not before.strip() and TOML_KEY_AFTER.match(text, end):
        return "console script"
    quote = before[-1:]
    if quote not in {'"', "'"} or not text.startswith(quote, end):
        return None
    keys = TOML_KEY.findall(text, 0, start)
    return "distribution" if keys and keys[-1] == "name" else "import"


def python_code(text: str) -> dict[int, str] | None:
    """Offsets of the occurrences that are Python code (names, not strings or comments), with
    their context; None when the text does not tokenize (it is then read as plain text)."""
    offsets = [0]
    for line in io.StringIO(text):
        offsets.append(offsets[-1] + len(line))
    code: dict[int, str] = {}
    try:
        for token in tokenize.generate_tokens(io.StringIO(text).readline):
            if token.type == tokenize.NAME:
                start = offsets[token.start[0] - 1] + token.start[1]
                for match in WORD.finditer(token.string):
                    word = match[0]
                    context = "identifier" if word == OLD else other_case(word, "constant")
                    code[start + match.start()] = context
    except (tokenize.TokenError, SyntaxError):
        return None
    return code


def other_case(word: str, upper: str) -> str:
    """The context of the name in capitals (`upper`) or in mixed case (a class)."""
    return upper if word.isupper() else "class"


def occurrences(text: str, kind: str, entries: frozenset[str]) -> list[tuple[int, int, str]]:
    """(start, end, context) of each occurrence of the old name in a file's text.

    kind: kind_of() the file. entries: the names inside the package folder (`NAME/templates`
    names the package's folder).
    """
    matches = list(WORD.finditer(text))
    code = python_code(text) if kind == PYTHON and matches else None
    found = []
    for match in matches:
        start, end = match.span()
        if code is not None and start in code:
            context = code[start]
        elif match[0] == OLD:
            context = text_context(text, start, end, kind, entries)
        else:
            context = other_case(match[0], "environment variable")
        found.append((start, end, context))
    return found


def rename_text(text: str, kind: str, package: str, entries: frozenset[str]) -> str:
    """The text with every occurrence of the old name spelled as its context needs."""
    out, last = [], 0
    for start, end, context in occurrences(text, kind, entries):
        out += [text[last:start], spell(package, context)]
        last = end
    return "".join(out) + text[last:]


def rename_path(path: str, package: str, entries: frozenset[str]) -> str:
    """A file's path with the package folder (and any other use of the name) renamed."""
    return rename_text(path, TEXT, package, entries)


# -- What only the template has --------------------------------------------------------------

# Markers around lines that only the template has, in Markdown and in `#`-comment files; and a
# comment that marks one line. scripts/rename drops them all.
TEMPLATE_ONLY_START = ("<!-- template-only:start -->", "# template-only:start")
TEMPLATE_ONLY_END = ("<!-- template-only:end -->", "# template-only:end")
TEMPLATE_ONLY_LINE = re.compile(r"(^|\s)# template-only(: .*)?\s*$")


def drop_template_only(text: str, path: str) -> str:
    """The text without template-only lines and sections (nor the blank line after a section)."""
    out: list[str] = []
    inside = dropped = False
    for number, line in enumerate(text.splitlines(keepends=True), 1):
        marker = line.strip()
        if marker in TEMPLATE_ONLY_START:
            if inside:
                raise RenameError(f"{path}:{number}: template-only section inside another")
            inside = True
        elif marker in TEMPLATE_ONLY_END:
            if not inside:
                raise RenameError(
                    f"{path}:{number}: end of a template-only section without a start"
                )
            inside, dropped = False, True
        elif not inside and not TEMPLATE_ONLY_LINE.search(line):
            if not (dropped and not marker and (not out or not out[-1].strip())):
                out.append(line)
            dropped = False
    if inside:
        raise RenameError(f"{path}: template-only section without its end marker")
    kept = "".join(out)
    if kept == text:
        return text
    return kept.rstrip("\n") + "\n" if kept.endswith("\n") else kept  # no blank line at the end


def package_entries(folder: Path) -> frozenset[str]:
    return frozenset(p.name for p in folder.iterdir())


def sort_via(requirements: str) -> str:
    """requirements.txt as `uv export` writes it: each `# via` list in order (the name moved)."""
    return re.sub(
        r"(?:^    #   \S+\n)+",
        lambda block: "".join(sorted(block[0].splitlines(keepends=True))),
        requirements,
        flags=re.MULTILINE,
    )


def answers_yaml(src_path: str, commit: str, owner: str, package: str) -> str:
    """.copier-answers.yml as copier reads it. Every value is a quoted string: an empty owner
    left unquoted would read as null, which copier cannot take. No _commit when there is none."""
    answers = {"_commit": commit, "_src_path": src_path, "owner": owner, "package_name": package}
    lines = [
        f"{key}: {json.dumps(value)}" for key, value in answers.items() if value or key[0] != "_"
    ]
    return (
        "# The template this project was made from, for template updates (docs/template.md).\n"
        "# Written by the rename; copier reads it. Do not edit.\n" + "\n".join(lines) + "\n"
    )
