"""YAML documents with a line number for every field, read within fixed bounds.

PyYAML's ``safe_load`` forgets where values came from and silently keeps the last of two equal
keys. Here the node tree from ``yaml.compose_all`` is turned into plain Python values by hand,
recording the 1-based line of every key and list item, and reporting duplicate keys.

Policy and scenario files may come from anyone who can edit a ConfigMap, so reading is bounded
before anything is built: the file size (read no further than the limit), the nesting depth
(checked while composing, so no RecursionError), and the number of values after alias expansion
(aliases share nodes in the composed tree, so a "billion laughs" bomb is counted, not expanded).
Bad bytes (NUL, non-UTF-8, UTF-16/32) are refused with the line where they are.
"""

from __future__ import annotations

import codecs
import os
import select
import stat
from dataclasses import dataclass, field

import yaml
from yaml.events import AliasEvent
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

#: Largest file read, in bytes. Policies and scenarios are a few KiB; this leaves 100x room.
MAX_FILE_BYTES = 1 << 20
#: Deepest nesting of mappings and lists. Real files nest under 10 levels.
MAX_DEPTH = 64
#: Most values (scalars, mappings, lists) in one file once aliases are expanded. The largest
#: bundled file has about 250.
MAX_VALUES = 20_000
#: Longest wait for a writer of a named pipe given as a file (a policy piped in by a script).
FIFO_WAIT_S = 10.0

Path = tuple  # a field path: mapping keys (str) and list indexes (int)

_MERGE_TAG = "tag:yaml.org,2002:merge"
_PLAIN_COLLECTION_TAGS = ("tag:yaml.org,2002:map", "tag:yaml.org,2002:seq")


@dataclass(frozen=True)
class YamlProblem:
    """A problem found while reading YAML; ``path`` is () for file-level problems."""

    line: int | None
    path: Path
    message: str
    unreadable: bool = False  # the file could not be read (OSError): it may read fine later


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


def read_yaml_file(path: str | os.PathLike[str]) -> tuple[str | None, YamlProblem | None]:
    """The text of a YAML file, or why it cannot be read. Never reads more than MAX_FILE_BYTES + 1 bytes.

    A named pipe is opened without blocking and read once something is written to it (as
    ``<(kubectl ...)`` does), but not waited on for longer than FIFO_WAIT_S: open() of a pipe
    that nothing writes to would block forever.
    """
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
        with open(fd, "rb") as stream:
            if stat.S_ISFIFO(os.fstat(fd).st_mode) and not _written_to(fd):
                return None, YamlProblem(None, (), f"cannot read: nothing was written to this named pipe within "
                                                   f"{FIFO_WAIT_S:g} s")
            os.set_blocking(fd, True)
            size = os.fstat(fd).st_size
            data = b"" if size > MAX_FILE_BYTES else stream.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        return None, YamlProblem(None, (), f"cannot read: {exc.strerror or exc}", unreadable=True)
    size = max(size, len(data))  # st_size is 0 for pipes and /proc files
    if size > MAX_FILE_BYTES:
        return None, _too_large(size)
    return decode_yaml_bytes(data)


def _written_to(fd: int) -> bool:
    """Whether a writer of the pipe ``fd`` wrote or closed within FIFO_WAIT_S."""
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    return bool(poller.poll(FIFO_WAIT_S * 1000))


def decode_yaml_bytes(data: bytes) -> tuple[str | None, YamlProblem | None]:
    """UTF-8 text (a UTF-8 byte-order mark is dropped), or a problem naming the line of the bad byte."""
    for bom, name in _OTHER_BOMS:
        if data.startswith(bom):
            return None, YamlProblem(1, (), f"not UTF-8 text: the file starts with a {name} byte-order mark; "
                                            "save it as UTF-8")
    nul = data.find(b"\0")
    if nul >= 0:
        return None, YamlProblem(data.count(b"\n", 0, nul) + 1, (), _NUL_MESSAGE)
    try:
        return data.decode("utf-8-sig"), None
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        return None, YamlProblem(line, (), f"not UTF-8 text (byte 0x{data[exc.start]:02x} at line {line}): "
                                           "save the file as UTF-8; is this a YAML file?")


_OTHER_BOMS = ((codecs.BOM_UTF32_LE, "UTF-32"), (codecs.BOM_UTF32_BE, "UTF-32"),
               (codecs.BOM_UTF16_LE, "UTF-16"), (codecs.BOM_UTF16_BE, "UTF-16"))
_NUL_MESSAGE = "binary data (a NUL byte) in a YAML file: is this the right file? (UTF-16 must be saved as UTF-8)"


def _too_large(size: int) -> YamlProblem:
    return YamlProblem(None, (), f"file too large: {size:,} bytes, the limit is {MAX_FILE_BYTES:,} "
                                 "(policy and scenario files are a few KiB)")


