"""What the examples' command lines share: help that shows every default, checked values,
one-line errors that name the flag to change (the traceback behind --debug), and Ctrl-C that
saves and says how to resume.

    parser = cli.ArgumentParser(description="...")
    parser.add_argument("--epochs", type=cli.positive_int, default=10, help="...")
    ...
    if __name__ == "__main__":
        cli.run(main)          # main(argv) parses with `parser` and does the work
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

import minigrad as mg


class UsageError(Exception):
    """A mistake on the command line; the message starts with the flag to change."""


class _ShowDefaults(argparse.ArgumentDefaultsHelpFormatter):
    """Each flag's help ends with its default, unless it has none to show (None, or a switch
    that is off unless given)."""

    def _get_help_string(self, action):
        if action.default is None or isinstance(action.default, bool):
            return action.help
        return super()._get_help_string(action)


class ArgumentParser(argparse.ArgumentParser):
    """argparse's parser with every default in --help, a --debug flag, and errors as one line
    on stderr (exit status 2)."""

    def __init__(self, **kwargs):
        kwargs.setdefault("formatter_class", _ShowDefaults)
        super().__init__(**kwargs)
        self.add_argument("--debug", action="store_true",
                          help="show the full traceback of an error")

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def positive_int(text: str) -> int:
    value = _number(text, int, "an integer")
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1, got {text}")
    return value


def non_negative_int(text: str) -> int:
    value = _number(text, int, "an integer")
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be an integer >= 0, got {text}")
    return value


def positive_float(text: str) -> float:
    value = _number(text, float, "a number")
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a number > 0, got {text}")
    return value


def _number(text: str, kind: type, what: str):
    try:
        return kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be {what}, got {text!r}") from None


def check_device(flag: str, device: str) -> str:
    """`device` if it can be used here, else a UsageError naming `flag` and what to do."""
    try:
        parsed = mg.backend.Device(device)
    except (TypeError, ValueError) as error:
        raise UsageError(f"{flag} {device}: {error}") from None
    if parsed.type == "cuda":
        try:
            mg.backend.cupy_module()
        except Exception as error:  # CuPy missing or broken: its message says what to install
            raise UsageError(f"{flag} {device}: {error}; or use {flag} cpu") from None
        if not mg.cuda.is_available():
            raise UsageError(f"{flag} {device}: CuPy finds no CUDA GPU on this machine; use "
                             f"{flag} cpu")
    return device


def existing_folder(flag: str, path) -> Path:
    """`path` if it is a folder, else a UsageError (the folder is never created)."""
    folder = Path(path).expanduser()
    if not folder.is_dir():
        raise UsageError(f"{flag} {path}: no such folder")
    return folder


def output_folder(flag: str, path) -> Path:
    """`path` as a folder to write into: made if missing, a UsageError if a file is there."""
    folder = Path(path).expanduser()
    if folder.exists() and not folder.is_dir():
        raise UsageError(f"{flag} {path}: is a file, not a folder")
    return folder


def run(main: Callable, argv=None) -> None:
    """Run main(argv) as a command: exit 0 on success; a mistake or a failure is one line on
    stderr and exit 1 (with --debug, the traceback instead); Ctrl-C exits 130 after saying
    what was saved and how to resume."""
    argv = sys.argv[1:] if argv is None else list(argv)
    debug = "--debug" in argv
    prog = Path(sys.argv[0]).name
    try:
        main(argv)
    except mg.training.TrainingInterrupted as stop:
        how = (" Run the same command with --resume to continue from there."
               if stop.checkpoint is not None else "")
        print(f"{prog}: {stop}.{how}", file=sys.stderr)
        sys.exit(130)
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        sys.exit(130)
    except Exception as error:
        if debug:
            raise
        if isinstance(error, UsageError):
            print(f"{prog}: error: {error}", file=sys.stderr)
        else:
            print(f"{prog}: error: {type(error).__name__}: {error} (--debug shows the "
                  "traceback)", file=sys.stderr)
        sys.exit(1)
