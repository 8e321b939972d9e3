"""Tools that refuse arguments they do not know.

The SDK builds each tool's argument model from the function's signature and lets unknown keys pass
(pydantic's default ``extra="ignore"``), so a misnamed argument is dropped without a word:
``list_memories {"cube_ids": [...]}`` lists every cube, and ``add_memory {"cube_ids": [...]}`` writes
into the default cube. ``ToolBox`` registers tools like ``MCPServer.tool`` but gives each argument
model ``extra="forbid"`` (the input schema then says ``additionalProperties: false``, otherwise
unchanged) and the check of ``memos_mcp.known_fields``, which names every unknown argument (and
unknown key of a nested object) with the closest known name. The collected
tools are handed to ``MCPServer(tools=...)``. A call whose arguments do not validate is a tool error
in the form of every other (``invalid_request: <field>: <problem>``), not the SDK's validation dump.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.mcpserver.tools import Tool
from mcp.server.mcpserver.utilities.func_metadata import ArgModelBase
from mcp.types import Icon, ToolAnnotations
from pydantic import ConfigDict, ValidationError, create_model, model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError

from memos_mcp.errors import InvalidRequest, ResponseTooLarge
from memos_mcp.known_fields import describe, mistyped_scalars, unknown_fields
from memos_mcp.mcp.fit import fitted
from memos_mcp.mcp.gate import tool_error

F = TypeVar("F", bound=Callable[..., Any])


class RefuseUnknown(ArgModelBase):
    """A mixin for argument models: unknown keys are refused, each named with the closest known one, and
    a boolean given for a number or a number for a boolean (``known_fields.mistyped_scalars``)."""

    model_config = ConfigDict(extra="forbid")

    @model_validator(mode="before")
    @classmethod
    def refuse_unknown_arguments(cls, data: Any) -> Any:
        problems = unknown_fields(cls, data)
        if problems:  # the first is named with its value; the others only counted (the error stays small)
            first = problems[0]
            raise ValidationError.from_exception_data(cls.__name__, [InitErrorDetails(
                type=PydanticCustomError("unknown_argument", "{problem}", {"problem": describe(problems, "argument")}),
                loc=first[0], input=_at(data, first[0]))])
        return data

    @model_validator(mode="before")
    @classmethod
    def refuse_mistyped_scalars(cls, data: Any) -> Any:  # pydantic would read true as 1, and 1 as true
        for key, problem in mistyped_scalars(cls, data)[:1]:
            raise ValidationError.from_exception_data(cls.__name__, [InitErrorDetails(
                type=PydanticCustomError("scalar_type", "Input should be {problem}", {"problem": problem}),
                loc=(key,), input=data[key])])
        return data


def _at(data: Any, loc: tuple[str | int, ...]) -> Any:
    """The value at ``loc`` in ``data`` (keys of objects, indexes of lists), as validation reports it."""
    for part in loc:
        data = data[part]
    return data


def strict_arguments(loose: type[ArgModelBase]) -> type[ArgModelBase]:
    """The argument model ``loose`` refusing unknown keys (same name, so the same schema title)."""
    return create_model(loose.__name__, __base__=(loose, RefuseUnknown), __module__=loose.__module__)


class StrictTool(Tool):
    """A tool whose argument errors read like the server's other errors: ``invalid_request:`` and the
    first problem with its field (an unknown argument: the names and the closest known ones), and
    whose answer fits one MCP message (``fit.fitted``)."""

    async def run(self, arguments: dict[str, Any], context: Any, convert_result: bool = False) -> Any:
        try:
            self.fn_metadata.validate_arguments(arguments)
        except ValidationError as exc:
            first = exc.errors()[0]
            problem = InvalidRequest(str(first["msg"])) if first["type"] == "unknown_argument" else \
                InvalidRequest.naming_field(exc)
            raise ToolError(f"{problem.code}: {problem.message}") from exc
        result = await super().run(arguments, context)
        if not convert_result:
            return result
        try:
            return fitted(result, self.fn_metadata.convert_result)
        except ResponseTooLarge as exc:
            raise tool_error(exc) from exc


class ToolBox:
    """Collects tools the way ``MCPServer.tool`` registers them, each refusing unknown arguments;
    ``tools`` goes to ``MCPServer(tools=...)``."""

    def __init__(self) -> None:
        self.tools: list[Tool] = []

    def tool(self, name: str | None = None, title: str | None = None, description: str | None = None,
             annotations: ToolAnnotations | None = None, icons: list[Icon] | None = None,
             meta: dict[str, Any] | None = None, structured_output: bool | None = None) -> Callable[[F], F]:
        """A decorator registering ``fn`` as a tool; the parameters are those of ``MCPServer.tool``."""
        def register(fn: F) -> F:
            tool = Tool.from_function(fn, name=name, title=title, description=description, annotations=annotations,
                                      icons=icons, meta=meta, structured_output=structured_output)
            arguments = strict_arguments(tool.fn_metadata.arg_model)
            metadata = tool.fn_metadata.model_copy(update={"arg_model": arguments})
            # extra="forbid" adds only this to the schema: setting it spares generating the schema again
            # (a tenth of stdio's start went into the tools' schemas)
            parameters = {**tool.parameters, "additionalProperties": False}
            self.tools.append(StrictTool.model_construct(**{**dict(tool), "fn_metadata": metadata,
                                                            "parameters": parameters}))
            return fn
        return register
