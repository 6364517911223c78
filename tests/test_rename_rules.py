"""The naming rule of scripts/rename (scripts/rename_rules.py), on hand-written cases: which package
name a repository gets, which names are refused and why, and how each place spells the name.
Fast, so make mutation runs them against every mutant of the rules."""

import importlib.metadata
import re
from pathlib import Path

import pytest
import yaml

from scripts import rename_rules as rules
from scripts.rename_rules import RenameError

ROOT = Path(__file__).resolve().parents[1]
ENTRIES = frozenset({"config.py", "templates", "answers", "__init__.py"})


# -- The package name ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("repository", "package"),
    [
        ("loan-default", "loan_default"),
        ("Loan.Default", "loan_default"),
        ("loan_default", "loan_default"),
        ("LoanDefault", "loandefault"),
        ("loan--default__v2", "loan_default_v2"),
        ("-loan.-_default-", "loan_default"),
        ("2048-model", "app_2048_model"),
        ("3d", "app_3d"),
        ("x", "x"),
        ("a1-b2.c3_d4", "a1_b2_c3_d4"),
        # Whole words are dropped from the end until the name is 55 characters or less.
        (
            "customer-churn-prediction-service-for-the-retail-analytics-team",
            "customer_churn_prediction_service_for_the_retail",
        ),
        ("a" * 27 + "-" + "b" * 27, "a" * 27 + "_" + "b" * 27),  # 55: kept whole
        ("a" * 27 + "-" + "b" * 28, "a" * 27),  # 56: the last word goes
        ("a" * 100, "a" * 55),  # one word is cut
        ("2" + "0" * 99, "app_2" + "0" * 50),
    ],
)
def test_a_repository_name_gives_the_package_name(repository, package):
    assert rules.package_from_repository(repository) == package


@pytest.mark.parametrize(
    ("repository", "message"),
    [
        (
            "my repo",
            "'my repo' is not a GitHub repository name (letters, digits, '-', '_' and '.',"
            " at most 100 characters)",
        ),
        ("", "'' is not a GitHub repository name"),
        ("a" * 101, "is not a GitHub repository name"),
        ("café", "is not a GitHub repository name"),
        ("---", "'---' has no letter or digit to make a package name of"),
        ("._", "'._' has no letter or digit"),
    ],
)
def test_a_name_github_would_not_take_is_refused(repository, message):
    with pytest.raises(RenameError) as refused:
        rules.package_from_repository(repository)
    assert message in str(refused.value)
    assert "\n" not in str(refused.value)


def test_the_longest_name_leaves_room_for_the_staging_service():
    assert rules.MAX_LENGTH == 55
    assert rules.package_from_repository("a" * 56) == "a" * 55


DEPENDENCIES = frozenset({"pandas", "sklearn", "scikit_learn"})


@pytest.mark.parametrize(
    "name", ["loan_default", "x", "a1", "app_2048_model", "a" * 55, "match", "mlservice_v2"]
)
def test_a_valid_new_package_name_is_accepted(name):
    assert rules.check_package(name, DEPENDENCIES, {"docs"}) is None


@pytest.mark.parametrize(
    ("name", "message"),
    [
        (
            "Loan",
            "'Loan' is not a package name: use lowercase letters, digits and single underscores,"
            " starting with a letter (e.g. loan_default)",
        ),
        ("loan-default", "'loan-default' is not a package name"),
        ("2fast", "'2fast' is not a package name"),
        ("loan__default", "'loan__default' is not a package name"),
        ("loan_", "'loan_' is not a package name"),
        ("_loan", "'_loan' is not a package name"),
        ("", "'' is not a package name"),
        ("loan default", "'loan default' is not a package name"),
        (
            "a" * 56,
            f"'{'a' * 56}' is 56 characters long: at most 55, so that NAME-staging is a valid"
            " Lightsail service name",
        ),
        ("class", "'class' is a Python keyword, so it cannot be imported"),
        ("false", "'false' is False as a class name, a Python keyword"),
        ("none", "'none' is None as a class name"),
        ("json", "'json' is a standard-library module; the package would shadow it"),
        ("telnetlib", "'telnetlib' is a standard-library module"),  # gone in 3.13, not in 3.11
        ("annotationlib", "'annotationlib' is a standard-library module"),  # new in 3.14
        ("pandas", "'pandas' is the import name of a dependency; the package would shadow it"),
        ("sklearn", "'sklearn' is the import name of a dependency"),
        ("tests", "'tests' is a folder of this repository; choose another name"),
        ("docs", "'docs' is a folder of this repository"),
    ],
)
def test_a_name_that_cannot_be_a_new_package_is_refused_in_one_line(name, message):
    with pytest.raises(RenameError) as refused:
        rules.check_package(name, DEPENDENCIES, {"docs"})
    assert str(refused.value).startswith(message)
    assert "\n" not in str(refused.value)


