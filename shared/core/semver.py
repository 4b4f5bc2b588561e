"""Semantic versions (semver.org 2.0) and npm-style ranges, for `driftless.io/image-tag: semver:<range>`.

No I/O. Ranges: comparators joined by spaces (all must hold) and alternatives joined by `||`;
a comparator is `>=1.0.0`, `>1.2`, `<2`, `<=1.4.3`, `=1.2.3` or a bare version, `^1.4` (same major,
or same minor below 1.0), `~1.4.2` (same minor), and `1.x` / `1.4.*` / `*` wildcards. A tag may
carry a leading `v`. Pre-releases sort before their release and match only when asked for.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable, Iterable

_VERSION = re.compile(r"^v?(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
                      r"(?:-((?:0|[1-9]\d*|\d*[A-Za-z-][0-9A-Za-z-]*)(?:\.(?:0|[1-9]\d*|\d*[A-Za-z-][0-9A-Za-z-]*))*))?"
                      r"(?:\+[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*)?$")
_PARTIAL = re.compile(r"^v?(\d+|[xX*])(?:\.(\d+|[xX*]))?(?:\.(\d+|[xX*]))?(?:-([0-9A-Za-z.-]+))?$")
_COMPARATOR = re.compile(r"^(\^|~|>=|<=|>|<|=)?\s*(\S+)$")


class RangeError(ValueError):
    """A range that cannot be parsed; the message says what is wrong."""


@dataclass(frozen=True, order=False)
class Version:
    major: int
    minor: int
    patch: int
    prerelease: tuple[int | str, ...] = ()

    def key(self) -> tuple:
        """Precedence: a release sorts after its pre-releases; numeric identifiers before alphanumeric ones."""
        pre = tuple((0, p, "") if isinstance(p, int) else (1, 0, p) for p in self.prerelease)
        return (self.major, self.minor, self.patch, 0 if self.prerelease else 1, pre)

    def __lt__(self, other: "Version") -> bool:
        return self.key() < other.key()

    def __le__(self, other: "Version") -> bool:
        return self.key() <= other.key()


def parse(tag: str) -> Version | None:
    """The version a tag names (`1.4.2`, `v1.4.2`, `1.5.0-rc.1`, build metadata ignored), or None."""
    match = _VERSION.match(tag.strip())
    if not match:
        return None
    pre = tuple(int(p) if p.isdigit() else p for p in match.group(4).split(".")) if match.group(4) else ()
    return Version(int(match.group(1)), int(match.group(2)), int(match.group(3)), pre)


Test = Callable[[Version], bool]


@dataclass(frozen=True)
class Range:
    """A parsed range: `matches(version, prerelease=False)`; `text` is what was written."""

    text: str
    alternatives: tuple[tuple[Test, ...], ...]

    def matches(self, version: Version, *, prerelease: bool = False) -> bool:
        if version.prerelease and not prerelease:
            return False
        return any(all(test(version) for test in tests) for tests in self.alternatives)

    def highest(self, tags: Iterable[str], *, prerelease: bool = False) -> str | None:
        """The tag with the highest matching version (the first spelling seen wins a tie), or None."""
        best: tuple[Version, str] | None = None
        for tag in tags:
            version = parse(tag)
            if version and self.matches(version, prerelease=prerelease) and (best is None or best[0] < version):
                best = (version, tag)
        return best[1] if best else None


def parse_range(text: str) -> Range:
    """Parse an npm-style range; raise RangeError naming the part that is not understood."""
    if not text.strip():
        raise RangeError("the range is empty; write for example ^1.4 or >=1.0.0 <2.0.0")
    alternatives = []
    for alternative in text.split("||"):
        words = re.sub(r"(\^|~|>=|<=|>|<|=)\s+", r"\1", alternative.strip()).split()
        if not words:
            raise RangeError(f"empty alternative in '{text}'")
        alternatives.append(tuple(test for word in words for test in _comparator(word)))
    return Range(text.strip(), tuple(alternatives))


def _comparator(word: str) -> list[Test]:
    match = _COMPARATOR.match(word)
    partial = _PARTIAL.match(match.group(2)) if match else None
    if not partial:
        raise RangeError(f"'{word}' is not a version comparator (such as ^1.4, ~1.4.2, >=1.0.0, <2, 1.x)")
    operator = match.group(1) or "="
    parts = [None if p is None or p in "xX*" else int(p) for p in partial.group(1, 2, 3)]
    for i in range(1, 3):
        if parts[i - 1] is None:
            parts[i] = None
    major, minor, patch = parts
    pre = tuple(int(p) if p.isdigit() else p for p in partial.group(4).split(".")) if partial.group(4) else ()
    low = Version(major or 0, minor or 0, patch or 0, pre)
    if major is None:
        return [] if operator in ("=", ">=", "<=", "^", "~") else [lambda v: False]
    if operator == "^":
        if major > 0 or minor is None:
            return _between(low, Version(major + 1, 0, 0, (0,)))
        if minor > 0 or patch is None:
            return _between(low, Version(0, minor + 1, 0, (0,)))
        return _between(low, Version(0, 0, patch + 1, (0,)))
    if operator == "~" or (operator == "=" and None in parts):
        upper = Version(major + 1, 0, 0, (0,)) if minor is None else Version(major, minor + 1, 0, (0,))
        return _between(low, upper) if (operator == "~" or patch is None) else [lambda v: v.key() == low.key()]
    if operator == "=":
        return [lambda v: v.key() == low.key()]
    if operator == ">=":
        return [lambda v: low <= v]
    if operator == "<":
        return [lambda v: v < low]
    if operator == ">":
        after = low if patch is not None else Version(major + 1, 0, 0, (0,)) if minor is None else \
            Version(major, minor + 1, 0, (0,))
        return [lambda v: after < v] if patch is not None else [lambda v: after <= v]
    # "<=": up to and including every version the partial names
    below = None if patch is not None else Version(major + 1, 0, 0, (0,)) if minor is None else \
        Version(major, minor + 1, 0, (0,))
    return [lambda v: v <= low] if below is None else [lambda v: v < below]


def _between(low: Version, below: Version) -> list[Test]:
    return [lambda v: low <= v, lambda v: v < below]
