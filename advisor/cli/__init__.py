"""The ``advisor`` command line. Each command lives in its own module, imported lazily.

Conventions: machine output (``--json``) goes to stdout; progress, logs and the human report
go to stderr when ``--json`` is given (stdout otherwise). Expected errors print one line and
exit with 2 (bad usage or input) or 1 (failure); tracebacks only with ``--debug``.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys

import click

from advisor import __version__
from advisor.errors import AdvisorError

# command name -> "module:function"; modules load only when their command runs.
COMMANDS = {
    "recommend": "advisor.cli.recommend:recommend",
    "similarity": "advisor.cli.similarity:similarity",
    "plugins": "advisor.cli.plugins:plugins",
    "report": "advisor.cli.report:report",
    "predict": "advisor.cli.predict:predict",
    "worker": "advisor.cli.worker:worker",
    "ui": "advisor.cli.ui:ui",
}
HELP = {
    "recommend": "Score transfer strategies on your data and recommend one.",
    "similarity": "Domain-similarity and transferability metrics, without training.",
    "plugins": "List plugins, what they register, and load failures.",
    "report": "Print the report of an existing run, without training.",
    "predict": "Classify new data with an exported model.",
    "worker": "Join a run's search from another process or machine.",
    "ui": "Start the Streamlit dashboard.",
}


class LazyGroup(click.Group):
    """A group whose subcommands import their module only when invoked."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return [name for name in COMMANDS if _available(name)]

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in COMMANDS or not _available(name):
            return None
        module, func = COMMANDS[name].split(":")
        return getattr(importlib.import_module(module), func)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, HELP[name]) for name in self.list_commands(ctx)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


def _terminate_as_interrupt() -> None:
    """SIGTERM unwinds like Ctrl-C, so Optuna marks the running trial failed and files are closed."""
    import signal

    def handler(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    try:
        signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread (e.g. inside a test runner thread)
        pass


def _available(name: str) -> bool:
    module = COMMANDS[name].split(":")[0]
    return importlib.util.find_spec(module) is not None


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="advisor")
@click.option("--strict", is_flag=True, help="Make a broken third-party plugin fatal.")
@click.option("--debug", is_flag=True, help="Show tracebacks for errors.")
@click.pass_context
def cli(ctx: click.Context, strict: bool, debug: bool) -> None:
    """Transfer Advisor: which transfer strategy to use on your data, and proof."""
    ctx.ensure_object(dict)
    ctx.obj["strict"] = strict
    ctx.obj["debug"] = debug


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``advisor`` script: one-line errors unless ``--debug``."""
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args
    _terminate_as_interrupt()
    try:
        cli.main(args=args, prog_name="advisor", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("advisor: interrupted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except AdvisorError as exc:
        if debug:
            raise
        click.echo(f"advisor: error: {exc}", err=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        click.echo("advisor: interrupted", err=True)
        sys.exit(130)
    except Exception as exc:  # an unexpected failure: one line unless --debug
        if debug:
            raise
        click.echo(f"advisor: internal error: {type(exc).__name__}: {exc} "
                   "(rerun with --debug for the traceback)", err=True)
        sys.exit(1)