def test_dependency_names_are_every_locked_package_and_its_import_name():
    lock = (
        'version = 1\n[[package]]\nname = "scikit-learn"\n\n[[package]]\nname = "PyYAML"\n\n'
        '[[package]]\nname = "ruamel.yaml"\n\n[[package]]\nname = "Flask_Cors"\n'
    )
    assert rules.dependency_names(lock) == {
        "scikit_learn",
        "sklearn",
        "pyyaml",
        "yaml",
        "ruamel_yaml",
        "ruamel",
        "flask_cors",
    }
    assert rules.dependency_names("version = 1\n") == frozenset()


@pytest.mark.parametrize(
    ("name", "normal"),
    [("Ruamel.YAML", "ruamel-yaml"), ("a__b", "a-b"), ("a-_.b", "a-b"), ("abc", "abc")],
)
def test_distribution_names_compare_as_pep_503_says(name, normal):
    assert rules.normalized(name) == normal


def test_every_import_name_of_the_environment_is_refused():
    """IMPORT_NAMES is complete: each top-level name the installed packages (the lock's, dev tools
    included) can be imported as is refused, so a new dependency whose import name differs from
    its distribution name fails here until it is listed."""
    refused = rules.dependency_names((ROOT / "uv.lock").read_text())
    project = {p.parent.name for p in (ROOT / "src").glob("*/__init__.py")}
    importable = {
        name
        for name in importlib.metadata.packages_distributions()
        if rules.PACKAGE.fullmatch(name) and not re.fullmatch(r"[0-9a-f]{20}__mypyc", name)
    }
    assert importable - refused - project == set()
    assert {"sklearn", "yaml", "flask", "pandas", "numpy", "pytest", "copier"} <= refused


# -- The spellings ---------------------------------------------------------------------------


def test_each_context_spells_the_name_as_the_table_says():
    spelled = {context: rules.spell("app_2048_model", context) for context in rules.CONTEXTS}
    assert spelled == {
        "import": "app_2048_model",
        "identifier": "app_2048_model",
        "shell variable": "app_2048_model",
        "constant": "APP_2048_MODEL",
        "environment variable": "APP_2048_MODEL",
        "class": "App2048Model",
        "distribution": "app-2048-model",
        "console script": "app-2048-model",
        "image": "app-2048-model",
        "service": "app-2048-model",
        "title": "app-2048-model",
    }
    assert rules.spell("x", "class") == "X"
    assert rules.spell("x", "distribution") == "x"


def contexts(text, path="notes.txt"):
    found = rules.occurrences(text, rules.kind_of(path, text), ENTRIES)
    return [(text[start:end], context) for start, end, context in found]


