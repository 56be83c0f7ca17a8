"""Keyword options against a constructor's signature: which a catalog entry (a process or a
generator) does not take, reported by name so that a config error can name its key."""

from __future__ import annotations

import inspect


class UnknownOption(ValueError):
    """``owner`` was given ``option``, a keyword its constructor does not take."""

    def __init__(self, owner: str, option: str, value, allowed: list[str]):
        self.owner, self.option, self.value, self.allowed = owner, option, value, allowed
        takes = f"it takes {allowed}" if allowed else "it takes no options"
        super().__init__(f"{owner} takes no option {option!r}; {takes}")


def check_options(owner: str, constructor, *args, internal=(), **options) -> None:
    """Raise ``UnknownOption`` for the first (sorted) keyword ``constructor`` does not take,
    ValueError when the arguments do not bind for another reason (a missing one).

    Parameters
    ----------
    owner : str
        How the message names the catalog entry, e.g. "process 'gaussian_classes'".
    constructor : callable
        Its signature is the reference.
    *args
        The positional arguments it is about to be called with: simstudy's own (an oracle's
        law), so the parameters they fill are not options a user can give.
    internal : tuple of str
        Keywords simstudy passes itself (a mismatch generator's population): accepted here,
        but not listed as options.
    **options
        The keyword arguments.
    """
    signature = inspect.signature(constructor)
    parameters = signature.parameters
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values())
    keywords = [n for n, p in parameters.items() if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    filled = [n for n, p in parameters.items() if p.kind is not p.KEYWORD_ONLY][: len(args)]
    allowed = [n for n in keywords if n not in filled and n not in internal]
    unknown = [] if takes_any else sorted(set(options) - set(allowed) - set(internal))
    if unknown:
        raise UnknownOption(owner, unknown[0], options[unknown[0]], allowed)
    try:
        signature.bind(*args, **options)
    except TypeError as err:
        raise ValueError(f"bad options {sorted(options)} for {owner}: {err}") from None
