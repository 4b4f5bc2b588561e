"""Container image references checked against the OCI distribution grammar, without I/O.

The grammar is github.com/distribution/reference (what Docker, containerd and ACR parse):

    reference := name [":" tag] ["@" digest]
    name      := [domain "/"] path-component ["/" path-component]*
    domain    := host [":" port]       host: DNS-like labels, or an IPv6 address in brackets
    path-component := [a-z0-9]+ (separator [a-z0-9]+)*     separator: "." | "_" | "__" | "-"+
    tag       := [\\w][\\w.-]{0,127}
    digest    := algorithm ":" hex     (sha256: 64, sha384: 96, sha512: 128 lowercase hex digits)

Lengths: the name (registry and path) may have at most 255 characters (`MAX_NAME`: the grammar's
name limit, applied to the whole name as Docker always has), so a whole reference is at most
`MAX_REFERENCE` (name, ':' + 128-character tag, '@' + sha512 digest). Anything longer is refused
before it is parsed, and never echoed whole.
"""
from __future__ import annotations

import re

MAX_NAME = 255
MAX_TAG = 128
DIGEST_LENGTHS = {"sha256": 64, "sha384": 96, "sha512": 128}
MAX_REFERENCE = MAX_NAME + 1 + MAX_TAG + 1 + len("sha512:") + DIGEST_LENGTHS["sha512"]

_PATH_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_HOST = rf"(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|\[[a-fA-F0-9:]+\])"
_DOMAIN = rf"{_HOST}(?::[0-9]+)?"
_TAG = r"[\w][\w.-]{0,127}"
_DIGEST = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}"
_NAME = rf"(?:{_DOMAIN}/)?{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*"
REFERENCE = re.compile(rf"(?P<name>{_NAME})(?::(?P<tag>{_TAG}))?(?:@(?P<digest>{_DIGEST}))?", re.ASCII)
"""A whole reference (use `fullmatch`: `$` would let a trailing line break through); groups name, tag, digest."""

RULE = ("[registry[:port]/]path[:tag][@digest]: path components of lowercase letters and digits separated "
        "by '.', '_', '__' or '-', a tag of letters, digits, '_', '.' and '-' (up to 128, not starting with "
        "'.' or '-'), a digest like sha256:<64 hex digits>")


def shown(text: str, limit: int = 80) -> str:
    """`text` quoted for a message: control characters escaped, and cut after `limit` characters."""
    cut = text if len(text) <= limit else text[:limit] + f"... ({len(text)} characters)"
    return repr(cut)


def problem(text: str) -> str | None:
    """Why `text` is not a valid image reference, or None when it is one."""
    if len(text) > MAX_REFERENCE:
        return (f"{shown(text)} is too long for an image reference: {len(text)} characters, at most "
                f"{MAX_REFERENCE} (a name of up to {MAX_NAME}, a tag and a digest)")
    match = REFERENCE.fullmatch(text)
    if match is None:
        if text != text.strip():
            return f"{shown(text)} is not a valid image reference: remove the surrounding spaces or line breaks"
        if REFERENCE.fullmatch(text.lower()):
            return f"{shown(text)} is not a valid image reference: the repository name must be lowercase"
        return f"{shown(text)} is not a valid image reference; expected {RULE}"
    if len(match["name"]) > MAX_NAME:
        return f"{shown(text)} is not a valid image reference: the name has {len(match['name'])} characters, at most {MAX_NAME}"
    if match["digest"]:
        algorithm, _, hexa = match["digest"].partition(":")
        size = DIGEST_LENGTHS.get(algorithm)
        if size is None:
            return (f"{shown(text)} is not a valid image reference: digest algorithm '{algorithm}' is not "
                    f"supported; allowed: {', '.join(DIGEST_LENGTHS)}")
        if len(hexa) != size:
            return (f"{shown(text)} is not a valid image reference: a {algorithm} digest has {size} hex digits, "
                    f"this one has {len(hexa)}")
        if hexa != hexa.lower():
            return f"{shown(text)} is not a valid image reference: the digest's hex digits must be lowercase"
    return None
