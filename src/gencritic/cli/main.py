"""Entry point of the ``gencritic`` command.

Each area adds its commands from its own module (``cli/<area>.py`` with ``register(app)``),
so commands stay a few lines each and areas do not edit one shared file.
"""

from __future__ import annotations

import importlib
import logging
import sys

import typer

from gencritic import __version__
from gencritic.errors import GencriticError

app = typer.Typer(
    name="gencritic",
    help=(
        "Judge what generative AI makes: CLIP and perceptual scores for images, rendered 3D assets and "
        "animations; diagnostics; validation against human ratings.\n\n"
        "Start with:  gencritic score examples/images --out out/  (then open out/results.csv)"
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

# Areas that contribute commands. Each module has register(app).
COMMAND_MODULES = ("score", "render", "diagnose", "validate", "generate", "serve", "cache", "geometry", "judges")


def _version(value: bool) -> None:
    if value:
        typer.echo(f"gencritic {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool | None = typer.Option(None, "--version", callback=_version, is_eager=True,
                                           help="Print the version and exit."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Log debug details."),
) -> None:
    logging.basicConfig(level=logging.DEBUG if verbose else logging.WARNING,
                        format="gencritic: %(levelname)s: %(message)s", stream=sys.stderr)
    # huggingface_hub prints its warnings with its own handler and also passes them up: without
    # this, every hub warning (an offline machine's retries: ~10 of them) is printed twice
    logging.getLogger("huggingface_hub").propagate = False


for _name in COMMAND_MODULES:
    importlib.import_module(f"gencritic.cli.{_name}").register(app)


def main() -> None:
    """Console script: run-level errors print one line and exit 2; Ctrl-C exits 130."""
    try:
        app()
    except GencriticError as exc:
        typer.echo(f"gencritic: error: {exc}", err=True)
        sys.exit(2)
    except KeyboardInterrupt:
        typer.echo("gencritic: interrupted; finished work is saved, run the same command again to resume", err=True)
        sys.exit(130)


if __name__ == "__main__":
    main()