def read_documents(text: str) -> tuple[list[YamlDocument], list[YamlProblem]]:
    """Every document of ``text`` (empty ones included, with ``data=None``) and file-level problems.

    A syntax error or an exceeded bound (size, depth, values: see MAX_*) stops reading; the
    documents before it are still returned.
    """
    if len(text) > MAX_FILE_BYTES:
        return [], [_too_large(len(text.encode("utf-8", "surrogatepass")))]
    if "\0" in text:
        return [], [YamlProblem(text.count("\n", 0, text.index("\0")) + 1, (), _NUL_MESSAGE)]
    documents: list[YamlDocument] = []
    loader = None
    try:
        loader = _BoundedLoader(text)  # checks every character is printable
        while loader.check_node():
            documents.append(_build_document(len(documents) + 1, loader.get_node()))
    except yaml.MarkedYAMLError as exc:
        return documents, [_syntax_problem(exc)]
    except yaml.reader.ReaderError as exc:  # a control character
        line = text.count("\n", 0, exc.position) + 1
        return documents, [YamlProblem(line, (), f"invalid YAML: {exc.reason} (U+{exc.character:04X}): "
                                                 "is this a text file?")]
    except yaml.YAMLError as exc:  # other unmarked errors are rare
        return documents, [YamlProblem(None, (), f"invalid YAML: {exc}")]
    except RecursionError:  # not reachable within MAX_DEPTH; kept so that no input can raise it
        return documents, [YamlProblem(None, (), f"invalid YAML: nested deeper than {MAX_DEPTH} levels")]
    finally:
        if loader is not None:
            loader.dispose()
    return documents, []


class LimitExceeded(yaml.MarkedYAMLError):
    """The file nests too deep or holds too many values: reading stops where it happened."""


class _BoundedLoader(yaml.SafeLoader):
    """SafeLoader's composer with a depth bound and a count of values with aliases expanded.

    ``_sizes`` maps each node of the current document to its expanded size (1 + its children's),
    so an alias costs what it stands for without being expanded. Every node's size plus the
    values of the documents before it must stay within MAX_VALUES, and so must the nodes read.
    """

    def __init__(self, text: str):
        super().__init__(text)
        self._depth = 0
        self._nodes = 0  # nodes composed in this document (aliases not expanded)
        self._done = 0  # values of the documents already read
        self._sizes: dict[int, int] = {}
        self._aliased = False  # an alias was read: too many values may be a bomb

    def compose_document(self):  # noqa: ANN201 (PyYAML's signature)
        self._sizes, self._nodes = {}, 0
        root = super().compose_document()
        self._done += self._sizes.get(id(root), 0)
        return root

    def compose_node(self, parent, index):  # noqa: ANN001, ANN201 (PyYAML's signature)
        event = self.peek_event()
        if isinstance(event, AliasEvent):
            self._aliased = True
            node = super().compose_node(parent, index)
            self._check(self._sizes.get(id(node), 1), event)  # a recursive alias is reported by the builder
            return node
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise LimitExceeded("while reading nested values", None,
                                    f"nested deeper than {MAX_DEPTH} levels", event.start_mark)
            node = super().compose_node(parent, index)
        finally:
            self._depth -= 1
        size = 1 + sum(self._sizes.get(id(child), 1) for child in _children(node))
        self._sizes[id(node)] = size
        self._nodes += 1
        self._check(max(size, self._nodes), event)
        return node

    def _check(self, size: int, event) -> None:  # noqa: ANN001
        if self._done + size > MAX_VALUES:
            # Without aliases it is only a long file (a cluster's HPAs for `setpoint import`): no bomb to suspect.
            problem = (f"more than {MAX_VALUES:,} values once aliases are expanded (policy and scenario files hold a "
                       "few hundred; an alias bomb?)" if self._aliased else
                       f"more than {MAX_VALUES:,} values (policy and scenario files hold a few hundred; split a "
                       "longer list of manifests into several files)")
            raise LimitExceeded("while expanding aliases" if isinstance(event, AliasEvent) else "while reading values",
                                None, problem, event.start_mark)


def _children(node: Node) -> list[Node]:
    if isinstance(node, SequenceNode):
        return node.value
    if isinstance(node, MappingNode):
        return [n for pair in node.value for n in pair]
    return []


def _syntax_problem(exc: yaml.MarkedYAMLError) -> YamlProblem:
    mark = exc.problem_mark or exc.context_mark
    if isinstance(exc, LimitExceeded):
        return YamlProblem(mark.line + 1, (), f"refused: {exc.problem}")
    message = f"invalid YAML: {exc.problem or exc.context}"
    if exc.context and exc.problem and exc.context_mark is not None:
        message += f" ({exc.context} at line {exc.context_mark.line + 1})"
    hint = next((h for found, h in _SYNTAX_HINTS if found in (exc.problem or "")), None)
    if hint:
        message += f": {hint.format(column=mark.column + 1 if mark else '?')}"
    return YamlProblem(mark.line + 1 if mark else None, (), message)


#: What a parser's complaint usually means in a hand-written file, and what to do
_SYNTAX_HINTS = (
    ("found character '\\t'", "YAML indents with spaces, never tabs (a tab at column {column})"),
    ("expected <block end>, but found", "this line is indented differently from the lines of its level above "
                                        "it: line the key up with its siblings (spaces only)"),
    ("mapping values are not allowed here", "a ': ' inside a value (quote the value) or a key indented under "
                                            "a value"),
)


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
        if len(path) > MAX_DEPTH:  # aliases can nest what the composer saw within bounds
            top = path[:1]  # the anchored node's own line is elsewhere: name the field the alias is under
            self.problems.append(YamlProblem(self.lines.get(top), top,
                                             f"refused: nested deeper than {MAX_DEPTH} levels (through aliases)"))
            return None
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
        except ValueError:  # Python refuses integers of over 4,300 digits
            self._problem(node, path, f"unsupported YAML value: a number of {len(node.value):,} characters")
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
