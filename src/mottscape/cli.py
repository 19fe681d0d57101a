"""The ``mottscape`` command line: a thin layer over the public API (parse, call, report).

Exit codes: 0 success, 2 bad input (arguments, study files, potential maps, a sample too large
for the memory, an output directory that cannot be written, a store of another study), 3 a
solver did not converge, 1 an internal error (a bug: please report it with ``--debug``
output), 130 interrupted (SIGINT), 143 terminated (SIGTERM). Every error is one line on
stderr; ``--debug`` re-raises it with its traceback. Interrupted runs leave their store
intact: rerun the same command to resume.
"""

from __future__ import annotations

import argparse
import signal
import sys
import time
from pathlib import Path

from .errors import ConvergenceError, InputError, MottscapeError

__all__ = ["main"]

EXIT_INPUT = 2
EXIT_CONVERGENCE = 3
EXIT_INTERNAL = 1
EXIT_SIGINT = 130
EXIT_SIGTERM = 143
#: Seconds before a SIGTERM or SIGINT lost in a garbage-collector callback is sent again
#: (:func:`_redeliver_interrupts`).
REDELIVER_DELAY = 0.1


class Terminated(BaseException):
    """SIGTERM, raised in the main thread so that every ``finally`` runs."""


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} must be >= 1")
    return value


def _engine_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--workers", "-j", type=_positive_int, default=None,
                   help="worker processes of a local dask cluster (default: the study's "
                        "[cluster] workers, else 1 = this process)")
    p.add_argument("--scheduler", metavar="ADDRESS",
                   help="run on an existing dask cluster, e.g. tcp://127.0.0.1:8786")
    p.add_argument("--store", type=Path,
                   help="resumable store: one record per finished realization, reused on "
                        "rerun of the same study")
    p.add_argument("--option", "-o", action="append", default=[], metavar="NAME=VALUE",
                   help="override an option of the study's [options] (repeatable), e.g. "
                        "-o effective=scaled")
    p.add_argument("--quiet", "-q", action="store_true", help="print only errors")


class _Parser(argparse.ArgumentParser):
    """Usage errors on one line (exit 2), like every other error of the command line."""

    def error(self, message: str):
        _error(f"{self.prog}: {message} (see '{self.prog} --help')")
        raise SystemExit(EXIT_INPUT)


def _parser() -> argparse.ArgumentParser:
    from . import __version__

    p = _Parser(
        prog="mottscape",
        description="Low-frequency ac conductivity from the localization landscape "
                    "(LL-generalized Mott-Berezinskii formula).")
    p.add_argument("--version", action="version", version=f"mottscape {__version__}")
    p.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    run = sub.add_parser("run", help="run a study (the built-in default without a file)")
    run.add_argument("study", nargs="?", type=Path, help="TOML study file")
    run.add_argument("--out", type=Path, help="output directory (default: the study's)")
    run.add_argument("--no-figures", action="store_true", help="skip the PNG figures")
    _engine_args(run)

    val = sub.add_parser("validate", help="compare sigma_LL and sigma_MB with the exact "
                         "Kubo-Greenwood conductivity (built-in 1D study without a file)")
    val.add_argument("study", nargs="?", type=Path, help="TOML study file")
    val.add_argument("--out", type=Path, default=Path("mottscape-validation"),
                     help="output directory (default: mottscape-validation)")
    val.add_argument("--realizations", "-n", type=_positive_int,
                     help="override the number of realizations")
    val.add_argument("--reuse-exact", type=Path, metavar="NC",
                     help="reuse the exact results of a previous validation.nc of this study")
    _engine_args(val)

    rep = sub.add_parser("report", help="aggregate a store: ensemble NetCDF and figure with "
                         "error bands")
    rep.add_argument("store", type=Path, help="a store directory written by run --store")
    rep.add_argument("--out", type=Path, help="output directory (default: the store)")
    rep.add_argument("--quiet", "-q", action="store_true", help="print only errors")

    ex = sub.add_parser("example", help="print the default study file (a template to edit)")
    ex.add_argument("--out", type=Path, help="write it to this file instead")
    comp = sub.add_parser("compile", help="compile the numba kernels into numba's cache (once "
                          "after installing: the first study then does not wait for them)")
    comp.add_argument("--quiet", "-q", action="store_true", help="print only errors")
    for name in ("run", "validate", "report", "example", "compile"):
        sub.choices[name].add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                                       help="show tracebacks on errors")
    return p


def _logger(quiet: bool):
    t0 = time.perf_counter()
    if quiet:
        return None
    return lambda msg: print(f"[{time.perf_counter() - t0:6.1f} s] {msg}", file=sys.stderr,
                             flush=True)


def _study(args):
    """The study of ``args`` with the command line's option overrides."""
    import dataclasses

    from .config import default_study, load_study

    study = default_study() if args.study is None else load_study(args.study)
    if args.option:
        values = {}
        for item in args.option:
            name, sep, text = item.partition("=")
            if not sep:
                raise InputError(f"--option {item!r} must be NAME=VALUE, e.g. effective=scaled")
            values[name.strip()] = _option_value(text.strip())
        study = dataclasses.replace(study, options=study.options.updated(values,
                                                                         where="--option"))
    return study


def _option_value(text: str):
    if text.lower() in ("true", "false"):  # as in a study file (TOML booleans)
        return text.lower() == "true"
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text


