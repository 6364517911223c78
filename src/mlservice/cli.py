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
    from mlservice import model, training

    try:
        pipeline, card = training.train(training.SEED if seed is None else seed)
    except model.ModelError as error:
        raise click.ClickException(str(error)) from None
    card = training.save(pipeline, card, output)
    held_out = card["metrics"]["held_out"]
    click.echo(
        f"wrote {output} (version {card['version']}): {card['estimator']}, "
        f"held-out accuracy {held_out['accuracy']}, ROC-AUC {held_out['roc_auc']}, "
        f"{card['metrics']['cross_validation']['folds']}-fold ROC-AUC "
        f"{card['metrics']['cross_validation']['roc_auc_mean']}"
    )


@main.command("smoke")
@click.argument("url")
@click.option("--wait", type=float, default=0, help="Seconds to wait for /readyz first.")
@click.option("--expect-version", help="Fail unless the service serves this model version.")
def smoke_command(url: str, wait: float, expect_version: str | None) -> None:
    """Check a running service at URL: health, readiness, predictions, error handling."""
    try:
        url = smoke.base_url(url)
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint="URL") from None
    try:
        served = smoke.run(url, wait=wait, say=click.echo)
        if expect_version and served != expect_version:
            raise smoke.SmokeFailure(f"serving model {served}, expected {expect_version}")
    except (smoke.SmokeFailure, OSError, KeyError, TypeError) as error:
        raise click.ClickException(f"smoke test failed: {error}") from None
    click.echo(f"smoke test passed: {url} serves model {served}")
