"""The ``mottscape`` command line: a thin layer over the public API.

Exit codes: 0 success, 2 bad input (arguments, study files, potential maps, a sample too large
for the memory), 3 a solver did not converge, 1 an internal error (a bug: please report it with
``--debug`` output), 130 interrupted. Every error is one line on stderr; ``--debug`` re-raises
it with its traceback.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import numpy as np

from .errors import ConvergenceError, InputError, MottscapeError

__all__ = ["main"]

EXIT_INPUT = 2
EXIT_CONVERGENCE = 3
EXIT_INTERNAL = 1


def _parser() -> argparse.ArgumentParser:
    from . import __version__

    p = argparse.ArgumentParser(
        prog="mottscape",
        description="Low-frequency ac conductivity from the localization landscape "
                    "(LL-generalized Mott-Berezinskii formula).")
    p.add_argument("--version", action="version", version=f"mottscape {__version__}")
    p.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    sub = p.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run a study (the built-in default without a file)")
    run.add_argument("study", nargs="?", type=Path, help="TOML study file")
    run.add_argument("--out", type=Path, help="output directory (default: the study's)")
    run.add_argument("--no-figures", action="store_true", help="skip the PNG figures")
    run.add_argument("--quiet", "-q", action="store_true", help="print only errors")
    run.add_argument("--workers", "-j", type=int, default=1,
                     help="worker processes for the realizations (default 1)")
    run.add_argument("--store", type=Path,
                     help="resumable store: one NetCDF per finished realization, reused on rerun")

    val = sub.add_parser("validate", help="compare sigma_LL and sigma_MB with the exact "
                         "Kubo-Greenwood conductivity (built-in 1D study without a file)")
    val.add_argument("study", nargs="?", type=Path, help="TOML study file")
    val.add_argument("--out", type=Path, default=Path("mottscape-validation"),
                     help="output directory (default: mottscape-validation)")
    val.add_argument("--realizations", "-n", type=int, help="override the number of realizations")
    val.add_argument("--quiet", "-q", action="store_true", help="print only errors")
    val.add_argument("--reuse-exact", type=Path, metavar="NC",
                     help="reuse the exact results of a previous validation.nc of this study")

    sub.add_parser("bench", help="run the benchmark suite (mottscape bench --help)")

    ex = sub.add_parser("example", help="print the default study file (a template to edit)")
    ex.add_argument("--out", type=Path, help="write it to this file instead")
    for name in ("run", "validate", "example"):
        sub.choices[name].add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                                       help="show tracebacks on errors")
    return p


def _cmd_run(args) -> int:
    from .study import run_study

    t0 = time.perf_counter()
    log = None if args.quiet else (lambda msg: print(f"[{time.perf_counter() - t0:6.1f} s] "
                                                     f"{msg}", file=sys.stderr, flush=True))
    res = run_study(args.study, out=args.out if args.out else None,
                    figures=False if args.no_figures else None, log=log,
                    progress=not args.quiet, workers=args.workers, store=args.store)
    if not args.quiet:
        _summary(res.dataset)
    return 0


def _summary(ds) -> None:
    d = ds
    print(f"E_F = {float(d.fermi_energy):.4g}   nu = {float(d.nu):.3e}   "
          f"Delta_xi = {float(d.delta_xi):.3g}   xi = {float(d.xi):.3g}   "
          f"basins = {int(d.n_basins)}   percolating = {bool(d.attrs['percolating'])}")
    unit = d["sigma_ll"].attrs.get("units", "")
    print(f"{'omega':>11} {'rho_omega':>9} {'states':>6} {'pairs':>6} {'sigma_LL':>11} "
          f"{'sigma_MB':>11}  valid   [sigma in {unit}]")
    ll = d["sigma_ll_mean"] if "sigma_ll_mean" in d else d["sigma_ll"]
    mb = d["sigma_mb_mean"] if "sigma_mb_mean" in d else d["sigma_mb"]
    first = {"realization": 0} if "realization" in d.dims else {}
    for k in range(d.sizes["omega"]):
        row = d.isel(omega=k, **first)
        print(f"{float(d.omega[k]):11.4g} {float(row.rho_omega):9.3f} {int(row.n_states):6d} "
              f"{int(row.n_pairs):6d} {float(ll[k]):11.4g} {float(mb[k]):11.4g}  "
              f"{'yes' if bool(row.valid) else 'no'}")


def _cmd_validate(args) -> int:
    from .validate import validate

    t0 = time.perf_counter()
    log = None if args.quiet else (lambda msg: print(f"[{time.perf_counter() - t0:6.1f} s] "
                                                     f"{msg}", file=sys.stderr, flush=True))
    res = validate(args.study, realizations=args.realizations, out=args.out, log=log,
                   reuse_exact=args.reuse_exact)
    if not args.quiet:
        print(validation_table(res))
        print(f"wrote {args.out / 'validation.nc'} and {args.out / 'validation.png'}")
    return 0


def validation_table(res) -> str:
    """The validation summary as a Markdown table (ratios of ensemble means to exact)."""
    lines = [
        f"E_F = {res.attrs.get('fermi_energy')}, realizations = {res.sizes['realization']}, "
        f"Delta_xi = {float(res.delta_xi.mean()):.3g}, xi = {float(res.xi.mean()):.3g}, "
        f"nu_LL / nu_exact = {float(res.nu_landscape.mean() / res.nu_exact.mean()):.3f}",
        "",
        "| omega | omega/Delta_xi | sigma_exact | LL/exact | MB/exact | pairs/exact |",
        "|---|---|---|---|---|---|",
    ]
    dxi = float(res.delta_xi.mean())
    for k in range(res.sizes["omega"]):
        def cell(name, k=k):
            r, lo, hi = (float(res[f"ratio_{name}{s}"][k]) for s in ("", "_lo", "_hi"))
            return f"{r:.3g} [{lo:.2g}, {hi:.2g}]" if math.isfinite(r) else "n/a"
        w = float(res.omega[k])
        lines.append(f"| {w:.3g} | {w / dxi:.2g} | {float(res.sigma_exact_mean[k]):.3g} | "
                     f"{cell('ll_default')} | {cell('mb')} | {cell('pairs')} |")
    lines += ["", "| curve | log-log slope | score |", "|---|---|---|",
              f"| exact | {float(res.slope_exact):.2f} | - |"]
    for name in [f"ll_{v}" for v in res.variant.values] + ["mb", "pairs"]:
        lines.append(f"| {name} | {float(res[f'slope_{name}']):.2f} | "
                     f"{float(res[f'score_{name}']):.2f} |")
    est, ex = res.eig_estimate.mean("realization"), res.eig_exact.mean("realization")
    rel = np.nanmean(np.abs(est - ex) / np.abs(ex))
    lines += ["", f"landscape eigenvalue estimates vs the {res.sizes['level']} lowest exact "
              f"eigenvalues: mean relative deviation {float(rel):.3f}",
              f"best variant (lowest score): {res.attrs.get('best_variant')}"]
    return "\n".join(lines)


def _cmd_example(args) -> int:
    from .config import _default_text

    text = _default_text()
    if args.out:
        args.out.write_text(text)
        print(f"wrote {args.out}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``mottscape`` command."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["bench"]:  # the benchmark runner parses its own arguments
        from .bench import main as bench_main

        return bench_main(argv[1:])
    parser = _parser()
    args = parser.parse_args(argv)
    commands = {"run": _cmd_run, "validate": _cmd_validate, "example": _cmd_example}
    try:
        return commands[args.command](args)
    except InputError as exc:
        if args.debug:
            raise
        _error(f"error: {exc}")
        return EXIT_INPUT
    except ConvergenceError as exc:
        if args.debug:
            raise
        _error(f"solver failure: {exc}")
        return EXIT_CONVERGENCE
    except MottscapeError as exc:
        if args.debug:
            raise
        _error(f"error: {exc}")
        return EXIT_INPUT
    except MemoryError as exc:
        if args.debug:
            raise
        _error(f"out of memory: {exc or 'an allocation failed'}; use a smaller sample or a "
               "machine with more memory")
        return EXIT_INPUT
    except KeyboardInterrupt:
        print("mottscape: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        if args.debug:
            raise
        _error(f"internal error: {type(exc).__name__}: {exc} (rerun with --debug for the "
               "traceback and please report it)")
        return EXIT_INTERNAL


def _error(message: str) -> None:
    """Print one line on stderr (a message spanning lines is joined)."""
    print("mottscape: " + " ".join(message.split()), file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
