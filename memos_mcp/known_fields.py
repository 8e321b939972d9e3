"""Finding the names a request model does not know, so that a misnamed field is refused instead of
being dropped (pydantic's default ``extra="ignore"`` drops it without a word: a misnamed scope then
widens a read, a misnamed cube sends a write to the default cube).

One check for every face: the MCP tools' argument models and the REST dialects' bodies and query
strings (and, at their top level, a boolean given for a number or a number for a boolean). It walks
the input along the model: the keys of an object against the model's field names and aliases, then
into the fields that hold models (directly, in a list, or in an optional). A model
declared ``extra="allow"`` takes any key (a dialect field defined as free-form). Each unknown name
comes with the closest known one (difflib), or the list of known names when none is close.
"""

from __future__ import annotations

import difflib
import types
from collections.abc import Sequence
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import AliasChoices, BaseModel


def known_names(model: type[BaseModel]) -> list[str]:
    """The keys ``model`` accepts: field names, serialization aliases and every validation alias."""
    return list(dict.fromkeys(key for name in model.model_fields for key in _keys(model, name)))


def suggestion(name: str, known: Sequence[str]) -> str:
    """``"; did you mean 'x'?"`` for the closest known name, else the list of known names."""
    close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
    if close:
        return f"; did you mean '{close[0]}'?"
    return f"; the known names are {', '.join(known)}" if known else "; none is accepted here"


def unknown_fields(model: type[BaseModel], data: Any, path: tuple[str | int, ...] = ()) -> list[
        tuple[tuple[str | int, ...], str]]:
    """Every key of ``data`` that ``model`` does not know, as ``(location, hint)``; nested models too.
    ``data`` that is not an object is left to validation."""
    if not isinstance(data, dict) or model.model_config.get("extra") == "allow":
        return []
    known = known_names(model)
    found = [((*path, str(key)), suggestion(str(key), known)) for key in data if key not in known]
    for name, field in model.model_fields.items():
        for key in (k for k in _keys(model, name) if k in data):
            found += _inside(field.annotation, data[key], (*path, key))
    return found


def mistyped_scalars(model: type[BaseModel], data: Any) -> list[tuple[str, str]]:
    """The keys of ``data`` (an object for ``model``, top level) given a boolean where the field takes only
    numbers, or a number where it takes only booleans, each with what it should be: pydantic converts
    both ways (``top_k: true`` asked for one hit, ``include_preference: 1`` read as true)."""
    if not isinstance(data, dict):
        return []
    found: list[tuple[str, str]] = []
    for name, field in model.model_fields.items():
        kinds = _scalar_kinds(field.annotation)
        for key in _keys(model, name):
            value = data.get(key)
            if isinstance(value, bool) and kinds and kinds <= {int, float}:
                found.append((key, "a number, not a boolean"))
            elif isinstance(value, int | float) and not isinstance(value, bool) and kinds == {bool}:
                found.append((key, "true or false, not a number"))
    return found


def _scalar_kinds(annotation: Any) -> set[type]:
    """The scalar types ``annotation`` takes when it takes nothing else but null (an int ``Literal`` is
    int); empty for any other annotation."""
    parts = get_args(annotation) if get_origin(annotation) in (Union, types.UnionType) else (annotation,)
    kinds: set[type] = set()
    for part in parts:
        if get_origin(part) is Literal and all(type(v) is int for v in get_args(part)):
            kinds.add(int)
        elif part in (int, float, bool):
            kinds.add(part)
        elif part is not type(None):
            return set()
    return kinds


def _keys(model: type[BaseModel], name: str) -> list[str]:
    """The keys one field is read from: its name, its alias and its validation aliases."""
    field = model.model_fields[name]
    keys = [name, *([field.alias] if field.alias else [])]
    alias = field.validation_alias
    if isinstance(alias, str):
        keys.append(alias)
    elif isinstance(alias, AliasChoices):
        keys += [choice for choice in alias.choices if isinstance(choice, str)]
    return keys


def _inside(annotation: Any, value: Any, path: tuple[str | int, ...]) -> list[tuple[tuple[str | int, ...], str]]:
    """The unknown keys of ``value``, held by a field annotated ``annotation``."""
    origin = get_origin(annotation)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return unknown_fields(annotation, value, path)
    if origin is Annotated:
        return _inside(get_args(annotation)[0], value, path)
    if origin in (Union, types.UnionType):
        models = [arg for arg in get_args(annotation) if _holds_model(arg)]
        return _inside(models[0], value, path) if len(models) == 1 else []
    if origin in (list, tuple, set, frozenset, Sequence) and isinstance(value, list):
        args = get_args(annotation)
        if args and (origin is not tuple or (len(args) == 2 and args[1] is Ellipsis)):
            return [problem for i, item in enumerate(value) for problem in _inside(args[0], item, (*path, i))]
    return []


def _holds_model(annotation: Any) -> bool:
    origin = get_origin(annotation)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return True
    if origin is Annotated:
        return _holds_model(get_args(annotation)[0])
    return origin in (list, tuple, set, frozenset, Sequence) and any(_holds_model(a) for a in get_args(annotation))


MAX_NAMED = 5  # unknown keys an error names; the rest are counted (an error stays small whatever is sent)


def describe(problems: Sequence[tuple[tuple[str | int, ...], str]], noun: str = "field") -> str:
    """``unknown field 'a'; did you mean 'b'?; unknown field 'c'...`` (nested ones by their dotted path),
    the first ``MAX_NAMED`` of them, then how many more there are."""
    named = "; ".join(f"unknown {noun if len(loc) == 1 else 'field'} '{dotted(loc)[:100]}'{hint}"
                      for loc, hint in problems[:MAX_NAMED])
    more = len(problems) - MAX_NAMED
    return f"{named}; and {more} more unknown {noun}s" if more > 0 else named


def dotted(loc: Sequence[str | int]) -> str:
    return ".".join(str(part) for part in loc)
