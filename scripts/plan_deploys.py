"""plan-deploys: decide which deploy environments (target + tier) the pipeline's deploy job runs for.

Each target (lightsail, appengine, heroku) has two tiers, staging and production, and each pair is
one GitHub environment holding its own variables and secrets: `lightsail-staging`,
`lightsail-production`, `appengine-staging`, ... The plan job cannot read environment-scoped
values, so the repository variable DEPLOY_ENVIRONMENTS names the pairs that are set up, e.g.
"lightsail-staging heroku-production". A fresh copy has none: nothing deploys, the run stays green.

Which tier a run deploys to:
  push to the default branch     staging      (version v0.0.0-main.<short sha>)
  push of a tag v1.2.3           production
  push of a tag v1.2.3-rc.1      staging      (a pre-release)
  workflow_dispatch              DEPLOY_TIER  (redeploys the existing release DEPLOY_TAG)
  anything else                  no deploy

Reads (all optional): GITHUB_EVENT_NAME, GITHUB_REF, GITHUB_REF_NAME, GITHUB_SHA (set by GitHub
Actions), DEFAULT_BRANCH, DEPLOY_ENVIRONMENTS, and for a dispatch DEPLOY_TAG, DEPLOY_TIER and
REQUESTED_TARGETS (comma/space separated, empty = every target enabled for the tier).
Writes `deploys=<JSON list of {target, tier, environment}>`, `tier=` and `version=` to
$GITHUB_OUTPUT (stdout when unset) and a Markdown table to $GITHUB_STEP_SUMMARY saying what to
set to switch each environment on.

  scripts/plan-deploys --check TARGET   (in a deploy job) exit 2 naming the first setting of
                                        TARGET's environment that is not set
  scripts/plan-deploys --released FILE NAME
                                        the image a release recorded (its image.json, FILE) as
                                        `image=NAME@sha256:...` and `attested=` lines; exit 2
                                        unless it names NAME by digest
  scripts/plan-deploys --moving-tags VERSION
                                        the moving tags a release of VERSION takes, given the
                                        published releases (`gh release list --json tagName`) on
                                        standard input: `tags=X.Y latest`, `X.Y` only when VERSION
                                        is the newest X.Y.*, `latest` only when it is the newest
                                        release; none for a pre-release

Exits 2 with one line on stderr for a bad tag, tier or environment name, or a requested target
that is unknown or not enabled for the tier.
"""

from __future__ import annotations

import json
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO


@dataclass(frozen=True)
class Target:
    name: str
    variables: tuple[str, ...]  # environment variables that must be set
    secrets: tuple[str, ...] = ()  # environment secrets that must be set
    optional: str = ""  # what may be set too, for the summary


# The keys are the scripts in deploy/ (tests/test_pipeline.py checks they match).
TARGETS = (
    Target(
        "lightsail",
        ("AWS_ROLE_ARN", "LIGHTSAIL_SERVICE"),
        optional="`AWS_REGION` (default us-east-1)",
    ),
    Target(
        "appengine",
        ("GCP_WORKLOAD_IDENTITY_PROVIDER", "GCP_SERVICE_ACCOUNT", "GCP_PROJECT_ID"),
        optional="`APPENGINE_SERVICE` (default `default`), `APPENGINE_KEEP_VERSIONS` (default 20)",
    ),
    Target("heroku", ("HEROKU_APP",), secrets=("HEROKU_API_KEY",)),
)
TARGET_NAMES = tuple(t.name for t in TARGETS)
TIERS = ("staging", "production")
ENVIRONMENTS = tuple(f"{t}-{tier}" for t in TARGET_NAMES for tier in TIERS)

# v1.2.3, optionally with a pre-release suffix (v1.2.3-rc.1); the deploy scripts need this form.
VERSION_RE = re.compile(r"v\d+\.\d+\.\d+(?:-[0-9A-Za-z.-]+)?")
RELEASE_RE = re.compile(r"v(\d+)\.(\d+)\.(\d+)")  # a release, not a pre-release


class PlanError(Exception):
    """A request the pipeline must refuse (exit 2)."""


def setting(env: dict[str, str], name: str) -> str:
    """A variable of the run, "" when unset (as GitHub passes an empty input or variable)."""
    return env.get(name, "").strip()


def words(text: str) -> list[str]:
    return [w for w in re.split(r"[\s,]+", text.lower()) if w]


def enabled(env: dict[str, str]) -> list[str]:
    """The environments DEPLOY_ENVIRONMENTS switches on, in pipeline order."""
    names = words(setting(env, "DEPLOY_ENVIRONMENTS"))
    unknown = sorted(set(names) - set(ENVIRONMENTS))
    if unknown:
        raise PlanError(
            f"DEPLOY_ENVIRONMENTS names unknown environment(s) {', '.join(unknown)};"
            f" known: {', '.join(ENVIRONMENTS)}"
        )
    return [name for name in ENVIRONMENTS if name in names]


