"""Tools that refuse arguments they do not know.

The SDK builds each tool's argument model from the function's signature and lets unknown keys pass
(pydantic's default ``extra="ignore"``), so a misnamed argument is dropped without a word:
``list_memories {"cube_ids": [...]}`` lists every cube, and ``add_memory {"cube_ids": [...]}`` writes
into the default cube. ``ToolBox`` registers tools like ``MCPServer.tool`` but gives each argument
model ``extra="forbid"`` (the input schema then says ``additionalProperties: false``, otherwise
unchanged) and a check that names every unknown argument with the closest known one. The collected
tools are handed to ``MCPServer(tools=...)``.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from typing import Any, TypeVar

from mcp.server.mcpserver.tools import Tool
from mcp.server.mcpserver.utilities.func_metadata import ArgModelBase
from mcp.types import ToolAnnotations
from pydantic import ConfigDict, ValidationError, create_model, model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError

F = TypeVar("F", bound=Callable[..., Any])


def unknown_name_errors(given: Any, known: list[str]) -> list[InitErrorDetails]:
    """One ``unknown_argument`` error (located at the key) per key of ``given`` that is not in ``known``,
    suggesting the closest known name when there is one."""
    if not isinstance(given, dict):
        return []
    errors: list[InitErrorDetails] = []
    for key, value in given.items():
        if key in known:
            continue
        close = difflib.get_close_matches(str(key), known, n=1, cutoff=0.6)
        hint = f"; did you mean '{close[0]}'?" if close else f"; the arguments are {', '.join(known)}"
        errors.append(InitErrorDetails(
            type=PydanticCustomError("unknown_argument", "unknown argument '{name}'{hint}",
                                     {"name": str(key), "hint": hint}),
            loc=(str(key),), input=value))
    return errors


class RefuseUnknown(ArgModelBase):
    """A mixin for argument models: unknown keys are refused, each named with the closest known one."""

    model_config = ConfigDict(extra="forbid")

    @model_validator(mode="before")
    @classmethod
    def refuse_unknown_arguments(cls, data: Any) -> Any:
        errors = unknown_name_errors(data, [field.alias or name for name, field in cls.model_fields.items()])
        if errors:
            raise ValidationError.from_exception_data(cls.__name__, errors)
        return data


def strict_arguments(loose: type[ArgModelBase]) -> type[ArgModelBase]:
    """The argument model ``loose`` refusing unknown keys (same name, so the same schema title)."""
    return create_model(loose.__name__, __base__=(loose, RefuseUnknown), __module__=loose.__module__)


class ToolBox:
    """Collects tools the way ``MCPServer.tool`` registers them, each refusing unknown arguments;
    ``tools`` goes to ``MCPServer(tools=...)``."""

    def __init__(self) -> None:
        self.tools: list[Tool] = []

    def tool(self, annotations: ToolAnnotations | None = None) -> Callable[[F], F]:
        def register(fn: F) -> F:
            tool = Tool.from_function(fn, annotations=annotations)
            arguments = strict_arguments(tool.fn_metadata.arg_model)
            metadata = tool.fn_metadata.model_copy(update={"arg_model": arguments})
            self.tools.append(tool.model_copy(update={
                "fn_metadata": metadata, "parameters": arguments.model_json_schema(by_alias=True)}))
            return fn
        return register