@pytest.mark.parametrize(
    ("line", "context"),
    [
        # Python names, wherever a Python file or another file quotes them.
        ("from mlservice.model import x", "import"),
        ("import mlservice", "import"),
        ("python -m mlservice train", "import"),
        ("pytest --cov=mlservice", "import"),
        ("see src/mlservice/", "import"),
        ("settings in mlservice/config.py", "import"),
        ("mlservice/templates/base.html", "import"),
        ('"mlservice.wsgi:app"', "import"),
        ('f"mlservice.{module}.*"', "import"),
        (r"^\s*mlservice\.(\w+)", "import"),
        ("{mlservice}", "import"),
        ("{ mlservice.x }", "import"),
        ("my_mlservice_thing", "identifier"),
        ("mlservice_x", "identifier"),
        ("my_mlservice", "identifier"),
        # Not Python names.
        ("IMAGE ?= mlservice:local", "image"),
        ("mlservice/python-base:bookworm", "image"),
        ("mlservice@sha256:0123", "image"),
        ('":mlservice.v1-2-3.7"', "service"),
        ("https://mlservice.herokuapp.com", "service"),
        ("git@mlservice.example:x", "service"),
        ("--service-name mlservice", "service"),
        ('"serviceName": "mlservice"', "service"),
        ("LIGHTSAIL_SERVICE=mlservice", "service"),
        ("# mlservice", "title"),
        ("\n# mlservice", "title"),
        ("first line\n# mlservice", "title"),
        ("## About mlservice", "title"),
        ("<title>Classifier · mlservice</title>", "title"),
        ('"title": "mlservice"', "title"),
        ("web: mlservice-server", "distribution"),
        ("run mlservice smoke URL", "distribution"),
        ('version("mlservice")', "distribution"),
        ("mlservice/", "distribution"),
        ("mlservice/unknown.py", "image"),
        ("$mlservice", "shell variable"),
        ("${mlservice}", "shell variable"),
        # Capitals and mixed case, anywhere.
        ("MLSERVICE=1", "environment variable"),
        ("${MLSERVICE:-x}", "environment variable"),
        ("MLSERVICE_DEBUG", "environment variable"),
        ("MLService", "class"),
        ("MlserviceError", "class"),
    ],
)
def test_the_context_of_a_name_in_text(line, context):
    assert contexts(line) == [(re.search("mlservice", line, re.I)[0], context)]


@pytest.mark.parametrize(
    "text", ["mlservices", "xmlservice", "mlservice2", "ml_service", "MLSERVICES"]
)
def test_other_words_are_not_the_name(text):
    assert contexts(text) == []


@pytest.mark.parametrize(
    ("line", "context"),
    [
        ("mlservice=${MLSERVICE:-.venv/bin/mlservice}", "shell variable"),
        ("  local mlservice=x", "shell variable"),
        ("export mlservice+=x", "shell variable"),
        ("readonly mlservice=x", "shell variable"),
        ("declare -r -x mlservice=x", "shell variable"),
        ("a=1; mlservice=2", "shell variable"),
        ("true && mlservice=2", "shell variable"),
        ("(mlservice=2)", "shell variable"),
        ("for mlservice in a b; do :; done", "shell variable"),
        ("unset mlservice", "shell variable"),
        ('"${!mlservice}"', "shell variable"),
        ('"${#mlservice}"', "shell variable"),
        ("echo mlservice=2", "distribution"),  # an argument, not an assignment
        ("cmd mlservice", "distribution"),
    ],
)
def test_the_context_of_a_name_in_a_shell_script(line, context):
    text = f"#!/usr/bin/env bash\n{line}\n"
    assert contexts(text, "scripts/x")[0] == ("mlservice", context)
    assert contexts(line, "x.sh")[0] == ("mlservice", context)


def test_a_shell_assignment_outside_a_shell_script_is_text():
    assert contexts("mlservice=x", "notes.md") == [("mlservice", "distribution")]
    assert contexts("for mlservice in", "Makefile") == [("mlservice", "distribution")]


PYTHON = '''\
"""mlservice: the docs."""
import mlservice
from mlservice.model import load
MLSERVICE = ROOT / "bin" / "mlservice"
print(mlservice.__file__, f"{mlservice}")
value = mlservice
logger = "mlservice.errors"  # mlservice logs
APP_MLSERVICE = 1
class MlserviceError(Exception): ...
'''


def test_the_context_of_a_name_in_python():
    assert contexts(PYTHON, "src/x.py") == [
        ("mlservice", "distribution"),  # the docstring: prose
        ("mlservice", "identifier"),
        ("mlservice", "identifier"),
        ("MLSERVICE", "constant"),
        ("mlservice", "distribution"),  # the console script's name
        ("mlservice", "identifier"),
        ("mlservice", "import"),  # an f-string's field, on any Python
        ("mlservice", "identifier"),
        ("mlservice", "import"),
        ("mlservice", "distribution"),  # a comment
        ("MLSERVICE", "constant"),  # inside a longer name
        ("Mlservice", "class"),
    ]
    assert contexts(PYTHON, "scripts/x")[7] == ("mlservice", "distribution")  # not Python
    script = "#!/usr/bin/env python3\n" + PYTHON
    assert contexts(script, "scripts/x")[7] == ("mlservice", "identifier")


def test_python_that_does_not_tokenize_is_read_as_text():
    text = 'x = mlservice\ny = """never closed mlservice\n'
    assert contexts(text, "x.py") == [("mlservice", "distribution")] * 2


