"""`make mutation`: mutation testing of the core modules with mutmut (docs/testing.md).

mutmut copies the sources to mutants/, changes one operator, constant or call at a time and runs
the tests that cover that line: a mutant the tests do not notice "survives". The files to mutate
and the fast tests to run are set in pyproject.toml ([tool.mutmut]). This script runs the given
modules (all of them by default), then prints each one's score and its surviving mutants.

    make mutation MODULES="config model"
"""

import argparse
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

MODULES = ("config", "model", "validation", "api", "answers")
MUTMUT = str(Path(sys.executable).with_name("mutmut"))
# "    mlservice.config.x__positive_int__mutmut_12: survived"
RESULT = re.compile(r"^\s*mlservice\.(\w+)\.(\S+): (.+)$")
KILLED = {"killed", "timeout", "caught by type check"}
UNTESTED = {"not checked", "skipped"}


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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("modules", nargs="*", default=MODULES, choices=MODULES)
    parser.add_argument("--jobs", type=int, default=2, help="test processes at once")
    args = parser.parse_args()

    for module in args.modules:
        # Named mutants are always re-tested: no result of an older run is reused.
        run = subprocess.run(
            [MUTMUT, "run", "--max-children", str(args.jobs), f"mlservice.{module}.*"],
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
        if (match := RESULT.match(line)) and match[1] in results:
            results[match[1]][f"mlservice.{match[1]}.{match[2]}"] = match[3]

    print(f"{'module':<12} {'mutants':>7} {'killed':>7} {'survived':>8} {'score':>7}")
    for module, statuses in results.items():
        counts = Counter(statuses.values())
        tested = len(statuses) - sum(counts[status] for status in UNTESTED)
        killed = sum(counts[status] for status in KILLED)
        score = f"{100 * killed / tested:.1f}%" if tested else "-"
        print(f"{module:<12} {tested:>7} {killed:>7} {tested - killed:>8} {score:>7}")
    for module, statuses in results.items():
        survivors = [name for name, status in statuses.items() if status not in KILLED | UNTESTED]
        if survivors:
            print(f"\nSurviving in {module}.py ({len(survivors)}):")
        for name in survivors:
            print(f"  {name} ({statuses[name]})")
            for line in changed_lines(name):
                print(f"      {line.strip()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
