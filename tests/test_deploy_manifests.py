"""The deploy manifests: Lightsail JSON against botocore's API model, app.yaml, .gcloudignore,
requirements.txt (in step with uv.lock) and the Procfile; the platforms' id rules and the time
the deploy scripts may take against the deploy job's timeout."""

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import botocore.session
import botocore.validate
import pytest
import yaml

from deploy import common as COMMON
from deploy import lightsail

ROOT = Path(__file__).resolve().parent.parent
LIGHTSAIL = vars(lightsail)


def lightsail_input_shape():
    model = botocore.session.get_session().get_service_model("lightsail")
    return model.operation_model("CreateContainerServiceDeployment").input_shape


def rendered() -> dict:
    """The parameters deploy/lightsail sends, with a reference as push-container-image prints it."""
    return {
        "serviceName": "mlservice",
        "containers": LIGHTSAIL["render_containers"](":mlservice.v1-2-3.7", "nano"),
        "publicEndpoint": json.loads((ROOT / "public-endpoint.json").read_text()),
    }


def test_lightsail_payload_passes_botocores_validator():
    report = botocore.validate.ParamValidator().validate(rendered(), lightsail_input_shape())
    assert not report.has_errors(), report.generate_report()


def test_the_validator_would_catch_a_wrong_payload():
    params = rendered()
    params["publicEndpoint"]["containerPort"] = "8000"  # a string where the model wants an int
    params["publicEndpoint"]["healthcheck"] = params["publicEndpoint"].pop("healthCheck")  # typo
    report = botocore.validate.ParamValidator().validate(params, lightsail_input_shape())
    assert "publicEndpoint.containerPort" in report.generate_report()
    assert 'Unknown parameter in publicEndpoint: "healthcheck"' in report.generate_report()


def test_port_protocols_are_in_the_models_enum():
    # botocore's validator checks types, names and required members, not enums: check those here.
    protocols = lightsail_input_shape().members["containers"].value.members["ports"].value.enum
    for container in rendered()["containers"].values():
        assert set(container["ports"].values()) <= set(protocols)


def test_lightsail_container_listens_where_the_endpoint_and_health_check_look():
    params = rendered()
    ((name, container),) = params["containers"].items()
    endpoint = params["publicEndpoint"]
    assert container["image"] == ":mlservice.v1-2-3.7"
    assert endpoint["containerName"] == name
    assert container["environment"]["PORT"] == str(endpoint["containerPort"])  # Lightsail sets none
    assert container["ports"] == {str(endpoint["containerPort"]): "HTTP"}
    check = endpoint["healthCheck"]
    assert check["path"] == "/healthz"
    # Ranges from the Lightsail API reference (the model does not carry them).
    assert 5 <= check["intervalSeconds"] <= 300
    assert 2 <= check["timeoutSeconds"] <= 60
    assert check["timeoutSeconds"] < check["intervalSeconds"]
    assert 2 <= check["healthyThreshold"] <= 10
    assert 2 <= check["unhealthyThreshold"] <= 10
    assert check["successCodes"] == "200"


def test_containers_template_holds_the_placeholder_once():
    assert (ROOT / "containers.json").read_text().count(LIGHTSAIL["PLACEHOLDER"]) == 1


def test_push_output_reference_is_parsed_from_the_documented_line():
    printed = (
        "Digest: sha256:" + "0" * 64 + '\nImage "mlservice:local" registered.\n'
        'Refer to this image as ":mlservice.v1-2-3.12" in deployments.\n'
    )
    assert LIGHTSAIL["REFERENCE"].search(printed).group(1) == ":mlservice.v1-2-3.12"


def test_app_yaml_scales_within_its_instance_class_with_https_only():
    app = yaml.safe_load((ROOT / "app.yaml").read_text())
    assert app["runtime"] == "python313"
    assert app["instance_class"] in {"F1", "F2", "F4", "F4_1G"}
    scaling = app["automatic_scaling"]
    assert 0 <= scaling["min_instances"] <= scaling["max_instances"]
    assert app["handlers"]
    assert all(h["secure"] == "always" for h in app["handlers"])
    assert "service" not in app  # deploy/appengine's APPENGINE_SERVICE default


def test_app_yaml_sets_two_workers_for_an_f1_instance():
    app = yaml.safe_load((ROOT / "app.yaml").read_text())
    assert app["instance_class"] == "F1"  # 384 MB
    assert app["env_variables"]["WEB_CONCURRENCY"] == "2"


def uploaded(paths: list[str], tmp_path: Path) -> set[str]:
    """Which paths .gcloudignore lets through, judged by git's matcher (same gitignore syntax)."""
    if shutil.which("git") is None:
        pytest.fail("git is needed to read .gcloudignore patterns")
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    shutil.copy(ROOT / ".gcloudignore", tmp_path / ".gitignore")
    for path in paths:
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).touch()
    ignored = subprocess.run(
        ["git", "-C", str(tmp_path), "check-ignore", "--stdin"],
        input="\n".join(paths),
        capture_output=True,
        text=True,
        check=False,
    ).stdout.split()
    return set(paths) - set(ignored)