TOML = """\
[project]
name = "mlservice"
description = "mlservice, a service"
[project.scripts]
mlservice = "mlservice.cli:main"
mlservice-server = "mlservice.server:main"
[tool.ruff.lint.isort]
known-first-party = ["mlservice", 'scripts']
[tool.coverage.run]
source = [
    'mlservice',
]
[[package]]
name = 'mlservice'
dependencies = [{ name = "mlservice" }]
NAME = "mlservice"
x.mlservice = 1
text = '''
mlservice is a service
'''
name="mlservice"
"""


def test_the_context_of_a_name_in_toml():
    assert contexts(TOML, "pyproject.toml") == [
        ("mlservice", "distribution"),
        ("mlservice", "distribution"),  # in prose
        ("mlservice", "console script"),
        ("mlservice", "import"),
        ("mlservice", "console script"),
        ("mlservice", "import"),
        ("mlservice", "import"),
        ("mlservice", "import"),
        ("mlservice", "distribution"),
        ("mlservice", "distribution"),
        ("mlservice", "import"),  # keys are case-sensitive: NAME is not name
        ("mlservice", "distribution"),  # part of a dotted key, not a console script
        ("mlservice", "distribution"),  # prose at the start of a line
        ("mlservice", "distribution"),
    ]
    assert contexts('x = ["mlservice"]', "uv.lock") == [("mlservice", "import")]
    assert contexts('name = "mlservice"', "x.toml") == [("mlservice", "distribution")]
    assert contexts('name = "mlservice"', "notes.txt") == [("mlservice", "distribution")]
    assert contexts('known = ["mlservice"]', "notes.txt") == [("mlservice", "distribution")]


@pytest.mark.parametrize(
    ("path", "kind"),
    [
        ("a.py", "python"),
        (
            "scripts/x",
            "python",
        ),
        ("a.sh", "shell"),
        ("a.bash", "shell"),
        ("pyproject.toml", "toml"),
        ("uv.lock", "toml"),
        ("README.md", "text"),
        ("Makefile", "text"),
    ],
)
def test_the_kind_of_a_file(path, kind):
    first = "#!/usr/bin/env python3\n" if path == "scripts/x" else "x\n"
    assert rules.kind_of(path, first) == kind


@pytest.mark.parametrize(
    ("first", "kind"),
    [
        ("#!/usr/bin/env bash", "shell"),
        ("#!/bin/sh -e", "shell"),
        ("#!/usr/bin/python3", "python"),
        ("#!/usr/bin/env node", "text"),
        ("# bash", "text"),
    ],
)
def test_a_script_is_known_by_its_shebang(first, kind):
    assert rules.kind_of("scripts/tool", f"{first}\nbody\n") == kind


def test_rename_text_spells_each_occurrence_and_keeps_the_rest():
    text = "Run `mlservice smoke` from src/mlservice/ with MLSERVICE set; mlservice/config.py.\n"
    assert rules.rename_text(text, "text", "loan_default", ENTRIES) == (
        "Run `loan-default smoke` from src/loan_default/ with LOAN_DEFAULT set;"
        " loan_default/config.py.\n"
    )
    assert rules.rename_text("no name here", "text", "loan_default", ENTRIES) == "no name here"
    assert rules.rename_text("", "text", "loan_default", ENTRIES) == ""
    code = "x = mlservice\n"
    assert rules.rename_text(code, "python", "loan_default", ENTRIES) == "x = loan_default\n"
    assert rules.rename_text(code, "text", "loan_default", ENTRIES) == "x = loan-default\n"


def test_rename_path_moves_the_package_folder():
    assert rules.rename_path("src/mlservice/api.py", "loan_default", ENTRIES) == (
        "src/loan_default/api.py"
    )
    assert rules.rename_path("docs/mlservice-notes.md", "loan_default", ENTRIES) == (
        "docs/loan-default-notes.md"
    )
    assert rules.rename_path("README.md", "loan_default", ENTRIES) == "README.md"
    assert rules.rename_path("mlservice/config.py", "loan_default", ENTRIES) == (
        "loan_default/config.py"
    )
    assert rules.rename_path("mlservice.py", "loan_default", ENTRIES) == "loan_default.py"


