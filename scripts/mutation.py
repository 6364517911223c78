"""`make mutation`: mutation testing of the core modules and the deploy scripts with mutmut
(docs/testing.md).

mutmut copies the sources to mutants/, changes one operator, constant or call at a time and runs
the tests that cover that line: a mutant the tests do not notice "survives". The files to mutate
and the fast tests to run are set in pyproject.toml ([tool.mutmut]). This script runs the given
modules (all of them by default), then prints each one's score and its surviving mutants.

    make mutation MODULES="config model"

Some survivors are equivalent: the change does not alter what the code does, so no test can
kill them. scripts/equivalent-mutants.toml lists them, each with the reason, by the line they
change and what they change it into; they are counted apart, and the score that must reach TARGET is over the others.
"""

import argparse
import re
import subprocess
import sys
import tomllib
from pathlib import Path

# Each module by the name `make mutation MODULES=...` takes, and the one mutmut gives it.
MODULES = {
    "config": "mlservice.config",
    "contract": "mlservice.contract",
    "model": "mlservice.model",
    "validation": "mlservice.validation",
    "api": "mlservice.api",
    "cards": "mlservice.cards",
    "security": "mlservice.security",
    "process": "mlservice.process",
    "answers": "mlservice.answers",
    "logs": "mlservice.logs",
    "telemetry": "mlservice.telemetry",
    "metrics": "mlservice.metrics",
    "deploy.common": "deploy.common",
    "deploy.lightsail": "deploy.lightsail",
    "deploy.appengine": "deploy.appengine",
    "deploy.heroku": "deploy.heroku",
    "scripts.plan_deploys": "scripts.plan_deploys",
    "scripts.push_tested_image": "scripts.push_tested_image",
    "rename_rules": "scripts.rename_rules",  # template-only
}
EQUIVALENT = Path(__file__).with_name("equivalent-mutants.toml")
TARGET = 95.0  # percent of the non-equivalent mutants killed
MUTMUT = str(Path(sys.executable).with_name("mutmut"))
# "    mlservice.config.x__positive_int__mutmut_12: survived"
RESULT = re.compile(r"^\s*(\S+): (.+)$")
KILLED = {"killed", "timeout", "caught by type check"}
UNTESTED = {"not checked", "skipped"}


def module_of(mutant: str) -> str | None:
    """Which of MODULES a mutant's name (mlservice.answers.ranking.x_rank__mutmut_1) is in."""
    return next((name for name, dotted in MODULES.items() if mutant.startswith(f"{dotted}.")), None)


def changed_lines(mutant: str) -> list[str]:
    """The lines mutmut changed, from its diff."""
    diff = subprocess.run(
        [MUTMUT, "show", mutant], capture_output=True, text=True, check=True
    ).stdout
    return [
        line
        for line in diff.splitlines()
        if line[:1] in "-+" and not line.startswith(("---", "+++"))
    ]


def qualified(module: str) -> str:
    """mutmut's name for a module: mlservice.config, scripts.plan_deploys."""
    return module if "." in module else f"mlservice.{module}"


def _alternatives(to: str | list[str]) -> list[str]:
    return [to] if isinstance(to, str) else to


def equivalent_reason(module: str, changed: list[str], known: list[dict]) -> str | None:
    """Why this mutant is equivalent, if an entry of equivalent-mutants.toml matches it."""
    removed = [line[1:].strip() for line in changed if line.startswith("-")]
    added = [line[1:].strip() for line in changed if line.startswith("+")]
    for entry in known:
        if (
            entry["module"] == module
            and any(entry["line"] in line for line in removed)
            and any(to in line for to in _alternatives(entry["to"]) for line in added)
        ):
            return entry["why"]
    return None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("modules", nargs="*", help=f"some of {', '.join(MODULES)} [default: all]")
    parser.add_argument("--jobs", type=int, default=2, help="test processes at once")
    args = parser.parse_args()
    if unknown := set(args.modules) - set(MODULES):
        parser.error(f"no module {', '.join(sorted(unknown))}; choose from {', '.join(MODULES)}")
    args.modules = args.modules or list(MODULES)

    for module in args.modules:
        # Named mutants are always re-tested: no result of an older run is reused.
        run = subprocess.run(
            [MUTMUT, "run", "--max-children", str(args.jobs), f"{MODULES[module]}.*"],
            capture_output=True,
            text=True,
        )
        if run.returncode:
            # mutmut stops when the unmutated tests fail; their output says why.
            print(run.stdout[-5000:], run.stderr[-5000:], sep="\n", file=sys.stderr)
            return run.returncode
    listing = subprocess.run(
        [MUTMUT, "results", "--all", "true"], capture_output=True, text=True, check=True
    ).stdout
    results: dict[str, dict[str, str]] = {module: {} for module in args.modules}
    for line in listing.splitlines():
        if (match := RESULT.match(line)) and (module := module_of(match[1])) in results:
            results[module][match[1]] = match[2]

    known = tomllib.loads(EQUIVALENT.read_text())["mutant"]
    rows, lowest = [], 100.0
    report = []
    for module, statuses in results.items():
        tested = {name: status for name, status in statuses.items() if status not in UNTESTED}
        killed = sum(status in KILLED for status in tested.values())
        equivalent, survivors = 0, []
        for name, status in tested.items():
            if status in KILLED:
                continue
            changed = changed_lines(name)
            if why := equivalent_reason(module, changed, known):
                equivalent += 1
                report.append(f"  {name}: equivalent, {why}")
            else:
                survivors.append((name, status, changed))
        counted = len(tested) - equivalent
        score = 100 * killed / counted if counted else 100.0
        lowest = min(lowest, score)
        rows.append((module, len(tested), killed, len(survivors), equivalent, score))
        for name, status, changed in survivors:
            report.append(f"  {name} ({status})")
            report.extend(f"      {line.strip()}" for line in changed)

    print("Surviving mutants, with the lines they change:" if report else "No survivors.")
    print("\n".join(report))
    header = ("module", "mutants", "killed", "survived", "equivalent", "score", "of all")
    print(f"\n{header[0]:<26}" + "".join(f"{name:>11}" for name in header[1:]))
    for module, tested, killed, survived, equivalent, score in rows:
        counts = "".join(f"{count:>11}" for count in (tested, killed, survived, equivalent))
        print(f"{module:<26}{counts}{score:>10.1f}%{100 * killed / max(tested, 1):>10.1f}%")
    print(
        f"\nscore: killed out of the non-equivalent mutants (target {TARGET:.0f}% each); "
        "of all: killed out of every mutant tested."
    )
    return 0 if lowest >= TARGET else 1


if __name__ == "__main__":
    sys.exit(main())
