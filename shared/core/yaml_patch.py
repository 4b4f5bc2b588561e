"""Change one container's image in a YAML file as text, so nothing else in the file moves.

No I/O. The image scalar is found with PyYAML's composer (exact character positions), and only its
characters are replaced, in the quoting style it was written in: comments, key order, quoting, flow
style, line endings and the other documents stay byte-for-byte the same. The result is then parsed
again and must equal the original with only that image changed, on exactly one line; anything else
raises PatchError and the caller leaves the file untouched.
"""
from __future__ import annotations

import copy
import json
from typing import Any, Callable, Sequence

import yaml

_Loader = yaml.SafeLoader   # the pure-Python composer: its marks are character offsets into the text


class PatchError(ValueError):
    """The image cannot be changed safely; the message says why and names the image."""


def set_image(text: str, select: Callable[[Any], bool], containers: Sequence[Any], container: str,
              image: str) -> tuple[str, str]:
    """Return (new text, old image) with `container`'s image set to `image` in the one document `select`
    accepts; `containers` is the path of the containers list in that document. An image that is already
    `image` returns the text unchanged."""
    try:
        nodes = list(yaml.compose_all(text, Loader=_Loader))
        documents = list(yaml.load_all(text, Loader=_Loader))
    except yaml.YAMLError as exc:
        raise PatchError(f"the file is not valid YAML: {exc}") from None
    chosen = [i for i, document in enumerate(documents) if select(document)]
    if len(chosen) != 1:
        raise PatchError("the manifest is no longer in the file" if not chosen
                         else f"the manifest is defined {len(chosen)} times in the file")
    index = chosen[0]
    node = _image_node(nodes[index], containers, container)
    if node is None:
        raise PatchError(f"no container '{container}' with an image in this manifest (images there: "
                         f"{', '.join(_images(documents[index], containers)) or 'none'})")
    old = node.value
    if not isinstance(node, yaml.ScalarNode) or node.start_mark.line != node.end_mark.line \
            or node.style not in (None, "'", '"'):
        raise PatchError(f"the image {old!r} is not a one-line plain or quoted string; change it by hand")
    if old == image:
        return text, old
    patched = text[:node.start_mark.index] + _scalar(image, node.style) + text[node.end_mark.index:]
    _verify(text, patched, documents, index, containers, container, image)
    return patched, old


def _image_node(root: Any, path: Sequence[Any], container: str) -> yaml.Node | None:
    node = root
    for key in path:
        node = _value(node, key)
    if not isinstance(node, yaml.SequenceNode):
        return None
    for item in node.value:
        name = _value(item, "name")
        if isinstance(name, yaml.ScalarNode) and name.value == container:
            return _value(item, "image")
    return None


def _value(node: Any, key: str) -> yaml.Node | None:
    if not isinstance(node, yaml.MappingNode):
        return None
    return next((v for k, v in node.value if isinstance(k, yaml.ScalarNode) and k.value == key), None)


def _images(document: Any, path: Sequence[Any]) -> list[str]:
    node = document
    for key in path:
        node = node.get(key) if isinstance(node, dict) else None
    return [f"{c.get('name')} ({c.get('image')})" for c in node or [] if isinstance(c, dict)] \
        if isinstance(node, list) else []


def _scalar(value: str, style: str | None) -> str:
    if style == '"':
        return json.dumps(value)
    if style == "'":
        return "'" + value.replace("'", "''") + "'"
    return value


def _verify(original: str, patched: str, documents: list[Any], index: int, path: Sequence[Any], container: str,
            image: str) -> None:
    """The patched text parses to the original documents with only that image replaced, on one line."""
    expected = copy.deepcopy(documents)
    items = expected[index]
    for key in path:
        items = items[key]
    for item in items:
        if isinstance(item, dict) and item.get("name") == container:
            item["image"] = image
    try:
        again = list(yaml.load_all(patched, Loader=_Loader))
    except yaml.YAMLError:
        again = None
    before, after = original.splitlines(keepends=True), patched.splitlines(keepends=True)
    changed = len(before) == len(after) and sum(a != b for a, b in zip(before, after)) == 1
    if again != expected or not changed:
        raise PatchError(f"writing {image!r} would change more than that image; the file is left as it is")