def test_package_entries_are_the_names_in_the_package_folder(tmp_path):
    (tmp_path / "api.py").touch()
    (tmp_path / "templates").mkdir()
    assert rules.package_entries(tmp_path) == {"api.py", "templates"}


# -- Template-only lines ---------------------------------------------------------------------


def test_template_only_sections_and_lines_go():
    text = (
        "# Title\n\n<!-- template-only:start -->\nUse this template.\n<!-- template-only:end -->\n\n"
        "Kept.\n"
        "x = 1  # template-only\n"
        "y = 2  # template-only: the reason\n"
        "# template-only:start\nz = 3\n# template-only:end\n"
        "w = 4  # not template-only\n"
        "v = 5 # template-only-ish\n"
    )
    assert rules.drop_template_only(text, "a") == (
        "# Title\n\nKept.\nw = 4  # not template-only\nv = 5 # template-only-ish\n"
    )


SECTION = "<!-- template-only:start -->\nB\n<!-- template-only:end -->\n"


@pytest.mark.parametrize(
    ("text", "kept"),
    [
        (f"A\n\n{SECTION}\nC\n", "A\n\nC\n"),  # the blank line after the section goes
        (f"A\nB\n\n{SECTION}\nC\n", "A\nB\n\nC\n"),
        (f"AX  \n{SECTION}\n", "AX  \n"),  # no blank line at the end, trailing spaces kept
        (f"AX\n{SECTION}\n", "AX\n"),
        (f"A\n\n{SECTION}", "A\n"),
        (f"{SECTION}\nA\n", "A\n"),
        ("A\nb = 1  # template-only  \r\nC\n", "A\nC\n"),
        ("A\n# template-only:start\nB\n# template-only:end\nC", "A\nC"),
    ],
)
def test_a_dropped_section_leaves_no_gap_and_no_blank_end(text, kept):
    assert rules.drop_template_only(text, "a") == kept


def test_text_without_markers_is_unchanged():
    text = "A\n\n\n"
    assert rules.drop_template_only(text, "a") is text


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "<!-- template-only:start -->\n# template-only:start\n",
            "README.md:2: template-only section inside another",
        ),
        (
            "A\n<!-- template-only:end -->\n",
            "README.md:2: end of a template-only section without a start",
        ),
        (
            "A\n# template-only:start\nB\n",
            "README.md: template-only section without its end marker",
        ),
    ],
)
def test_unbalanced_markers_are_refused(text, message):
    with pytest.raises(RenameError, match=f"^{re.escape(message)}$"):
        rules.drop_template_only(text, "README.md")


# -- Files the rename writes -----------------------------------------------------------------


def test_via_lists_are_sorted_as_uv_export_writes_them():
    text = (
        "numpy==2.4.6\n    # via\n    #   zeta-model\n    #   pandas\n    #   scipy\n"
        "pandas==3.1.1\n    # via zeta-model\n"
        "x==1\n    # via\n    #   b\n    #   a\n"
    )
    assert rules.sort_via(text) == (
        "numpy==2.4.6\n    # via\n    #   pandas\n    #   scipy\n    #   zeta-model\n"
        "pandas==3.1.1\n    # via zeta-model\n"
        "x==1\n    # via\n    #   a\n    #   b\n"
    )


def test_the_answers_file_quotes_every_value():
    text = rules.answers_yaml("https://github.com/o/t.git", "v1.2.0-3-gabc1234", "", "x_y")
    assert text.splitlines()[2:] == [
        '_commit: "v1.2.0-3-gabc1234"',
        '_src_path: "https://github.com/o/t.git"',
        'owner: ""',
        'package_name: "x_y"',
    ]
    assert yaml.safe_load(text) == {
        "_commit": "v1.2.0-3-gabc1234",
        "_src_path": "https://github.com/o/t.git",
        "owner": "",
        "package_name": "x_y",
    }
    assert text.splitlines()[:2] == [
        "# The template this project was made from, for template updates (docs/template.md).",
        "# Written by the rename; copier reads it. Do not edit.",
    ]
    assert "_commit" not in rules.answers_yaml("/t", "", "o", "x")
    tricky = yaml.safe_load(rules.answers_yaml('a "b": c', "1.0", "null", "x"))
    assert tricky["_src_path"] == 'a "b": c'
    assert tricky["owner"] == "null"
