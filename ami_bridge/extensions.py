"""Asterisk's extension matching, as a pure function (the simulator routes with it; tests run
the shipped ``deploy/asterisk/extensions.conf`` through it).

Rules, checked against Asterisk 22.10.1 with ``dialplan show <exten>@<context>``:

* A name starting with ``_`` is a pattern; any other name is a literal, compared exactly
  (case-sensitive: ``Listen`` does not match ``listen``).
* In a pattern, ``X`` is any digit, ``Z`` 1-9, ``N`` 2-9, **in either case** (``_listen-X.``
  contains an ``n``, which is the wildcard N: it never matches ``listen-1001``). ``[...]`` is a
  character class with ranges (``[1-5a-c]``); ``.`` matches one or more characters and ``!``
  zero or more (both end the pattern). Every other character is a literal, case-sensitive.
* Dashes are ignored outside a class, in patterns and dialled extensions alike
  (``_ab-X.`` matches ``ab1001`` and ``ab-1001``).
* Several extensions may match; the first in Asterisk's order runs: literals before patterns;
  patterns compared position by position, the one matching fewer characters at the first
  differing position first (a literal character, then ``[..]`` by size, ``N`` (8), ``Z`` (9),
  ``X`` (10)), ``.`` after any of those and ``!`` last. Ties: declaration order.

Nothing here does IO.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence

__all__ = [
    "best_match",
    "matches",
    "parse_contexts",
    "pattern_key",
]

_DIGITS = "0123456789"
_WILDCARDS = {"X": _DIGITS, "Z": _DIGITS[1:], "N": _DIGITS[2:]}
_DOT = "."
_BANG = "!"
# Sort weights of the open-ended wildcards: after any character class (at most 256 chars).
_DOT_WEIGHT = 1 << 16
_BANG_WEIGHT = 1 << 17

Token = frozenset[str] | str  # a set of accepted characters, or "." / "!"


def _strip_dashes(text: str) -> str:
    return text.replace("-", "")


def _class(body: str) -> frozenset[str]:
    chars: set[str] = set()
    i = 0
    while i < len(body):
        if i + 2 < len(body) and body[i + 1] == "-":
            lo, hi = ord(body[i]), ord(body[i + 2])
            chars.update(chr(c) for c in range(min(lo, hi), max(lo, hi) + 1))
            i += 3
        else:
            chars.add(body[i])
            i += 1
    return frozenset(chars)


def _tokens(pattern: str) -> list[Token]:
    """Tokens of a pattern (without its leading ``_``)."""
    out: list[Token] = []
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if c == "-":
            i += 1
            continue
        if c in (_DOT, _BANG):
            out.append(c)
            break  # nothing after an open-ended wildcard can matter
        if c == "[":
            end = pattern.find("]", i + 1)
            if end < 0:  # unterminated: Asterisk treats it as a literal "["
                out.append(frozenset(c))
                i += 1
                continue
            out.append(_class(pattern[i + 1 : end]))
            i = end + 1
            continue
        wild = _WILDCARDS.get(c.upper())
        out.append(frozenset(wild) if wild is not None else frozenset(c))
        i += 1
    return out


def matches(name: str, exten: str) -> bool:
    """Does the dialplan extension ``name`` (literal or ``_pattern``) match ``exten``?"""
    if not name.startswith("_"):
        return _strip_dashes(name) == _strip_dashes(exten)
    dialled = _strip_dashes(exten)
    tokens = _tokens(name[1:])
    for i, tok in enumerate(tokens):
        if tok == _BANG:
            return True
        if tok == _DOT:
            return len(dialled) > i
        if i >= len(dialled) or dialled[i] not in tok:
            return False
    return len(dialled) == len(tokens)


def pattern_key(name: str) -> tuple[int, tuple[tuple[int, int], ...], str]:
    """Asterisk's order of extensions: sort by this (stable) and the first match wins."""
    if not name.startswith("_"):
        return (0, (), name)
    weights: list[tuple[int, int]] = []
    for tok in _tokens(name[1:]):
        if tok == _DOT:
            weights.append((_DOT_WEIGHT, 0))
        elif tok == _BANG:
            weights.append((_BANG_WEIGHT, 0))
        else:
            assert isinstance(tok, frozenset)
            weights.append((len(tok), min(ord(ch) for ch in tok)))
    return (1, tuple(weights), "")


def best_match(names: Iterable[str], exten: str) -> str | None:
    """The extension Asterisk runs for ``exten`` among ``names`` (declaration order), or None."""
    found = [n for n in names if matches(n, exten)]
    if not found:
        return None
    return min(found, key=pattern_key)  # min() keeps the first of equal keys


_EXTEN_LINE = re.compile(r"^\s*exten\s*=>?\s*([^,]+),")
_CONTEXT_LINE = re.compile(r"^\s*\[([^\]]+)\]")


def parse_contexts(text: str) -> Mapping[str, Sequence[str]]:
    """Context -> extension names (declaration order, unique) of an ``extensions.conf`` text.

    Only what matching needs: ``[context]`` headers and ``exten =>`` lines; comments (``;``)
    are dropped, ``same =>`` lines and includes are ignored.
    """
    contexts: dict[str, list[str]] = {}
    current: list[str] | None = None
    for raw in text.splitlines():
        line = raw.split(";", 1)[0].rstrip()
        if not line:
            continue
        head = _CONTEXT_LINE.match(line)
        if head is not None:
            current = contexts.setdefault(head.group(1).strip(), [])
            continue
        ext = _EXTEN_LINE.match(line)
        if ext is not None and current is not None:
            name = ext.group(1).strip()
            if name not in current:
                current.append(name)
    return contexts
