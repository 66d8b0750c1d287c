"""YAML documents with a line number for every field.

PyYAML's ``safe_load`` forgets where values came from and silently keeps the last of two equal
keys. Here the node tree from ``yaml.compose_all`` is turned into plain Python values by hand,
recording the 1-based line of every key and list item, and reporting duplicate keys.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

Path = tuple  # a field path: mapping keys (str) and list indexes (int)

_MERGE_TAG = "tag:yaml.org,2002:merge"
_PLAIN_COLLECTION_TAGS = ("tag:yaml.org,2002:map", "tag:yaml.org,2002:seq")


@dataclass(frozen=True)
class YamlProblem:
    """A problem found while reading YAML; ``path`` is () for file-level problems."""

    line: int | None
    path: Path
    message: str


@dataclass
class YamlDocument:
    """One document of a YAML stream: its value, where it starts and the line of every field."""

    index: int  # 1-based position in the file
    data: object
    line: int
    lines: dict[Path, int] = field(default_factory=dict)
    problems: list[YamlProblem] = field(default_factory=list)

    def line_of(self, path: Path) -> int:
        """Line of ``path``, or of its nearest ancestor present in the file (for missing fields)."""
        for end in range(len(path), -1, -1):
            line = self.lines.get(tuple(path[:end]))
            if line is not None:
                return line
        return self.line


def read_documents(text: str) -> tuple[list[YamlDocument], list[YamlProblem]]:
    """Every document of ``text`` (empty ones included, with ``data=None``) and file-level problems.

    A syntax error stops reading; the documents before it are still returned.
    """
    documents: list[YamlDocument] = []
    try:
        for index, root in enumerate(yaml.compose_all(text, Loader=yaml.SafeLoader), start=1):
            documents.append(_build_document(index, root))
    except yaml.MarkedYAMLError as exc:
        return documents, [_syntax_problem(exc)]
    except yaml.YAMLError as exc:  # unmarked errors are rare (e.g. bad stream encoding)
        return documents, [YamlProblem(None, (), f"invalid YAML: {exc}")]
    return documents, []


def _syntax_problem(exc: yaml.MarkedYAMLError) -> YamlProblem:
    mark = exc.problem_mark or exc.context_mark
    message = f"invalid YAML: {exc.problem or exc.context}"
    if exc.context and exc.problem and exc.context_mark is not None:
        message += f" ({exc.context} at line {exc.context_mark.line + 1})"
    return YamlProblem(mark.line + 1 if mark else None, (), message)


def _build_document(index: int, root: Node | None) -> YamlDocument:
    if root is None:
        return YamlDocument(index=index, data=None, line=1)
    builder = _Builder()
    data = builder.build(root, ())
    return YamlDocument(index=index, data=data, line=root.start_mark.line + 1,
                        lines=builder.lines, problems=builder.problems)


class _Builder:
    """Walks a node tree into dicts, lists and scalars, remembering lines and problems."""

    def __init__(self) -> None:
        self.constructor = yaml.SafeLoader("")  # resolves scalar tags exactly as safe_load does
        self.lines: dict[Path, int] = {}
        self.problems: list[YamlProblem] = []
        self._active: set[int] = set()  # nodes on the current branch, to stop recursive aliases

    def build(self, node: Node, path: Path) -> object:
        self.lines.setdefault(path, node.start_mark.line + 1)
        if id(node) in self._active:
            self._problem(node, path, "recursive YAML alias: a value may not contain itself")
            return None
        self._active.add(id(node))
        if not isinstance(node, ScalarNode) and node.tag not in _PLAIN_COLLECTION_TAGS:
            self._problem(node, path, f"unsupported YAML tag {node.tag}: write a plain mapping or list")
        try:
            if isinstance(node, MappingNode):
                return self._mapping(node, path)
            if isinstance(node, SequenceNode):
                return [self.build(item, path + (i,)) for i, item in enumerate(node.value)]
            return self._scalar(node, path)
        finally:
            self._active.discard(id(node))

    def _scalar(self, node: ScalarNode, path: Path) -> object:
        try:
            return self.constructor.construct_object(node, deep=True)
        except yaml.YAMLError as exc:
            self._problem(node, path, f"unsupported YAML value: {getattr(exc, 'problem', exc)}")
            return node.value  # the text as written, so that no second error is reported here

    def _mapping(self, node: MappingNode, path: Path) -> dict:
        self._report_duplicate_keys(node, path)
        try:
            # Resolves `<<: *anchor` merge keys in place; own keys come last, so they win.
            self.constructor.flatten_mapping(node)
        except yaml.YAMLError as exc:
            self._problem(node, path, f"invalid YAML merge: {getattr(exc, 'problem', exc)}")
        result: dict = {}
        for key_node, value_node in node.value:
            key = self._key(key_node, path)
            if key is None:
                continue
            self.lines[path + (key,)] = key_node.start_mark.line + 1
            result[key] = self.build(value_node, path + (key,))
        return result

    def _key(self, key_node: Node, path: Path) -> str | None:
        if not isinstance(key_node, ScalarNode):
            self._problem(key_node, path, "mapping keys must be plain names, got a complex key")
            return None
        # The text as typed: `on:` or `1:` stay field names instead of becoming True or 1.
        return key_node.value

    def _report_duplicate_keys(self, node: MappingNode, path: Path) -> None:
        first_line: dict[str, int] = {}
        for key_node, _ in node.value:
            if not isinstance(key_node, ScalarNode) or key_node.tag == _MERGE_TAG:
                continue
            line = key_node.start_mark.line + 1
            if key_node.value in first_line:
                self.problems.append(YamlProblem(
                    line, path + (key_node.value,),
                    f"duplicate key '{key_node.value}' (first at line {first_line[key_node.value]}); "
                    "YAML would silently keep only the last one"))
            else:
                first_line[key_node.value] = line

    def _problem(self, node: Node, path: Path, message: str) -> None:
        self.problems.append(YamlProblem(node.start_mark.line + 1, path, message))
