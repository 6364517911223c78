"""The `mlservice` command: train the model, smoke-test a running service."""

import tomllib
from importlib import metadata
from pathlib import Path

import click

from mlservice import smoke


def package_version() -> str:
    """The installed distribution's version, else pyproject.toml's in a source checkout."""
    try:
        return metadata.version("mlservice")
    except metadata.PackageNotFoundError:
        pass
    try:
        pyproject = Path(__file__).resolve().parents[2] / "pyproject.toml"
        return tomllib.loads(pyproject.read_text())["project"]["version"]
    except (OSError, ValueError, KeyError):
        return "unknown (not installed)"


def print_version(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if value and not ctx.resilient_parsing:
        click.echo(f"mlservice {package_version()}")
        ctx.exit()


@click.group()
@click.option(
    "--version",
    is_flag=True,
    expose_value=False,
    is_eager=True,
    callback=print_version,
    help="Show the version and exit.",
)
def main() -> None:
    """Train, check and ship the mlservice model."""


@main.command()
@click.option(
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    default=Path("models/model.skops"),
    show_default=True,
    help="Where to write the skops artifact; the model card goes next to it as .json.",
)
@click.option(
    "--seed", type=int, help="Seed for the split and the folds [default: SEED in training.py]."
)
def train(output: Path, seed: int | None) -> None:
    """Train the classifier and write the artifact and its model card."""
    # Imported here: scikit-learn takes seconds to load, and `smoke` runs in deploy jobs.
    from mlservice.contract import ContractError

    try:
        from mlservice import model, training
    except ContractError as error:
        raise click.ClickException(str(error)) from None
    try:
        pipeline, card, held_out = training.train(training.SEED if seed is None else seed)
        card = training.save(pipeline, card, output, held_out)
        served = model.load(output)  # as the service will: a model it cannot serve fails here
    except model.ModelError as error:
        raise click.ClickException(str(error)) from None
    held_out = card["metrics"]["held_out"]
    click.echo(
        f"wrote {output} (version {card['version']}): {card['estimator']}, "
        f"held-out accuracy {held_out['accuracy']}, ROC-AUC {held_out['roc_auc']}, "
        f"{card['metrics']['cross_validation']['folds']}-fold ROC-AUC "
        f"{card['metrics']['cross_validation']['roc_auc_mean']}"
    )
    click.echo(f"served with {served.runtime}; {model.serving_note(card['serving'])}")


@main.command("smoke")
@click.argument("url")
@click.option("--wait", type=float, default=0, help="Seconds to wait for /readyz first.")
@click.option("--expect-version", help="Fail unless the service serves this model version.")
@click.option(
    "--metrics-token",
    envvar="METRICS_TOKEN",
    show_envvar=True,
    help="The service's METRICS_TOKEN, to check that /metrics answers with it; without one, "
    "/metrics must be off or refuse. Prefer the environment: a command line is visible to others.",
)
def smoke_command(
    url: str, wait: float, expect_version: str | None, metrics_token: str | None
) -> None:
    """Check a running service at URL: health, readiness, predictions, error handling, and that
    /metrics is not public."""
    try:
        url = smoke.base_url(url)
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint="URL") from None
    try:
        token = (metrics_token or "").strip() or None  # an unset pipeline secret arrives empty
        served = smoke.run(url, wait=wait, say=click.echo, metrics_token=token)
        if expect_version and served != expect_version:
            raise smoke.SmokeFailure(f"serving model {served}, expected {expect_version}")
    except (smoke.SmokeFailure, OSError, KeyError, TypeError, ValueError) as error:
        raise click.ClickException(f"smoke test failed: {error}") from None
    click.echo(f"smoke test passed: {url} serves model {served}")


@main.command("compare-cards")
@click.argument("old", type=click.Path(dir_okay=False, path_type=Path))
@click.argument("new", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--tolerance",
    type=click.FloatRange(min=0),
    default=0.01,
    show_default=True,
    help="Largest drop in held-out ROC-AUC from OLD to NEW that still passes.",
)
@click.option(
    "--accept-regression",
    is_flag=True,
    help="Pass a drop beyond the tolerance with a warning (the floor still applies).",
)
@click.option(
    "--baseline-label",
    help="What OLD is, for the table and notes (e.g. 'release v1.2.0') [default: OLD's path].",
)
def compare_cards(
    old: Path, new: Path, tolerance: float, accept_regression: bool, baseline_label: str | None
) -> None:
    """Print NEW's held-out metrics against OLD's as Markdown; fail the quality gate.

    OLD may be missing (no baseline yet). Exits 1 when NEW's held-out ROC-AUC is under the
    contract's floor (roc_auc_floor in model.toml), or below OLD's by more than the tolerance.
    """
    from mlservice import cards
    from mlservice.contract import ContractError

    try:
        from mlservice.contract import CONTRACT
    except ContractError as error:
        raise click.ClickException(str(error)) from None

    baseline, note = None, None
    if not old.exists():
        note = f"No baseline yet: there is no {baseline_label or old} to compare with."
    else:
        try:
            baseline = cards.read_card(old)
        except cards.CardError as error:
            note = f"No comparison: the baseline is unreadable. {error}"
    try:
        comparison = cards.compare(
            baseline,
            cards.read_card(new),
            tolerance=tolerance,
            floor=CONTRACT.roc_auc_floor,
            accept_regression=accept_regression,
            baseline_label=baseline_label or "Baseline",
            baseline_note=note,
        )
    except cards.CardError as error:
        raise click.ClickException(str(error)) from None
    click.echo(comparison.markdown, nl=False)
    # Workflow commands: GitHub shows these lines as annotations on the run.
    for warning in comparison.warnings:
        click.echo(f"::warning title=Model quality gate::{warning}", err=True)
    for failure in comparison.failures:
        click.echo(f"::error title=Model quality gate::{failure}", err=True)
    if not comparison.passed:
        raise SystemExit(1)


@main.command("export-curves")
@click.argument("card_path", metavar="CARD", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--output-dir",
    type=click.Path(file_okay=False, path_type=Path),
    required=True,
    help="Where to write model-roc-<label>.svg and model-precision-recall-<label>.svg.",
)
def export_curves(card_path: Path, output_dir: Path) -> None:
    """Write the curves of the model card CARD as SVG files, drawn as on the /model page.

    One ROC and one precision-recall file per class drawn: the positive label of a binary model,
    each class against the rest for more.
    """
    from jinja2 import Environment, PackageLoader

    from mlservice import cards

    try:
        figures = cards.figures(cards.read_card(card_path))
    except cards.CardError as error:
        raise click.ClickException(str(error)) from None
    if not figures:
        raise click.ClickException(f"The model card {card_path} records no curves.")
    template = Environment(loader=PackageLoader(__package__), autoescape=True).get_template(
        "curve.svg"
    )
    output_dir.mkdir(parents=True, exist_ok=True)
    for figure in figures:
        path = output_dir / f"model-{figure['id']}.svg"
        path.write_text(template.render(figure=figure) + "\n")
        click.echo(f"wrote {path}")
