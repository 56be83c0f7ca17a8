"""Composing configs: where simstudy's Hydra configs live, and the jobs a command launches.

The configs are kept at the repository's top level (``conf/``) and shipped inside the package
(``simstudy/conf`` in a wheel, see pyproject.toml), so an editable checkout and a plain
``pip install .`` compose the same files.

A multirun's jobs follow Hydra's basic sweeper: the sweep file's ``hydra.sweeper.params``,
then the command line's overrides, each key keeping its last value, expanded as a product
(``BasicSweeper.split_arguments``). ``sweep_jobs`` reproduces that list, so that the preflight
can check every job before Hydra starts and the aggregate can cover exactly the cells of the
sweep that just ran.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

from hydra import compose as hydra_compose
from hydra import initialize_config_dir
from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import DictConfig, OmegaConf

from simstudy.config import ConfigError, RunConfig, validate
from simstudy.schema import config_hash

_PACKAGE = Path(__file__).resolve().parent


def config_dir() -> Path:
    """The conf/ folder.

    It is shipped inside the package when installed from a wheel, and at the repository's top
    level in a checkout.

    Returns
    -------
    pathlib.Path
        ``simstudy/conf`` when it holds config.yaml, else ``conf/`` beside the package.
    """
    shipped = _PACKAGE / "conf"
    return shipped if (shipped / "config.yaml").is_file() else _PACKAGE.parent / "conf"


CONFIG_PATH = str(config_dir())


def compose(overrides, return_hydra_config: bool = False, config_name: str = "config"):
    """The composed config of one job.

    Its overrides apply, without ``hydra.*`` keys but for ``hydra.searchpath``, which adds the
    conf folders of a user's package, such as ``hydra.searchpath=[pkg://mypkg.conf]``, to the
    options the job's groups choose from.

    Parameters
    ----------
    overrides : iterable of str
        The job's command-line overrides.
    return_hydra_config : bool, default False
        Keep every ``hydra.*`` override and include the ``hydra`` node in the result.
    config_name : str, default "config"
        The primary config: "config" (the study app) or "explore" (the explorer).

    Returns
    -------
    omegaconf.DictConfig
        The composed config.

    Raises
    ------
    hydra.errors.HydraException
        Hydra's own errors (e.g. OverrideParseException, ConfigCompositionException) for
        overrides it cannot parse or options that do not exist.
    """
    overrides = [
        o
        for o in overrides
        if return_hydra_config or not o.startswith("hydra") or o.lstrip("+~").startswith("hydra.searchpath")
    ]
    with initialize_config_dir(config_dir=CONFIG_PATH, version_base="1.3"):
        return hydra_compose(config_name, overrides=list(overrides), return_hydra_config=return_hydra_config)


class SweepJobs(NamedTuple):
    """The jobs of a command and the sweep-file keys that the command line replaced.

    Attributes
    ----------
    jobs : list of list of str
        Each job as its override list.
    replaced : dict of str to (str, str)
        key -> (sweep file's value, command line's value).
    """

    jobs: list[list[str]]
    replaced: dict[str, tuple[str, str]]  # key -> (sweep file's value, command line's value)


class DuplicateOverride(ConfigError):
    """A key given twice on the command line (Hydra would silently keep the last).

    Parameters
    ----------
    key : str
        The key.
    first : str
        The first override that names it.
    second : str
        The second one.

    Attributes
    ----------
    key : str
        The key.
    value : str
        The second override.
    allowed : str
        "given twice on the command line; keep one".
    """

    def __init__(self, key: str, first: str, second: str):
        self.key, self.value, self.allowed = key, second, "given twice on the command line; keep one"
        ValueError.__init__(self, f"{key}: given twice on the command line ({first!r} and {second!r}); keep one")


def expand_jobs(params: dict, overrides: list[str]) -> SweepJobs:
    """The jobs of a multirun from the sweep file's ``params`` and the command line's ``overrides``.

    The sweep file's values come first, then the command line's, each key keeping its last value,
    expanded as a product (module docstring).

    Parameters
    ----------
    params : dict or None
        The sweep file's ``hydra.sweeper.params`` (key -> value, converted to strings).
    overrides : list of str
        The command line's overrides.

    Returns
    -------
    SweepJobs
        The jobs, and the sweep-file keys the command line replaced.

    Raises
    ------
    DuplicateOverride
        When the command line names a key twice.
    simstudy.config.ConfigError
        For a sweep of no value (``range(5,5)``).
    hydra.errors.HydraException
        Hydra's own errors (e.g. OverrideParseException) for overrides it cannot parse.
    """
    parser = OverridesParser.create()
    seen: dict[str, str] = {}
    for override in parser.parse_overrides(list(overrides)):
        key = override.key_or_group
        if key in seen:
            raise DuplicateOverride(key, seen[key], override.input_line)
        seen[key] = override.input_line
    params = {str(k): str(v) for k, v in (params or {}).items()}
    replaced = {k: (v, seen[k]) for k, v in params.items() if k in seen}
    parsed = parser.parse_overrides([f"{k}={v}" for k, v in params.items()] + list(overrides))
    for override in parsed:
        if override.is_sweep_override() and not list(override.sweep_string_iterator()):
            raise ConfigError(override.key_or_group, override.input_line, "sweeps no value; give at least one")
    batches = BasicSweeper.split_arguments(parsed, max_batch_size=None)
    return SweepJobs([list(job) for batch in batches for job in batch], replaced)


def fixed_overrides(overrides) -> list[str]:
    """The overrides that are not sweeps, as given (a list value such as
    ``design.gammas=[0,1]`` is one; ``seed=0,1`` is a sweep).

    Parameters
    ----------
    overrides : iterable of str
        Command-line overrides.

    Returns
    -------
    list of str
        Those that compose into one config.
    """
    parsed = OverridesParser.create().parse_overrides(list(overrides))
    return [o.input_line for o in parsed if not o.is_sweep_override()]


def sweep_jobs(overrides: list[str], multirun: bool) -> SweepJobs:
    """The jobs a command launches.

    Its overrides alone without ``multirun``, else ``expand_jobs`` with the sweep file the command
    selects.

    Parameters
    ----------
    overrides : list of str
        The command line's overrides.
    multirun : bool
        Whether the command is a multirun.

    Returns
    -------
    SweepJobs
        The jobs; without ``multirun`` one job (the overrides as given) and nothing replaced.

    Raises
    ------
    simstudy.config.ConfigError
        If a ``sweep=`` override names a sweep file that does not exist, or a sweep has no value.
    DuplicateOverride
        When the command line names a key twice.
    hydra.errors.HydraException
        Hydra's own errors for overrides it cannot parse or compose.
    """
    parsed = OverridesParser.create().parse_overrides(list(overrides))
    fixed = fixed_overrides(overrides)
    missing = [
        o.input_line
        for o in parsed
        if o.key_or_group == "sweep"
        and not o.is_delete()
        and not (config_dir() / "sweep" / f"{o.value()}.yaml").is_file()
    ]
    if missing:  # an optional group: Hydra would silently run without it
        options = sorted(p.stem for p in (config_dir() / "sweep").glob("*.yaml"))
        raise ConfigError("sweep", missing[0].split("=", 1)[-1], f"unknown option; choose one of {options}")
    base = compose(fixed, return_hydra_config=True)  # checks the hydra/... overrides too
    if not multirun:
        expand_jobs({}, fixed)  # for its duplicate check
        return SweepJobs([list(overrides)], {})
    return expand_jobs(base.hydra.sweeper.params, overrides)


def without_hydra(cfg) -> DictConfig:
    """A composed config without its ``hydra`` node, its other interpolations left to resolve.

    Converting with resolve=True would fail on the hydra node's ``${hydra:...}`` resolvers
    outside a Hydra run, and resolve=False alone would leave a section's ``${design.n1}`` as
    text (a different config hash from the job's own, resolved, config).

    Parameters
    ----------
    cfg : omegaconf.DictConfig
        A composed config (with or without its hydra node).

    Returns
    -------
    omegaconf.DictConfig
        The rest of it, for ``simstudy.config.validate``.
    """
    container = OmegaConf.to_container(cfg, resolve=False)
    container.pop("hydra", None)
    return OmegaConf.create(container)


def job_identity(overrides: list[str]) -> tuple[RunConfig, str]:
    """A job's validated config and its config hash, from its overrides.

    Parameters
    ----------
    overrides : list of str
        The job's overrides.

    Returns
    -------
    run : simstudy.config.RunConfig
        The validated config.
    config_hash : str
        The SHA-256 hex digest of what determines the job's numbers.

    Raises
    ------
    simstudy.config.ConfigError
        If the composed config is invalid.
    hydra.errors.HydraException
        Hydra's own errors for overrides it cannot compose.
    """
    run = validate(compose(overrides))
    return run, config_hash(run)


__all__ = [
    "CONFIG_PATH",
    "DuplicateOverride",
    "without_hydra",
    "SweepJobs",
    "compose",
    "config_dir",
    "config_hash",
    "expand_jobs",
    "job_identity",
    "sweep_jobs",
]
