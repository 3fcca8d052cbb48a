"""Reading a suite file: YAML through the safe loader, bounded, every failure one line.

Keys given twice in a mapping are refused (PyYAML keeps the last, silently); so are
files over MAX_SUITE_BYTES and documents that expand to over MAX_YAML_VALUES values
once their aliases are written out, checked on the node graph before anything is
constructed.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from harness.errors import UserError

MAX_CASES = 100_000  # a suite expanding to more is refused before anything is imported for it

# A suite is a page of YAML: these are far past any real one, and refuse at once what would
# otherwise be read for minutes into gigabytes (an alias bomb: 172 s to a MemoryError).
MAX_SUITE_BYTES = 1_000_000  # size of a suite file
MAX_YAML_VALUES = 100_000  # values in the document once its aliases are expanded


class _UniqueKeyLoader(yaml.SafeLoader):
    """The safe loader, refusing a key given twice in one mapping (PyYAML keeps the last, silently)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue  # `<<: *defaults` may be overridden by the keys beside it
            key = self.construct_object(key_node, deep=deep)
            if isinstance(key, (str, int, float, bool)) and key in seen:
                raise yaml.constructor.ConstructorError(None, None, f"duplicate key '{key}'", key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep)


def read(path: Path) -> Any:
    """The YAML document in `path`, or a UserError saying why it cannot be read."""
    if path.is_dir():
        raise UserError(f"{path}: is a folder, not a suite file")
    if not path.is_file():
        near = sorted(str(p) for p in Path("suites").glob("*.yaml")) if Path("suites").is_dir() else []
        raise UserError(f"{path}: no such suite file" + (f"; suites here: {', '.join(near)}" if near else ""))
    try:
        if path.stat().st_size > MAX_SUITE_BYTES:
            raise UserError(f"{path}: {path.stat().st_size:,} bytes; a suite file is at most {MAX_SUITE_BYTES:,}")
        return _parse(path.read_text(encoding="utf-8"), path)
    except OSError as err:
        raise UserError(f"{path}: cannot read: {err.strerror or err}") from None
    except UnicodeDecodeError as err:
        raise UserError(f"{path}: not UTF-8 text (byte {err.start} is {err.object[err.start:err.start + 1]!r}); "
                        "a suite is a YAML file") from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f":{mark.line + 1}" if mark else ""
        raise UserError(f"{path}{where}: invalid YAML: {getattr(err, 'problem', None) or err}") from None
    except RecursionError:
        raise UserError(f"{path}: invalid YAML: nested too deeply") from None


def _parse(text: str, path: Path) -> Any:
    """The document, constructed only once its size with aliases expanded is known to be small."""
    loader = _UniqueKeyLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        values = _expanded_values(node)
        if values is None:
            raise UserError(f"{path}: invalid YAML: an alias refers to the collection that contains it")
        if values > MAX_YAML_VALUES:
            raise UserError(f"{path}: expands to over {MAX_YAML_VALUES:,} values once its aliases (*name) are "
                            "repeated; a suite is far smaller")
        return loader.construct_document(node)
    finally:
        loader.dispose()


def _expanded_values(root: yaml.Node) -> int | None:
    """How many nodes the document holds with every alias written out (capped just past
    MAX_YAML_VALUES), or None if an alias is recursive. Iterative: a deep document must not
    exhaust the stack."""
    sizes: dict[int, int] = {}
    entered: set[int] = set()  # the ancestors of the node being expanded
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, finished = stack.pop()
        children = _children(node)
        if finished:
            entered.discard(id(node))
            sizes[id(node)] = min(1 + sum(sizes[id(c)] for c in children), MAX_YAML_VALUES + 1)
        elif id(node) not in sizes:
            entered.add(id(node))
            stack.append((node, True))
            for child in children:
                if id(child) in entered:
                    return None
                stack.append((child, False))
    return sizes[id(root)]


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    return []
