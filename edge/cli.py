"""`mpox`: the one command line of the project. Subcommands live in the modules they drive."""

from __future__ import annotations

import logging

import click

from edge import __version__


@click.group()
@click.version_option(__version__, prog_name="mpox")
@click.option("-v", "--verbose", is_flag=True, help="Log debug messages.")
def main(verbose: bool) -> None:
    """Mpox screening kiosk: training, quantization and the edge runtime."""
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, format="%(levelname)s %(name)s: %(message)s")


@main.command()
def info() -> None:
    """Show what this installation runs with."""
    import cv2
    import openvino

    from edge import preprocess

    click.echo(f"mpox {__version__}")
    click.echo(f"preprocessing backend: {preprocess.BACKEND}")
    click.echo(f"openvino {openvino.__version__}, opencv {cv2.__version__}")