def tier_and_version(env: dict[str, str]) -> tuple[str, str]:
    """The tier and version this run deploys, or ("", "") when the event does not deploy."""
    event = setting(env, "GITHUB_EVENT_NAME")
    ref = setting(env, "GITHUB_REF")
    default = setting(env, "DEFAULT_BRANCH") or "main"
    if event == "workflow_dispatch":
        tier = setting(env, "DEPLOY_TIER").lower()
        if tier not in TIERS:
            raise PlanError(f"tier {tier!r} is not one of {', '.join(TIERS)}")
        version = setting(env, "DEPLOY_TAG")
    elif event == "push" and ref.startswith("refs/tags/v"):
        version = setting(env, "GITHUB_REF_NAME")
        tier = "staging" if "-" in version else "production"
    elif event == "push" and ref == f"refs/heads/{default}":
        return "staging", f"v0.0.0-main.{setting(env, 'GITHUB_SHA')[:7] or 'unknown'}"
    else:
        return "", ""
    if not VERSION_RE.fullmatch(version):
        raise PlanError(f"tag {version!r} is not a release tag like v1.2.3")
    return tier, version


def requested(env: dict[str, str]) -> list[str]:
    names = words(setting(env, "REQUESTED_TARGETS"))
    unknown = sorted(set(names) - set(TARGET_NAMES))
    if unknown:
        raise PlanError(f"unknown target(s) {', '.join(unknown)}; known: {', '.join(TARGET_NAMES)}")
    return names


def plan(env: dict[str, str]) -> tuple[list[dict[str, str]], str, str, str]:
    """Return (deploys, tier, version, summary markdown) for this run."""
    on = enabled(env)
    tier, version = tier_and_version(env)
    wanted = requested(env) if setting(env, "GITHUB_EVENT_NAME") == "workflow_dispatch" else []
    not_ready = [name for name in wanted if f"{name}-{tier}" not in on]
    if not_ready:
        raise PlanError(
            f"requested target(s) not enabled for {tier}: {', '.join(not_ready)}"
            f" (add {', '.join(f'{n}-{tier}' for n in not_ready)} to DEPLOY_ENVIRONMENTS)"
        )
    deploys = [
        {"target": name, "tier": tier, "environment": f"{name}-{tier}"}
        for name in TARGET_NAMES
        if tier and f"{name}-{tier}" in on and (not wanted or name in wanted)
    ]
    return deploys, tier, version, summary(on, deploys, tier, version)


def summary(on: list[str], deploys: list[dict[str, str]], tier: str, version: str) -> str:
    chosen = [d["environment"] for d in deploys]
    if tier:
        head = f"Deploying `{version}` to the {tier} tier: {', '.join(chosen) or 'no environment'}."
    else:
        head = (
            "This run does not deploy: a push to the default branch deploys to staging, a `v*` tag"
            f" to production (a pre-release tag to staging). Enabled now: {', '.join(on) or 'none'}."
        )
    lines = [
        "## Deploy plan",
        "",
        head,
        "",
        "| Environment | Status | To switch it on |",
        "|---|---|---|",
    ]
    for target in TARGETS:
        for each in TIERS:
            name = f"{target.name}-{each}"
            if name in chosen:
                status, todo = "deploying", "nothing"
            elif name in on:
                status, todo = "enabled", "nothing"
            else:
                status, todo = "off", to_enable(target, name)
            lines.append(f"| {name} | {status} | {todo} |")
    lines += [
        "",
        "Environments live under Settings → Environments; DEPLOY_ENVIRONMENTS under Settings →"
        " Secrets and variables → Actions → Variables. docs/pipeline.md explains each setting.",
    ]
    return "\n".join(lines) + "\n"


def to_enable(target: Target, environment: str) -> str:
    """E.g. "environment `heroku-staging` with variable `HEROKU_APP`, secret `HEROKU_API_KEY`;
    then add `heroku-staging` to DEPLOY_ENVIRONMENTS"."""
    parts = []
    for kind, names in (("variable", target.variables), ("secret", target.secrets)):
        if names:
            plural = "s" if len(names) > 1 else ""
            parts.append(f"{kind}{plural} " + ", ".join(f"`{name}`" for name in names))
    text = f"environment `{environment}` with {'; '.join(parts)}"
    if target.optional:
        text += f" (optional: {target.optional})"
    return text + f"; then add `{environment}` to the repository variable `DEPLOY_ENVIRONMENTS`"


