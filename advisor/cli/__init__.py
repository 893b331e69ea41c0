"""The ``advisor`` command line. Each command lives in its own module, imported lazily.

Conventions: machine output (``--json``) goes to stdout; progress, logs and the human report
go to stderr when ``--json`` is given (stdout otherwise). Expected errors print one line and
exit with 2 (bad usage or input) or 1 (failure); tracebacks only with ``--debug``.

Other packages add commands through the entry-point group ``transfer_advisor.commands`` (name ->
``module:click_command``); the dashboard's ``advisor ui`` comes from ``advisor_ui`` this way. They are
listed from package metadata and imported only when run or when ``--help`` shows their summary.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from functools import cache
from typing import Any

import click

from advisor import __version__
from advisor.errors import AdvisorError, first_line

# command name -> "module:function"; modules load only when their command runs.
COMMANDS = {
    "recommend": "advisor.cli.recommend:recommend",
    "similarity": "advisor.cli.similarity:similarity",
    "plugins": "advisor.cli.plugins:plugins",
    "report": "advisor.cli.report:report",
    "predict": "advisor.cli.predict:predict",
    "worker": "advisor.cli.worker:worker",
    "advice": "advisor.cli.advice:advice",
}
HELP = {
    "recommend": "Score transfer strategies on your data and recommend one.",
    "similarity": "Domain-similarity and transferability metrics, without training.",
    "plugins": "List plugins, what they register, and load failures.",
    "report": "Print the report of an existing run, without training.",
    "predict": "Classify new data with an exported model.",
    "worker": "Join a run's search from another process or machine.",
    "advice": "Learn the quick advice from past runs, and measure it.",
}
#: Entry-point group through which other packages add ``advisor`` commands.
COMMAND_GROUP = "transfer_advisor.commands"


@cache
def extra_commands() -> dict[str, Any]:
    """Commands other packages declare (``transfer_advisor.commands``), by name; built-ins win a clash."""
    from importlib.metadata import entry_points

    return {ep.name: ep for ep in entry_points(group=COMMAND_GROUP) if ep.name not in COMMANDS}


def _load_extra(name: str) -> click.Command:
    """Import an added command; a broken one is an AdvisorFailure of one line, not a traceback."""
    from advisor.errors import AdvisorFailure

    ep = extra_commands()[name]
    dist = getattr(ep.dist, "name", None) or "an unknown distribution"
    try:
        command = ep.load()
    except Exception as exc:  # any import-time failure of third-party code
        raise AdvisorFailure(f"command {name!r} ({ep.value}, from {dist}) failed to load: "
                             f"{first_line(exc, with_type=True)}") from exc
    if not isinstance(command, click.Command):
        raise AdvisorFailure(f"command {name!r} ({ep.value}, from {dist}) is not a click command")
    return command


class LazyGroup(click.Group):
    """A group whose subcommands import their module only when invoked."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return [name for name in COMMANDS if _available(name)] + sorted(extra_commands())

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name in extra_commands():
            return _load_extra(name)
        if name not in COMMANDS or not _available(name):
            return None
        module, func = COMMANDS[name].split(":")
        return getattr(importlib.import_module(module), func)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        from advisor.errors import AdvisorError

        rows = []
        for name in self.list_commands(ctx):
            if name in COMMANDS:
                rows.append((name, HELP[name]))
                continue
            try:
                rows.append((name, _load_extra(name).get_short_help_str(limit=80)))
            except AdvisorError as exc:
                rows.append((name, f"(unavailable: {exc})"))
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
    except KeyboardInterrupt:
        click.echo("advisor: interrupted", err=True)
        sys.exit(130)
    except Exception as exc:  # AdvisorError: expected; else one line unless --debug
        if debug:
            raise
        line, code = describe_error(exc)
        click.echo(line, err=True)
        sys.exit(code)


def describe_error(exc: BaseException) -> tuple[str, int]:
    """The one line printed for ``exc`` and the exit code: an AdvisorError's own message, a full disk
    anywhere in the exception chain as a failure (exit 1), else an internal error. Storage secrets seen
    in this process are masked."""
    from advisor.runs.files import disk_full, disk_full_failure
    from advisor.runs.location import scrub

    if isinstance(exc, AdvisorError):
        return f"advisor: error: {scrub(str(exc))}", exc.exit_code
    full = disk_full(exc)
    if full is not None:
        return f"advisor: error: {disk_full_failure(full)}", 1
    return (f"advisor: internal error: {type(exc).__name__}: {scrub(str(exc))} "
            "(rerun with --debug for the traceback)", 1)
