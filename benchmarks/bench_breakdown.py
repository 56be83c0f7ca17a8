"""Where the time of study 2 from the command line goes: start-up, preflight, cell building,
the theory step, draws, fits, exact risks and rows, summaries, files, figures, aggregation,
and the XLA compilations inside them.

Run: ``.venv/bin/python benchmarks/bench_breakdown.py`` (``--reps`` for R, ``--generators``).

It times three things, each in a process of its own:

1. ``python -c "import simstudy.app"``: the start-up every command pays (best of three);
2. the command itself, ``python -m simstudy -m study=logit_symmetric generator=oracle,gaussian_fit,smote
   design.reps=R figures_dir=null``, into a fresh folder: the end-to-end wall time a user sees;
3. the same command in this process (``simstudy.app.main``) with a timer around each phase.
   Each second is counted once, in the innermost phase running in its thread: the build
   inside the preflight counts as build, the sweep figure saved by the aggregation as
   figures. The main thread's phases and "other" (Hydra, composition, the jobs' remaining
   steps) add up to the wall time; the draws and fits run in the engine's worker threads, so
   their seconds are summed over those threads. Compilation happens
   inside the phases and is reported beside them, from JAX's monitoring events.

The persistent compile cache is used as a job uses it (``SIMSTUDY_COMPILE_CACHE``); pass
``--cold`` to give every process an empty one.
"""

from __future__ import annotations

import argparse
import collections
import functools
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

THEORY_PHASES = (("theory (psi moments, warm start, predictions)", "theory"),)
"""The curve cell's cached theory (``simstudy.studies.curve.CurveCell``)."""
PHASES = (
    ("preflight", "simstudy.app", "preflight"),
    ("build", "simstudy.studies.curve.CurveStudy", "build"),
    ("replications: waiting for the workers", "simstudy.studies.curve", "run_cell"),
    ("draw (worker threads)", "simstudy.engine", "draw_replication"),
    ("fit (worker threads)", "simstudy.engine", "fit_glm"),
    ("exact risks and rows", "simstudy.engine", "replication_rows"),
    ("summaries", "simstudy.studies.curve.CurveStudy", "summarise"),
    ("write", "simstudy.studies.job", "write_parquet"),
    ("figures", "simstudy.plotting", "save"),
    ("aggregate", "simstudy.app", "aggregate_sweep"),
)
"""(label, module or class, attribute): the functions timed."""


def command(generators: str, reps: int, sweep_dir: Path) -> list[str]:
    return [
        "-m",
        "study=logit_symmetric",
        f"generator={generators}",
        f"design.reps={reps}",
        "figures_dir=null",
        f"hydra.sweep.dir={sweep_dir}",
    ]


def wall(argv: list[str], env: dict) -> float:
    start = time.perf_counter()
    # run from the temporary folder: ``python -m`` puts the working directory first on sys.path
    subprocess.run([sys.executable, *argv], check=True, env=env, capture_output=True, cwd=tempfile.gettempdir())
    return time.perf_counter() - start


_STACK = threading.local()


def timed(totals: dict, name: str, fn):
    """``fn`` adding its seconds, less those of the timed calls nested in it in the same
    thread, to ``totals[name]``."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        nested = _STACK.__dict__.setdefault("nested", [])
        nested.append(0.0)
        start = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            elapsed = time.perf_counter() - start
            totals[name] += elapsed - nested.pop()
            if nested:
                nested[-1] += elapsed
            elif threading.current_thread() is threading.main_thread():
                totals[_MAIN] += elapsed

    return wrapper


_MAIN = "(main thread, outermost)"
"""The main thread's seconds inside any timed phase: the rest of its wall time is "other"."""


def in_process(argv: list[str]) -> tuple[float, dict, dict]:
    """``simstudy.app.main(argv)`` with each phase timed: (wall, phase seconds, compile seconds)."""
    import importlib

    import jax.monitoring

    from simstudy import app
    from simstudy.studies import curve

    totals: dict = collections.defaultdict(float)
    compile_totals: dict = collections.defaultdict(float)

    def on_event(event: str, seconds: float, **kwargs):
        if event == "/jax/core/compile/backend_compile_duration":
            compile_totals["XLA compile"] += seconds
        elif event == "/jax/compilation_cache/cache_retrieval_time_sec":
            compile_totals["compile-cache loads"] += seconds

    jax.monitoring.register_event_duration_secs_listener(on_event)
    for name, module, attribute in PHASES:
        *path, cls = module.split(".")
        try:
            owner = importlib.import_module(module)
        except ModuleNotFoundError:
            owner = getattr(importlib.import_module(".".join(path)), cls)
        setattr(owner, attribute, timed(totals, name, getattr(owner, attribute)))
    for name, attribute in THEORY_PHASES:
        cached = functools.cached_property(timed(totals, name, curve.CurveCell.__dict__[attribute].func))
        setattr(curve.CurveCell, attribute, cached)
        cached.__set_name__(curve.CurveCell, attribute)
    start = time.perf_counter()
    try:
        app.main(argv)
    except SystemExit as err:
        if err.code not in (0, None):
            raise
    return time.perf_counter() - start, dict(totals), dict(compile_totals)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=100)
    parser.add_argument("--generators", default="oracle,gaussian_fit,smote")
    parser.add_argument("--cold", action="store_true", help="an empty compile cache for every process")
    args = parser.parse_args()
    env = dict(os.environ, JAX_PLATFORMS=os.environ.get("JAX_PLATFORMS", "cpu"))
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        caches = iter(range(10))

        def cache_env() -> dict:
            return dict(env, SIMSTUDY_COMPILE_CACHE=str(tmp / f"cache{next(caches)}")) if args.cold else env

        start_up = min(wall(["-c", "import simstudy.app"], env) for _ in range(3))
        end_to_end = wall(["-m", "simstudy", *command(args.generators, args.reps, tmp / "cli")], cache_env())
        if args.cold:
            os.environ["SIMSTUDY_COMPILE_CACHE"] = str(tmp / "cache-in-process")
        seconds, phases, compiles = in_process(command(args.generators, args.reps, tmp / "in_process"))
    jobs = len(args.generators.split(","))
    print(f"study=logit_symmetric, {jobs} generators, R = {args.reps}, {'cold' if args.cold else 'warm'} compile cache")
    print(f"  end to end from the command line: {end_to_end:.1f} s wall")
    print(f"  start-up (import simstudy.app, best of 3): {start_up:.2f} s")
    print(f"  in one process after the imports: {seconds:.1f} s wall, each second counted once:")
    for name, *_ in (*THEORY_PHASES, *PHASES):
        print(f"    {name:<44}{phases.get(name, 0.0):7.2f} s")
    print(f"    {'other (main thread)':<44}{seconds - phases.get(_MAIN, 0.0):7.2f} s")
    for name, value in compiles.items():
        print(f"    {name:<44}{value:7.2f} s (inside the phases above)")


if __name__ == "__main__":
    main()
