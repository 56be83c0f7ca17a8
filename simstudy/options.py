"""Keyword options against a constructor's signature: which a catalog entry (a process or a
generator) does not take, reported by name so that a config error can name its key."""

from __future__ import annotations

import inspect


class UnknownOption(ValueError):
    """``owner`` was given ``option``, a keyword its constructor does not take."""

    def __init__(self, owner: str, option: str, value, allowed: list[str]):
        self.owner, self.option, self.value, self.allowed = owner, option, value, allowed
        super().__init__(f"{owner} takes no option {option!r}; it takes {allowed}")


def check_options(owner: str, constructor, *args, **options) -> None:
    """Raise ``UnknownOption`` for the first (sorted) keyword ``constructor`` does not take,
    ValueError when the arguments do not bind for another reason (a missing or doubled one).

    Parameters
    ----------
    owner : str
        How the message names the catalog entry, e.g. "process 'gaussian_classes'".
    constructor : callable
        Its signature is the reference.
    *args, **options
        The arguments it is about to be called with.
    """
    parameters = inspect.signature(constructor).parameters
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values())
    keywords = [n for n, p in parameters.items() if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    unknown = [] if takes_any else sorted(set(options) - set(keywords))
    if unknown:
        raise UnknownOption(owner, unknown[0], options[unknown[0]], keywords)
    try:
        inspect.signature(constructor).bind(*args, **options)
    except TypeError as err:
        raise ValueError(f"bad options {sorted(options)} for {owner}: {err}") from None
