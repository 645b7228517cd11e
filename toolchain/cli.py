"""``toolchain <verb>``: the command-line front door.

Each verb lives in ``toolchain.commands.<module>`` exposing ``HELP``,
``add_arguments(parser)`` and ``run(args) -> int``. The table below is explicit
(no import-time registry); a verb's module is imported only when it is parsed
or run, so ``toolchain inspect`` never pays for TensorFlow.
"""
from __future__ import annotations

import argparse
import importlib
import os
import sys
import traceback
from collections.abc import Sequence

from .core.errors import ExitCode, ToolchainError
from .core.escape import terminal_text

DEBUG_HELP = "show tracebacks of internal errors (before or after the verb)"
MAX_ERROR_CHARS = 2000  # an error quoting a 10,000-character name still fits a terminal line or two

# verb -> module under toolchain.commands
VERBS: dict[str, str] = {
    "inspect": "inspect_model",
    "recluster": "recluster",
    "palettise": "palettise",
    "profiles": "profiles",
    "compile": "compile",
    "firmware": "firmware",
    "firmware-check": "firmware_check",
    "finetune": "finetune",
    "quantize": "quantize",
    "example": "example",
    "deploy": "deploy",
    "report": "report",
    "sweep": "sweep",
}


class _Parser(argparse.ArgumentParser):
    # argparse exits with 2 on usage errors, which matches ExitCode.BAD_INPUT.
    def error(self, message: str) -> None:  # type: ignore[override]
        # one line, like every other error (the message may quote a hostile argument); the usage is one --help away
        sys.stderr.write(f"error: {terminal_text(message)} (see '{terminal_text(self.prog)} --help')\n")
        raise SystemExit(int(ExitCode.BAD_INPUT))


def _available_verbs() -> dict[str, object]:
    modules = {}
    for verb, mod in VERBS.items():
        try:
            modules[verb] = importlib.import_module(f"toolchain.commands.{mod}")
        except ModuleNotFoundError as exc:
            if exc.name != f"toolchain.commands.{mod}":
                raise
    return modules


def build_parser() -> argparse.ArgumentParser:
    from .core.version import __version__

    parser = _Parser(
        prog="toolchain",
        description="Re-cluster, palettise, compile and report int8 TFLite models for Arm Ethos-U/N NPUs.",
    )
    parser.add_argument("--version", action="version", version=f"toolchain {__version__}")
    parser.add_argument("--debug", action="store_true", help=DEBUG_HELP)
    sub = parser.add_subparsers(dest="verb", metavar="VERB", parser_class=_Parser)
    for verb, module in _available_verbs().items():
        p = sub.add_parser(verb, help=module.HELP, description=module.HELP)
        module.add_arguments(p)
        # --debug after the verb too; SUPPRESS: when absent there, the value before the verb stands
        p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=DEBUG_HELP)
        p.set_defaults(_run=module.run)
    return parser


def undecodable_argument(argv: Sequence[str]) -> str | None:
    """The first argument that is not text: bytes the locale could not decode (Python keeps them as lone
    surrogates, which every later write of a report or a JSON document fails to encode)."""
    for i, arg in enumerate(argv, 1):
        if isinstance(arg, str) and not arg.isascii():
            try:
                arg.encode("utf-8")
            except UnicodeEncodeError:
                try:  # show the bytes as given (\xff), not Python's stand-ins for them (\udcff)
                    shown = arg.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
                except UnicodeEncodeError:
                    shown = arg
                return f"argument {i} ({terminal_text(shown, 200)}) is not UTF-8 text; the toolchain takes UTF-8 arguments"
    return None


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    bad = undecodable_argument(argv)
    if bad is not None:  # before parsing: argparse would take it as it is, and a later write would fail on it
        print(f"error: {bad}", file=sys.stderr)
        return int(ExitCode.BAD_INPUT)
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "verb", None):
        parser.print_help(sys.stderr)
        return int(ExitCode.BAD_INPUT)
    try:
        return int(args._run(args) or 0)
    except ToolchainError as exc:
        # always one line: a message may quote names from a model or a file (newlines, escape sequences)
        print(f"error: {terminal_text(str(exc), MAX_ERROR_CHARS)}", file=sys.stderr)
        return int(exc.exit_code)
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    except MemoryError as exc:
        # an input asked for more memory than this process can get (numpy names the size it tried)
        detail = terminal_text(str(exc), MAX_ERROR_CHARS) or "an allocation failed"
        print(f"error: out of memory: {detail}; the input asks for more memory than this process can get",
              file=sys.stderr)
        return int(ExitCode.BAD_INPUT)
    except BrokenPipeError:
        # the reader went away (e.g. `toolchain inspect m.tflite | head`): not an error of ours
        try:
            # left open on purpose: the interpreter flushes stdout at exit, into this instead of the closed pipe
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115
        except OSError:
            pass
        return 0
    except OSError as exc:  # the file system refused (full disk, read-only, too long a name): not a bug of ours
        name = os.fsdecode(exc.filename) if isinstance(exc.filename, bytes) else str(exc.filename)
        where = f" {terminal_text(name, MAX_ERROR_CHARS)}" if exc.filename is not None else ""
        print(f"error: cannot access{where}: {terminal_text(exc.strerror or str(exc))}", file=sys.stderr)
        return int(ExitCode.BAD_INPUT)
    except Exception as exc:  # noqa: BLE001  anything untyped is a bug: say so in one line unless asked for details
        if args.debug or os.environ.get("TOOLCHAIN_DEBUG"):
            traceback.print_exc()
        print(f"internal error: {type(exc).__name__}: {terminal_text(str(exc), MAX_ERROR_CHARS)} "
              "(rerun with --debug and report it)", file=sys.stderr)
        return int(ExitCode.INTERNAL)


def entry_point() -> None:
    sys.exit(main())