def test_gcloudignore_uploads_code_requirements_and_model_only(tmp_path):
    wanted = [
        "app.yaml",
        "requirements.txt",
        "pyproject.toml",
        "README.md",
        "gunicorn.conf.py",
        "src/mlservice/__init__.py",
        "src/mlservice/templates/index.html",
        "src/mlservice/model.toml",
        "models/model.skops",
        "models/model.onnx",
        "models/model.json",
        "data/sample_answers.csv",
    ]
    unwanted = [
        "tests/test_api.py",
        "data/training/breast_cancer.csv",
        "data/training/loans.csv",
        ".venv/bin/python",
        ".git/config",
        "Dockerfile",
        ".dockerignore",
        "uv.lock",
        "docs/deploy/appengine.md",
        "deploy/appengine",
        "gha-creds-0123.json",
        "src/mlservice/__pycache__/api.cpython-313.pyc",
        ".github/workflows/pipeline.yml",
    ]
    assert uploaded(wanted + unwanted, tmp_path) == set(wanted)
    lines = (ROOT / ".gcloudignore").read_text().splitlines()
    assert not any(line.startswith("#!include:") for line in lines)  # .gitignore drops models/


def requirement_lines(text: str) -> list[str]:
    return [
        line for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")
    ]


def test_requirements_txt_is_the_lock_exported():
    uv = shutil.which("uv") or str(ROOT / ".tools" / "bin" / "uv")
    if not os.access(uv, os.X_OK):
        if os.environ.get("CI") == "true":
            pytest.fail("uv is missing (make env bootstraps it)")
        pytest.skip("uv is missing")
    exported = subprocess.run(
        [
            uv,
            "export",
            "--frozen",
            "--no-dev",
            "--group=skops",
            "--no-hashes",
            "--no-editable",
            "-q",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    committed = (ROOT / "requirements.txt").read_text()
    assert requirement_lines(committed) == requirement_lines(exported), "run `make requirements`"


def test_requirements_install_the_project_and_its_server():
    lines = requirement_lines((ROOT / "requirements.txt").read_text())
    assert "." in lines  # App Engine installs the project itself from the uploaded source
    assert any(line.startswith("gunicorn==") for line in lines)  # app.yaml's entrypoint
    # Any card: onnxruntime for an ONNX compile, scikit-learn and skops for the fallback.
    for name in ("onnxruntime==", "scikit-learn==", "skops=="):
        assert any(line.startswith(name) for line in lines), name


def platform_start_commands():
    procfile = (ROOT / "Procfile").read_text()
    return {
        "app.yaml": yaml.safe_load((ROOT / "app.yaml").read_text())["entrypoint"],
        "Procfile": re.fullmatch(r"web: (.+)\n", procfile).group(1),
    }


@pytest.mark.parametrize("platform", ["app.yaml", "Procfile"])
@pytest.mark.parametrize(
    ("name", "value"), [("WEB_CONCURRENCY", "abc"), ("WEB_CONCURRENCY", "0"), ("PORT", "99999")]
)
def test_platform_start_commands_refuse_a_bad_setting_in_one_line(platform, name, value):
    # gunicorn alone reads WEB_CONCURRENCY before any config and dies with a traceback.
    # The project's environment (the running python's; make mutation runs in a copy without one).
    venv_bin = Path(sys.executable).parent
    env = {**os.environ, "PATH": f"{venv_bin}:{os.environ['PATH']}", "PORT": "8080"}
    proc = subprocess.run(
        ["bash", "-c", platform_start_commands()[platform]],
        cwd=ROOT,
        env={**env, name: value},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("mlservice cannot start: ")
    assert name in lines[0]


def test_deploy_scripts_are_executable_python_and_share_one_module():
    for name in ("lightsail", "appengine", "heroku"):
        script = ROOT / "deploy" / name
        assert os.access(script, os.X_OK)
        assert script.read_text().startswith("#!/usr/bin/env python3\n")
        assert (ROOT / "deploy" / f"{name}.py").is_file()  # the code, a module mutmut can reach
    for module in ROOT.joinpath("deploy").glob("*.py"):  # modules, not targets
        assert not os.access(module, os.X_OK)


LABELS = [
    "v1-2-3",
    "main-1a2b3c4",
    "v1-2-3-rc-1",
    "a",
    "v1",
    "v1-2-3-",
    "-v1",
    "V1-2-3",
    "v1.2.3",
    "v" + "1" * 52,
    "v" + "1" * 53,
]


@pytest.mark.parametrize("label", LABELS)
def test_lightsail_label_rule_is_botocores(label):
    shape = (
        botocore.session.get_session().get_service_model("lightsail").shape_for("ContainerLabel")
    )
    pattern = shape.metadata["pattern"].removeprefix("^").removesuffix("$")
    valid = bool(re.fullmatch(pattern, label)) and len(label) <= shape.metadata["max"]
    assert bool(COMMON.LIGHTSAIL_LABEL.fullmatch(label)) == valid


@pytest.mark.parametrize(
    ("version", "suffix", "expected"),
    [
        ("v1.2.3", "4242-1", "v1-2-3-4242-1"),
        ("v1.2.3-rc.1", "20261123t101500", "v1-2-3-rc-1-20261123t101500"),
        ("main-1a2b3c4", "7-2", "main-1a2b3c4-7-2"),
        ("v1.2.3-" + "x" * 46, "1-1", "v1-2-3-" + "x" * 46 + "-1-1"),  # 57 + "-dot-p": 63
        ("v1.2.3-" + "x" * 47, "1-1", "cannot resolve"),  # a host label of 64
        ("v1.2.3-" + "x" * 53, "1-1", "at most 63"),  # an id of 64
        ("v1.2.3", "", "not ending in a hyphen"),
        ("ah-1a2b3c4", "1-1", "refuses"),  # reserved prefix
        ("v1.2.3-dot.1", "1-1", "no '-dot-'"),  # the host name separator
    ],
)
def test_appengine_version_ids_follow_gclouds_rule(version, suffix, expected):
    if expected.startswith(("v", "main")):
        assert COMMON.appengine_version(version, suffix, "default", "p") == expected
    else:
        with pytest.raises(COMMON.ConfigError, match=expected):
            COMMON.appengine_version(version, suffix, "default", "p")
