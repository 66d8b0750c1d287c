"""A document's cross-field rules run on the parts that validated, in the same pass as its field errors.

pydantic validates a document all or nothing: one bad field anywhere and there is no model, so
the cross-field rules (``rules.py``, and each model's own after-validators such as "exactly one
of") could only run once every field error was fixed, and whoever fixed a broken file met its
errors in waves. :func:`partial_model` builds the document from what did validate:

- a part without an error at or under it is validated on its own, as it was in the document;
- a model with errors only under it is built field by field (``model_construct``) and its own
  after-validators run on it (their errors are returned with the part's path); one that breaks
  them (``unhealthy`` with neither above nor below), or whose rules cannot be decided, is
  :data:`UNCHECKED` to the rules that read it, which rely on them;
- a field whose key is misspelt (an unknown key that "did you mean" names it for) is
  :data:`UNCHECKED`, not absent: ``averagPerReplica: 80`` is a target, not a missing one;
- a part with an error of its own, or under it where it cannot be built field by field (a list
  of scalars, a field with its own validators, a model that rewrites its input first), is
  :data:`UNCHECKED`: a value that raises :class:`Unchecked` on any use but an identity test
  (``x is None`` is False: the key is there, whatever its value, or it is required);
- a model with such a hole in a field whose own validator may turn a written value into None
  (``lead: auto``, ``then: hold``) is UNCHECKED as a whole: there ``x is None`` could not say
  whether the key is there.

A rule run through :func:`guarded` stops at the first part it reads that did not validate: it
reports what it decided from the parts that did, and nothing it could not decide. One mechanism
for every section (scaling, health, the spec's own rules), so a rule needs no knowledge of it
beyond being guarded where its items are independent (one check, one metric), and :func:`known`
around a value it hands to code that type-checks instead of using it (a regular expression,
``str.join``), which would raise TypeError, not Unchecked. tests/policy/test_partial.py breaks
every field of every example policy in turn to find one that is missing.
"""

from __future__ import annotations

import functools
import typing
from collections.abc import Callable, Iterable, Iterator
from types import NoneType, UnionType
from typing import Annotated, Any

from annotated_types import MaxLen, MinLen
from pydantic import BaseModel, TypeAdapter, ValidationError
from pydantic_core import PydanticCustomError

from controller.policy.messages import suggested_field

#: A trie of error locations: part -> sub-trie; HERE marks an error at the node itself.
Errors = dict
HERE = object()


class Unchecked(Exception):
    """A rule read a part of the document that did not validate: it cannot be decided yet."""


class _Unchecked:
    """The value of a part that did not validate (:data:`UNCHECKED`): every use but an identity
    test raises :class:`Unchecked`."""

    __slots__ = ()

    def _refuse(self, *args: object, **kwargs: object):
        raise Unchecked()

    def __getattr__(self, name: str):
        if name.startswith("__"):  # protocol probes (copy, pickle, numpy): not a rule reading a field
            raise AttributeError(name)
        raise Unchecked(name)

    def __repr__(self) -> str:
        return "<did not validate>"

    __bool__ = __eq__ = __ne__ = __lt__ = __le__ = __gt__ = __ge__ = __hash__ = _refuse
    __len__ = __iter__ = __contains__ = __getitem__ = __str__ = __format__ = _refuse
    __int__ = __float__ = __index__ = __neg__ = __abs__ = _refuse
    __add__ = __radd__ = __sub__ = __rsub__ = __mul__ = __rmul__ = __truediv__ = __rtruediv__ = _refuse


UNCHECKED: Any = _Unchecked()


def guarded(rule: Callable[..., Iterable[Any]], *args: object) -> Iterator[Any]:
    """What ``rule(*args)`` yields, up to the first part it reads that did not validate."""
    try:
        yield from rule(*args)
    except Unchecked:
        return


def known(value: Any) -> Any:
    """``value``, when it validated; :class:`Unchecked` otherwise (before ``value`` reaches code that
    checks its type rather than using it: ``re.finditer(UNCHECKED)`` is a TypeError)."""
    if value is UNCHECKED:
        raise Unchecked()
    return value


def read(get: Callable[[], Any]) -> Any:
    """``get()``, or :data:`UNCHECKED` when it reads a part that did not validate."""
    try:
        return get()
    except Unchecked:
        return UNCHECKED


def error_trie(locations: Iterable[tuple]) -> Errors:
    """The error locations (YAML names, list indices) as a trie: a walk of the document asks each
    node for its children's errors in constant time, however many errors there are."""
    root: Errors = {}
    for loc in locations:
        node = root
        for part in loc:
            node = node.setdefault(part, {})
        node[HERE] = True
    return root


def partial_model(model: type[BaseModel], data: object, errors: Errors,
                  loc: tuple = ()) -> tuple[Any, list[tuple[tuple, str]]]:
    """(``data`` as ``model``, with :data:`UNCHECKED` for each part that did not validate; the
    problems the after-validators of models built field by field found). ``errors``: the trie of
    the locations where validating ``data`` as ``model`` failed (:func:`error_trie`)."""
    problems: list[tuple[tuple, str]] = []
    return _model(model, data, errors, loc, problems), problems


