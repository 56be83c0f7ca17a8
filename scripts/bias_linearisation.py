"""How much of a cell's predicted excess is the linearisation of its random bias.

python scripts/bias_linearisation.py study=logit_symmetric generator=gaussian_fit [--refits 200]
    [--gammas 0.4 1 2]

Composes the cell from the same Hydra overrides as a job, fits its generator --refits times and
prints, per gamma, the exact excess of the per-fit population limit against the first-order bias
term of the theory (``simstudy.theory.bias_linearisation``), with the Monte Carlo SE of their gap.
The generator must have a fitted law (gaussian_fit, semi_oracle, mismatch, ...)."""

import argparse
import sys

import numpy as np


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("overrides", nargs="*", help="Hydra overrides, as for python -m simstudy")
    parser.add_argument("--refits", type=int, default=200)
    parser.add_argument("--gammas", type=float, nargs="+", default=None, help="default: the cell's grid")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    from hydra import compose, initialize_config_dir

    from simstudy.app import CONFIG_PATH
    from simstudy.config import BuiltCell, ConfigError, validate
    from simstudy.theory import bias_linearisation

    with initialize_config_dir(config_dir=CONFIG_PATH, version_base="1.3"):
        cfg = compose("config", overrides=args.overrides)
    try:
        built = BuiltCell(validate(cfg))
        d = built.design
        out = bias_linearisation(
            built.population,
            built.generator,
            d.n0,
            d.n1,
            d.gammas if args.gammas is None else args.gammas,
            np.random.default_rng(args.seed),
            refits=args.refits,
        )
    except (ConfigError, ValueError) as err:
        print(f"bias_linearisation: {err}", file=sys.stderr)
        return 2
    print(f"{out.refits} fits; gamma, exact mean excess of theta_bar_r, first-order bias term, gap (SE)")
    for g, e, f, se in zip(out.gammas, out.exact, out.first_order, out.difference_se):
        print(f"{g:6.2f}  {e:.6g}  {f:.6g}  {f - e:+.3g} ({se:.2g})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
