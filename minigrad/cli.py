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
import errno
import sys
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path

import minigrad as mg
from minigrad.checks import SEEDS
from minigrad.serialization import writable_folder


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


PRECISIONS = {
    "default": "PyTorch's defaults: convolutions in TF32 on GPUs that have it, matmuls strict",
    "fp32": "strict float32 everywhere (TF32 off)",
    "tf32": "TF32 for convolutions and matmuls",
    "amp": "mixed precision: float16 autocast with dynamic loss scaling (GradScaler)",
}


def add_precision_argument(group) -> None:
    """--precision {default,fp32,tf32,amp}, to a parser or an argument group."""
    group.add_argument("--precision", choices=list(PRECISIONS), default="default",
                       help="; ".join(f"{name}: {what}" for name, what in PRECISIONS.items()))


def set_precision_switches(precision: str) -> None:
    """The TF32 switches for one of PRECISIONS: fp32 both off, tf32 both on, default and amp
    as shipped (convolutions TF32, matmuls strict; amp adds autocast in the step)."""
    mg.backends.cudnn.allow_tf32 = precision != "fp32"
    mg.set_float32_matmul_precision("high" if precision == "tf32" else "highest")


def apply_precision(precision: str, device: str) -> bool:
    """Set minigrad's switches for --precision, print which precision is in force on
    `device`, and return whether fit should train with amp."""
    set_precision_switches(precision)
    on_cpu = mg.backend.Device(device).type == "cpu"
    if precision == "amp":
        note = (" (on the CPU float16 has no tensor cores: correct, and slower than float32)"
                if on_cpu else "")
        print(f"precision amp: {PRECISIONS['amp']}{note}")
    else:
        print(f"precision {precision}: {mg.backends.precision_summary(device)}"
              + ("" if on_cpu else f" ({PRECISIONS[precision]})"))
    return precision == "amp"


def existing_folder(flag: str, path) -> Path:
    """`path` if it is a folder, else a UsageError (the folder is never created)."""
    folder = Path(path).expanduser()
    if not folder.is_dir():
        raise UsageError(f"{flag} {path}: no such folder")
    return folder


def output_folder(flag: str, path) -> Path:
    """`path` as a folder to write into, checked before any work: made if missing, and a
    UsageError naming `flag` if a file is in the way or nothing can be written there (a
    read-only mount, no permission)."""
    folder = Path(path).expanduser()
    try:
        writable_folder(folder, flag)
    except OSError as error:
        raise UsageError(f"{error.strerror}; choose another {flag}") from None
    return folder


def seed(text: str) -> int:
    """--seed's type: an integer that mg.manual_seed (and torch's) accepts."""
    value = _number(text, int, "an integer")
    if not SEEDS[0] <= value < SEEDS[1]:
        raise argparse.ArgumentTypeError(f"must be an integer from -2**63 to 2**64 - 1, got "
                                         f"{text}")
    return value


@contextmanager
def training_errors(args):
    """Around `fit` in an example: what can go wrong with --out and --resume, as one line
    that names the flag to change (the file is named by the error itself)."""
    try:
        yield
    except mg.training.ResumeError as error:
        raise UsageError(f"--resume: {error}") from None
    except mg.CheckpointError as error:
        raise UsageError(f"--resume: {error}; delete it or choose another --out to start "
                         "over") from None
    except OSError as error:
        path = getattr(error, "path", None) or error.filename
        if path is None or not _inside(Path(path), Path(args.out).expanduser()):
            raise
        advice = ("free some space there or choose another --out"
                  if error.errno == errno.ENOSPC else "choose another --out")
        raise UsageError(f"--out {args.out}: {error.strerror or error}; {advice}") from None


def _inside(path: Path, folder: Path) -> bool:
    try:
        return path.resolve().is_relative_to(folder.resolve())
    except OSError:
        return False


# ---------------------------------------------------------------------------------------------
# the datasets the examples share


def add_voc_arguments(parser: ArgumentParser, image_size: int, synthetic: str):
    """--voc-root, --download, --synthetic N, --image-size and --workers, as one group (returned,
    for more); `synthetic` says what --synthetic trains on."""
    data = parser.add_argument_group("data (one of --voc-root and --synthetic)")
    data.add_argument("--voc-root", default=None,
                      help="the folder holding VOCdevkit (or VOCdevkit, or VOC2012 itself)")
    data.add_argument("--download", action="store_true",
                      help="fetch VOC2012 trainval (1.9 GB, MD5-checked, resumable) into "
                           "--voc-root first, unless it is already there")
    data.add_argument("--synthetic", type=positive_int, default=None, metavar="N",
                      help=f"train on N synthetic {synthetic} instead (no download)")
    data.add_argument("--image-size", type=positive_int, default=image_size,
                      help="side of the square crops the network sees")
    data.add_argument("--workers", type=non_negative_int, default=2,
                      help="threads decoding and augmenting images")
    return data


def check_voc_arguments(parser: ArgumentParser, args) -> None:
    if (args.voc_root is None) == (args.synthetic is None):
        parser.error("give exactly one of --voc-root DIR and --synthetic N")
    if args.download and args.voc_root is None:
        parser.error("--download needs --voc-root DIR (where VOC goes)")


def voc_tree(args) -> Path:
    """The folder the VOC tree is read from: a synthetic one written to OUT/synthetic_voc
    first (--synthetic), or --voc-root, downloaded into with --download."""
    from minigrad.data.voc import download_voc, find_voc_folder, make_synthetic_voc

    if args.synthetic is not None:
        if args.synthetic < 2:
            raise UsageError(f"--synthetic {args.synthetic}: needs at least 2 images")
        root = Path(args.out) / "synthetic_voc"
        make_synthetic_voc(root, args.synthetic, image_size=max(args.image_size, 32) * 3 // 2,
                           seed=args.seed)
        print(f"wrote {args.synthetic} synthetic images in VOC's layout to {root}")
        return root
    root = Path(args.voc_root).expanduser()
    if args.download:
        try:
            download_voc(root, progress=not args.no_progress)
        except (OSError, ValueError) as error:
            raise UsageError(f"--download into --voc-root {args.voc_root}: {error}") from None
        return root
    try:
        find_voc_folder(root, "2012")
    except FileNotFoundError as error:
        raise UsageError(f"--voc-root {args.voc_root}: {error}; or add --download to fetch "
                         "VOC2012 (1.9 GB) there") from None
    return root


def fashion_mnist(args, transform):
    """(train, test) Fashion-MNIST from --data-dir (else the usual places, or a download),
    each cut to its first --subset images when given."""
    from minigrad.data import FashionMNIST, Subset

    root = existing_folder("--data-dir", args.data_dir) if args.data_dir else None
    try:
        train = FashionMNIST(root, train=True, transform=transform)
        test = FashionMNIST(root, train=False, transform=transform)
    except (FileNotFoundError, ValueError, OSError) as error:
        flag = f"--data-dir {args.data_dir}" if args.data_dir else "--data-dir"
        raise UsageError(f"{flag}: {error}") from None
    if args.subset:  # (the test set has 10,000 images: a larger N takes them all)
        train = Subset(train, range(min(args.subset, len(train))))
        test = Subset(test, range(min(args.subset, len(test))))
    return train, test


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