def _model(model: type[BaseModel], data: object, errors: Errors, loc: tuple, problems: list) -> Any:
    if not errors:
        try:
            return model.model_validate(data)
        except ValidationError:  # valid in the document, not on its own: a context this walk lacks
            return UNCHECKED
    if HERE in errors or not isinstance(data, dict) or not _built_by_field(model):
        return UNCHECKED
    values = {}
    misspelt = _misspelt(model, data)
    for name, info in model.model_fields.items():
        key = info.alias or name
        below = errors.get(key)
        if key in data:
            values[name] = _field(model, name, data[key], below, loc + (key,), problems)
        elif below or key in misspelt:  # required and missing, or written under a misspelt key
            values[name] = UNCHECKED
    if any(v is UNCHECKED and _none_from_text(model, name) for name, v in values.items()):
        return UNCHECKED
    built = model.model_construct(**values)
    holds = True
    for check in _after_validators(model):
        try:
            check(built)
        except Unchecked:
            holds = False
        except PydanticCustomError as exc:
            problems.append((loc, exc.message()))
            holds = False
        except ValueError as exc:
            problems.append((loc, str(exc)))
            holds = False
    # a model that breaks its own rules (neither above nor below), or may: the rules that read it rely on them
    return built if holds else UNCHECKED


def _misspelt(model: type[BaseModel], data: dict) -> set[str]:
    """The YAML names of ``model``'s fields that the unknown keys of ``data`` are misspellings of
    (the fields "did you mean" names, controller/policy/messages.py): such a field was written,
    under another name, so it is not absent."""
    fields = {info.alias or name for name, info in model.model_fields.items()}
    return {suggestion for key in data if key not in fields
            if (suggestion := suggested_field(key, model)) is not None}


def _field(model: type[BaseModel], name: str, value: object, errors: Errors | None, loc: tuple, problems: list) -> Any:
    if not errors:
        try:
            return _adapter(model, name).validate_python(value)
        except ValidationError:
            return UNCHECKED
    inner, many = _model_annotation(model, name)
    if inner is None or HERE in errors:
        return UNCHECKED
    if not many:
        return _model(inner, value, errors, loc, problems)
    if not isinstance(value, list):
        return UNCHECKED
    return [_model(inner, item, errors.get(i, {}), loc + (i,), problems) for i, item in enumerate(value)]


@functools.cache
def _adapter(model: type[BaseModel], name: str) -> TypeAdapter:
    """A validator of one field of ``model`` on its own (its type and its constraints)."""
    info = model.model_fields[name]
    annotation = Annotated[(info.annotation, *info.metadata)] if info.metadata else info.annotation
    return TypeAdapter(annotation)


@functools.cache
def _model_annotation(model: type[BaseModel], name: str) -> tuple[type[BaseModel] | None, bool]:
    """(the model, whether a list of it) of a field typed plainly as a model, an optional model or
    a list of models (its length bounded or not: an error of its length is at the list itself, so
    where there is none its items are walked), none with validators of its own; (None, False) for
    any other field."""
    info = model.model_fields[name]
    if info.metadata and not (typing.get_origin(info.annotation) is list
                              and all(isinstance(m, (MinLen, MaxLen)) for m in info.metadata)):
        return None, False
    annotation = info.annotation
    if typing.get_origin(annotation) in (typing.Union, UnionType):
        members = [a for a in typing.get_args(annotation) if a is not NoneType]
        if len(members) != 1:
            return None, False
        annotation = members[0]
    many = typing.get_origin(annotation) is list
    if many:
        annotation = typing.get_args(annotation)[0]
    plain = isinstance(annotation, type) and issubclass(annotation, BaseModel)
    return (annotation, many) if plain else (None, False)


@functools.cache
def _none_from_text(model: type[BaseModel], name: str) -> bool:
    """Whether the field may hold None and has a validator of its own, which may turn a written
    value into None (``lead: auto``): for a field that did not validate, ``is None`` is no answer."""
    info = model.model_fields[name]
    optional = typing.get_origin(info.annotation) in (typing.Union, UnionType) and NoneType in typing.get_args(
        info.annotation)
    return optional and any(hasattr(m, "func") for m in info.metadata)  # Before/After/Plain/WrapValidator


@functools.cache
def _built_by_field(model: type[BaseModel]) -> bool:
    """Whether ``model``'s fields validate on their own: no field validators, no model validator
    that runs before them (one that rewrites its input: HPA's ``periodSeconds``)."""
    decorators = model.__pydantic_decorators__
    return not decorators.field_validators and all(d.info.mode == "after"
                                                   for d in decorators.model_validators.values())


@functools.cache
def _after_validators(model: type[BaseModel]) -> tuple[Callable[[BaseModel], object], ...]:
    return tuple(d.func for d in model.__pydantic_decorators__.model_validators.values() if d.info.mode == "after")


__all__ = ["UNCHECKED", "Unchecked", "error_trie", "guarded", "known", "partial_model", "read"]