def _workers(args, study) -> int:
    if args.workers is not None:
        return args.workers
    return study.cluster.workers or 1


def _cmd_run(args) -> int:
    from .study import run_study

    study = _study(args)
    res = run_study(study, out=args.out if args.out else None,
                    figures=False if args.no_figures else None, log=_logger(args.quiet),
                    progress=not args.quiet, workers=_workers(args, study),
                    scheduler=args.scheduler, store=args.store)
    if not args.quiet:
        from .summary import conductivity_table

        print(conductivity_table(res.dataset))
    return 0


def _cmd_validate(args) -> int:
    from .validation import validate, validation_table

    study = _study(args) if args.study is not None or args.option else None
    if args.out is not None:
        from .files import check_output_dir

        check_output_dir(args.out)
    res = validate(study, realizations=args.realizations, out=args.out,
                   log=_logger(args.quiet), reuse_exact=args.reuse_exact,
                   workers=args.workers or 1, scheduler=args.scheduler, store=args.store,
                   progress=not args.quiet)
    if not args.quiet:
        print(validation_table(res))
        print(f"wrote {args.out / 'validation.nc'} and {args.out / 'validation.png'}")
    return 0


def _cmd_report(args) -> int:
    from .summary import conductivity_table, report_store

    ds, files = report_store(args.store, args.out)
    if not args.quiet:
        print(conductivity_table(ds))
        print("wrote " + ", ".join(str(f) for f in files))
    return 0


def _cmd_example(args) -> int:
    from .config import _default_text

    text = _default_text()
    if args.out:
        args.out.write_text(text)
        print(f"wrote {args.out}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0


def _cmd_compile(args) -> int:
    from ._precompile import compile_kernels, kernel_cache_dirs

    log = None if args.quiet else (lambda msg: print(msg, file=sys.stderr, flush=True))
    seconds = compile_kernels(log)
    if log is not None:
        log(f"kernels compiled or loaded in {seconds:.1f} s; numba cache: "
            + ", ".join(kernel_cache_dirs()))
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``mottscape`` command."""
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = _parser()
    args = parser.parse_args(argv)
    previous = _on_sigterm()
    previous_hook = sys.unraisablehook
    sys.unraisablehook = _redeliver_interrupts(previous_hook)
    try:
        return _guarded(args)
    finally:
        sys.unraisablehook = previous_hook
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _guarded(args) -> int:
    """Run the command; map every exception to an exit code and one line on stderr."""
    commands = {"run": _cmd_run, "validate": _cmd_validate, "report": _cmd_report,
                "example": _cmd_example, "compile": _cmd_compile}
    try:
        return commands[args.command](args)
    except KeyboardInterrupt:
        print("mottscape: interrupted (the store, if any, is intact: rerun to resume)",
              file=sys.stderr)
        return EXIT_SIGINT
    except Terminated:
        print("mottscape: terminated (the store, if any, is intact: rerun to resume)",
              file=sys.stderr)
        return EXIT_SIGTERM
    except Exception as exc:
        if args.debug:
            raise
        code, message = _classify(exc)
        _error(message)
        return code


def _classify(exc: Exception) -> tuple[int, str]:
    """Exit code and message of an exception (see the module docstring)."""
    if isinstance(exc, ConvergenceError):
        return EXIT_CONVERGENCE, f"solver failure: {exc}"
    if isinstance(exc, MottscapeError):
        return EXIT_INPUT, f"error: {exc}"
    if isinstance(exc, MemoryError):
        return EXIT_INPUT, (f"out of memory: {exc or 'an allocation failed'}; use a smaller "
                            "sample or a machine with more memory")
    return EXIT_INTERNAL, (f"internal error: {type(exc).__name__}: {exc} (rerun with --debug "
                           "for the traceback and please report it)")


def _on_sigterm():
    """Turn SIGTERM into :class:`Terminated` in the main thread (workers are then closed)."""

    def handler(signum, frame):
        raise Terminated()

    try:
        return signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread (e.g. called from a test thread)
        return None


def _redeliver_interrupts(previous_hook):
    """An ``unraisablehook`` that raises a swallowed :class:`Terminated` or Ctrl-C again.

    Python runs a signal handler between any two bytecodes of the main thread, also inside a
    garbage-collector callback or a ``__del__`` (dask's ``GCDiagnosis`` installs one), where
    an exception cannot propagate: it is printed as "Exception ignored" and the run went on
    (a SIGTERM ~3 s into a 2-worker study was lost and the study kept running). The process
    then sends itself the signal again a moment later, from a timer thread: at once, the
    handler would run inside this hook, where the exception is lost too, and only a real
    signal wakes a main thread blocked in a system call. Other unraisable exceptions go to
    ``previous_hook``.
    """
    import os
    import threading

    def hook(unraisable) -> None:
        signum = (signal.SIGTERM if isinstance(unraisable.exc_value, Terminated) else
                  signal.SIGINT if isinstance(unraisable.exc_value, KeyboardInterrupt) else None)
        if signum is None:
            previous_hook(unraisable)
            return
        again = threading.Timer(REDELIVER_DELAY, os.kill, (os.getpid(), signum))
        again.daemon = True
        again.start()

    return hook


def _error(message: str) -> None:
    """Print one line on stderr (a message spanning lines is joined)."""
    print("mottscape: " + " ".join(message.split()), file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