def check(env: dict[str, str], name: str) -> int:
    """--check TARGET: fail fast, in the deploy job, on a setting its environment lacks."""
    by_name = {t.name: t for t in TARGETS}
    if name not in by_name:
        print(f"plan-deploys: unknown target {name!r}", file=sys.stderr)
        return 2
    target = by_name[name]
    environment = setting(env, "DEPLOY_ENVIRONMENT") or name
    for needed in target.variables + target.secrets:
        if not setting(env, needed):
            kind = "secret" if needed in target.secrets else "variable"
            print(
                f"plan-deploys: {needed} is not set: add the {kind} to the environment"
                f" {environment} (or remove {environment} from DEPLOY_ENVIRONMENTS)",
                file=sys.stderr,
            )
            return 2
    return 0


def released(text: bytes, name: str) -> str:
    """--released: the outputs for the image a release's image.json records (JSON is UTF-8,
    RFC 8259, whatever the machine's locale)."""
    try:
        recorded = json.loads(text)
        image, attested = recorded["image"], recorded["attested"]
    except (ValueError, TypeError, KeyError) as error:
        raise PlanError(f'image.json is not {{"image": ..., "attested": ...}}: {error}') from None
    if not isinstance(image, str) or not re.fullmatch(
        re.escape(name) + r"@sha256:[0-9a-f]{64}", image
    ):
        raise PlanError(f"image.json names {image!r}, not {name}@sha256:<digest>")
    if not isinstance(attested, bool):
        raise PlanError(f"image.json's attested is {attested!r}, not true or false")
    return f"image={image}\nattested={str(attested).lower()}\n"


def published(answer: TextIO) -> list[dict]:
    """The releases `gh release list --json tagName` printed."""
    try:
        return json.load(answer)
    except ValueError as error:
        raise PlanError(f"the releases are not the JSON of gh release list: {error}") from None


def moving_tags(version: str, releases: list[dict]) -> list[str]:
    """--moving-tags: which of `X.Y` and `latest` a release of VERSION moves, so that each
    names the newest release it covers (a re-run of an older release moves neither)."""
    match = RELEASE_RE.fullmatch(version)
    if not match:
        return []  # a pre-release (v1.2.3-rc.1) moves nothing
    mine = tuple(map(int, match.groups()))
    published = [
        tuple(map(int, found.groups()))
        for release in releases
        if (found := RELEASE_RE.fullmatch(release["tagName"]))
    ]
    tags = []
    if all(other <= mine for other in published if other[:2] == mine[:2]):
        tags.append(f"{mine[0]}.{mine[1]}")
    if all(other <= mine for other in published):
        tags.append("latest")
    return tags


def append(path: str | None, text: str) -> None:
    """Add to a file of GitHub's ($GITHUB_OUTPUT, ...), which it reads as UTF-8; else print."""
    if path:
        with open(path, "ab") as f:
            f.write(text.encode())
    else:
        sys.stdout.write(text)


def main(argv: list[str]) -> int:
    env = dict(os.environ)
    if argv in (["-h"], ["--help"]):
        print(__doc__.strip())
        return 0
    if argv[:1] == ["--check"] and len(argv) == 2:
        return check(env, argv[1])
    try:
        if argv[:1] == ["--released"] and len(argv) == 3:
            sys.stdout.write(released(Path(argv[1]).read_bytes(), argv[2]))
            return 0
        if argv[:1] == ["--moving-tags"] and len(argv) == 2:
            sys.stdout.write(f"tags={' '.join(moving_tags(argv[1], published(sys.stdin)))}\n")
            return 0
    except (PlanError, OSError) as error:
        print(f"plan-deploys: {error}", file=sys.stderr)
        return 2
    if argv:
        print(
            f"plan-deploys: unexpected argument(s) {' '.join(argv)} (see --help)", file=sys.stderr
        )
        return 2
    try:
        deploys, tier, version, text = plan(env)
    except PlanError as error:
        print(f"plan-deploys: {error}", file=sys.stderr)
        return 2
    if not enabled(env):
        # A fresh copy: the run stays green, and its page says what switches deploys on.
        print(
            "::notice title=No deploy environment is enabled::deploys are skipped. Create the"
            " environments (lightsail-staging, heroku-production, ...) with their settings and"
            " name them in the repository variable DEPLOY_ENVIRONMENTS. See docs/pipeline.md."
        )
    elif tier and not deploys:
        print(
            f"::notice title=Nothing to deploy::no {tier} environment is enabled in DEPLOY_ENVIRONMENTS"
        )
    outputs = (
        f"deploys={json.dumps(deploys, separators=(',', ':'))}\ntier={tier}\nversion={version}\n"
    )
    append(env.get("GITHUB_OUTPUT"), outputs)
    append(env.get("GITHUB_STEP_SUMMARY"), text)
    return 0
