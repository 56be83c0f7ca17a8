"""The network study (study.kind network, preset mlp_nonsyn): its time per replication, and the
throughput of simstudy.network's vmapped trainer against a plain optax loop.

Run: ``.venv/bin/python benchmarks/bench_network.py`` (``--reps`` replications of the preset timed,
the first one including the compilations, 0 for none; ``--batch`` trainings in the throughput comparison,
``--loop`` of them timed in the plain loop).

1. The study: replications 0, 1, ... of the preset's cell, each timed; R = 100 is extrapolated as
   the first replication (compilations included) plus 99 times the mean of the others.
2. Trainings per second on the design's data (n0 = 800, n1 = 100 standardised, plus a SMOTE pool
   so that N = 1280 rows, random row weights per training), all from the same initial weights:
   * ``simstudy.network.train``: the trainings in chunks of 16 of one jitted, vmapped program
     (the epochs a lax.scan inside it);
   * a plain optax loop: one training at a time, a jitted AdamW step called once per epoch from
     Python (optax's documented idiom);
   * the same scan program jitted for one training, called once per training.
   The printed max |difference| of the trained networks' logits on the rows checks that all three
   computed the same networks.
"""

from __future__ import annotations

import argparse
import time

import jax
import numpy as np
import optax
from hydra import compose, initialize_config_dir

import simstudy  # noqa: F401
from simstudy import network as nw
from simstudy.app import CONFIG_PATH
from simstudy.cell import make_dgp
from simstudy.config import validate
from simstudy.generators import Smote
from simstudy.studies import network as ns


def preset(reps: int):
    with initialize_config_dir(config_dir=CONFIG_PATH, version_base="1.3"):
        cfg = compose("config", overrides=["study=mlp_nonsyn", f"design.reps={max(reps, 2)}"])
    return validate(cfg)


def study_seconds(reps: int) -> list[float]:
    nc = ns.build_network_cell(preset(reps))
    counts = []  # trainings per stage of the replication being timed
    run_stage = nw.Trainings.run

    def counted(self, spec, params0):
        counts.append(len(self.blocks))
        return run_stage(self, spec, params0)

    nw.Trainings.run = counted
    seconds = []
    for r in range(reps):
        counts.clear()
        start = time.perf_counter()
        ns.network_replication(nc, r)
        seconds.append(time.perf_counter() - start)
        print(f"  replication {r}: {seconds[-1]:.1f} s, trainings per stage {counts} ({sum(counts)})", flush=True)
    nw.Trainings.run = run_stage
    return seconds


def design_batch(spec: nw.MLPSpec, B: int, rows: int):
    """B trainings on the design's standardised rows plus a SMOTE pool up to ``rows`` rows."""
    process = make_dgp({"name": "bent_heavy_tailed"})
    rng = np.random.default_rng(0)
    X0, X1 = process.sample(800, 100, rng)
    X = np.vstack([X0, X1])
    Z = (X - X.mean(0)) / X.std(0)
    pool = Smote(3).fit(Z[800:], Z[:800], rng).sample(rows - 900, rng)
    Zs = np.vstack([Z, pool])
    y = np.r_[np.zeros(800), np.ones(rows - 800)]
    w = rng.uniform(0.5, 1.5, size=(B, rows))
    params0 = nw.init_params(spec, Zs.shape[1], rng)
    return params0, np.broadcast_to(Zs, (B, *Zs.shape)), np.broadcast_to(y, (B, rows)), w


def plain_loop(spec: nw.MLPSpec, params0, X, y, w):
    """One training: a jitted AdamW step called ``spec.epochs`` times from Python."""
    optimiser = optax.adamw(spec.learning_rate, weight_decay=spec.weight_decay)

    @jax.jit
    def step(params, state, X, y, w):
        grads = jax.grad(nw.weighted_loss)(params, X, y, w)
        updates, state = optimiser.update(grads, state, params)
        return optax.apply_updates(params, updates), state

    params = nw.as_device(params0)
    state = optimiser.init(params)
    X, y, w = (np.asarray(a, np.float32) for a in (X, y, w))
    for _ in range(spec.epochs):
        params, state = step(params, state, X, y, w)
    return [(np.asarray(W), np.asarray(b)) for W, b in params]


def logits64(params, X) -> np.ndarray:
    """A network's logits in float64 from its float32 weights."""
    return nw.logits([(np.asarray(W, np.float64), np.asarray(b, np.float64)) for W, b in params], np.asarray(X))


def throughput(B: int, loop: int, rows: int = 1280) -> None:
    spec = nw.MLPSpec()
    params0, X, y, w = design_batch(spec, B, rows)
    nw.train(spec, params0, X, y, w, chunk=ns.CHUNK)  # compile
    start = time.perf_counter()
    batched, _ = nw.train(spec, params0, X, y, w, chunk=ns.CHUNK)
    vmapped = B / (time.perf_counter() - start)
    with jax.numpy_dtype_promotion("standard"):  # optax's bias correction mixes int and float
        plain_loop(spec, params0, X[0], y[0], w[0])  # compile
        start = time.perf_counter()
        looped = [plain_loop(spec, params0, X[b], y[b], w[b]) for b in range(loop)]
        plain = loop / (time.perf_counter() - start)
    single = nw.single_trainer(spec)
    args = [tuple(np.asarray(a[b], np.float32) for a in (X, y, w)) for b in range(loop)]
    jax.block_until_ready(single(nw.as_device(params0), *args[0]))  # compile
    start = time.perf_counter()
    alone = [jax.block_until_ready(single(nw.as_device(params0), *a))[0] for a in args]
    scan_one = loop / (time.perf_counter() - start)
    eta = [logits64(nw.take(batched, b), X[0]) for b in range(loop)]
    gap_loop = max(np.abs(eta[b] - logits64(looped[b], X[0])).max() for b in range(loop))
    gap_one = max(np.abs(eta[b] - logits64(alone[b], X[0])).max() for b in range(loop))
    scale = max(np.abs(e).max() for e in eta)
    print(f"trainings of {rows} rows, {spec.epochs} epochs, MLP {spec.hidden}:")
    print(f"  vmapped program, {B} trainings in chunks of {ns.CHUNK}: {vmapped:.1f} trainings/s")
    print(f"  plain optax loop (jitted step per epoch), {loop} trainings: {plain:.1f} trainings/s")
    print(f"  one scan program per training, {loop} trainings: {scan_one:.1f} trainings/s")
    print(f"  ratio vmapped / plain loop: {vmapped / plain:.2f}; vmapped / one at a time: {vmapped / scan_one:.2f}")
    print(
        f"  max |logit difference| on the {rows} rows (logits up to {scale:.0f}): vmapped vs plain loop "
        f"{gap_loop:.2e}, vs one at a time {gap_one:.2e}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=4)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--loop", type=int, default=16)
    args = parser.parse_args()
    throughput(args.batch, args.loop)
    if args.reps == 0:
        return
    print(f"study mlp_nonsyn, {args.reps} replications:")
    seconds = study_seconds(args.reps)
    steady = float(np.mean(seconds[1:])) if len(seconds) > 1 else seconds[0]
    total = seconds[0] + 99 * steady
    print(
        f"  first {seconds[0]:.1f} s (compilations included), then {steady:.1f} s per replication; "
        f"R = 100 extrapolated: {total / 60:.1f} min"
    )


if __name__ == "__main__":
    main()
