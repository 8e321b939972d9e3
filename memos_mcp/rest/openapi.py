"""The OpenAPI 3.1 document of the REST mirror and the admin routes, generated from the pydantic models
each dialect declares on its operations, and the offline Swagger UI page that renders it.

A dialect's envelope is a class with ``ok`` and ``error``, not a schema; its shape is read from the
envelope itself: ``ok`` wraps a marker value and ``error`` an example error, and the JSON they answer
becomes the schema, with the operation's response model where the marker was. One reading of the
envelope, no second description to keep in step with it.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, TypeAdapter
from pydantic.json_schema import GenerateJsonSchema, JsonSchemaMode, JsonSchemaValue
from pydantic_core import core_schema
from starlette.responses import HTMLResponse

from memos_mcp.errors import MemosError
from memos_mcp.rest.base import Dialect, Envelope

_MARKER = "\x00memos-openapi-data\x00"
_PARAM = re.compile(r"\{(\w+)(?::(\w+))?\}")
_REF = "#/components/schemas/{model}"
RATE_HEADERS = {
    "X-RateLimit-Limit": "requests allowed in the tightest window",
    "X-RateLimit-Remaining": "requests left in that window",
    "X-RateLimit-Reset": "Unix time (s) at which that window frees a request",
}
SECURITY: list[dict[str, list[str]]] = [{"bearer": []}, {"token": []}]


@dataclass(frozen=True)
class Extra:
    """A route outside the dialects, for the document: bare JSON answers, ``{"error": ...}`` errors."""

    method: str
    path: str
    summary: str
    tag: str
    body: type[BaseModel] | None = None
    response: dict[str, Any] | None = None  # JSON Schema of the answer
    status: int = 200
    public: bool = False
    media_types: tuple[str, ...] = ("application/json",)


class _ClosedObjects(GenerateJsonSchema):
    """Objects say ``additionalProperties: false`` unless their model allows extra keys: the dialects
    refuse keys they do not define (``rest.base.validate``), and answer with the fields they declare."""

    def model_schema(self, schema: core_schema.ModelSchema) -> JsonSchemaValue:
        json_schema = super().model_schema(schema)
        if schema["cls"].model_config.get("extra", "ignore") == "ignore" and json_schema.get("type") == "object":
            json_schema.setdefault("additionalProperties", False)
        return json_schema


def openapi_document(dialects: Sequence[Dialect], extras: Sequence[Extra], version: str) -> dict[str, Any]:
    inputs: list[tuple[tuple[str, int, str], JsonSchemaMode, TypeAdapter[Any]]] = []
    for dialect in dialects:
        for i, op in enumerate(dialect.operations):
            if op.body is not None:
                inputs.append(((dialect.name, i, "body"), "validation", TypeAdapter(op.body)))
            if op.query is not None:
                inputs.append(((dialect.name, i, "query"), "validation", TypeAdapter(op.query)))
            if op.response is not None:
                inputs.append(((dialect.name, i, "response"), "serialization", TypeAdapter(op.response)))
    for i, extra in enumerate(extras):
        if extra.body is not None:
            inputs.append(((":extra", i, "body"), "validation", TypeAdapter(extra.body)))
    found, definitions = TypeAdapter.json_schemas(inputs, ref_template=_REF, schema_generator=_ClosedObjects)
    schemas: dict[str, Any] = dict(definitions.get("$defs", {}))
    schemas["Error"] = {"type": "object", "properties": {"error": _ERROR_BODY}, "required": ["error"]}

    def model(key: tuple[str, int, str], mode: JsonSchemaMode) -> dict[str, Any] | None:
        return found.get((key, mode))

    paths: dict[str, dict[str, Any]] = {}
    tags: list[dict[str, str]] = []
    for dialect in dialects:
        ok, error = _envelope(dialect.envelope)
        error_name = re.sub(r"\W+", "", dialect.name.title()) + "Error"
        schemas[error_name] = error
        error_ref = {"$ref": _REF.format(model=error_name)}
        tags.append({"name": dialect.name, "description": _module_summary(dialect)})
        for i, op in enumerate(dialect.operations):
            path, params = _path(dialect.prefix + op.path)
            operation: dict[str, Any] = {"tags": [dialect.name], "summary": op.summary,
                                         "operationId": _operation_id(dialect.name, op.method, op.path)}
            query = model((dialect.name, i, "query"), "validation")
            params += _query_parameters(query, schemas) if query is not None else []
            if params:
                operation["parameters"] = params
            body = model((dialect.name, i, "body"), "validation")
            if body is not None:
                operation["requestBody"] = {"required": True, "content": {"application/json": {"schema": body}}}
            data = model((dialect.name, i, "response"), "serialization") or {}
            answer = ({"text/event-stream": {"schema": {"type": "string"}}} if op.raw
                      else {"application/json": {"schema": ok(data)}})
            operation["responses"] = {
                str(op.status): {"description": op.message, "headers": _headers(), "content": answer},
                "413": _error_response("the request body is too large", error_ref),
                "429": _error_response("rate limit exceeded", error_ref, retry=True),
                "default": _error_response("an error, in the dialect's envelope", error_ref),
            }
            paths.setdefault(path, {})[op.method.lower()] = operation
    for i, extra in enumerate(extras):
        paths.setdefault(extra.path, {})[extra.method.lower()] = _extra(extra, model((":extra", i, "body"),
                                                                                      "validation"))
    tags += [{"name": tag} for tag in dict.fromkeys(extra.tag for extra in extras)]
    return {
        "openapi": "3.1.0",
        "info": {"title": "memos-mcp", "version": version,
                 "description": "The REST mirror of the memos-mcp memory server: every dialect over one core."},
        "tags": tags,
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "description": "Authorization: Bearer KEY"},
                "token": {"type": "apiKey", "in": "header", "name": "Authorization",
                          "description": "Authorization: Token KEY (the MemOS clients' scheme)"},
            },
        },
        "security": SECURITY,
    }


_ERROR_BODY = {"type": "object", "required": ["code", "message"], "properties": {
    "code": {"type": "string"}, "message": {"type": "string"}, "details": {"type": "object"}}}


def _envelope(envelope: Envelope) -> tuple[Any, dict[str, Any]]:
    """A function wrapping a data schema in the envelope's success shape, and its error schema."""
    try:
        ok_example = json.loads(bytes(envelope.ok(_MARKER, "Success", 200).body))
    except Exception:  # an envelope that cannot wrap a string or answers other than JSON: no shape known
        ok_example = _MARKER
    try:
        error = _infer(json.loads(bytes(envelope.error(MemosError("example")).body)), {})
    except Exception:  # as above
        error = {}
    return (lambda data: _infer(ok_example, data)), error


def _infer(example: Any, data: dict[str, Any]) -> dict[str, Any]:
    """A loose JSON Schema of an example answer: types of the fields, ``data`` where the marker is."""
    if example == _MARKER:
        return data
    if isinstance(example, dict):
        return {"type": "object", "properties": {k: _infer(v, data) for k, v in example.items()}}
    if isinstance(example, list):
        return {"type": "array"}
    if isinstance(example, bool):
        return {"type": "boolean"}
    if isinstance(example, int):
        return {"type": "integer"}
    if isinstance(example, float):
        return {"type": "number"}
    if isinstance(example, str):
        return {"type": "string"}
    return {}  # null in the example: the type is not known


def _path(template: str) -> tuple[str, list[dict[str, Any]]]:
    """The OpenAPI path of a Starlette template (converters dropped) and its path parameters."""
    params = [{"name": name, "in": "path", "required": True,
               "schema": {"type": "integer"} if converter == "int" else {"type": "string"}}
              for name, converter in _PARAM.findall(template)]
    return _PARAM.sub(r"{\1}", template), params


def _query_parameters(schema: dict[str, Any], schemas: dict[str, Any]) -> list[dict[str, Any]]:
    ref = schema.get("$ref", "")
    resolved = schemas.get(ref.rsplit("/", 1)[-1], {}) if ref else schema
    required = set(resolved.get("required", []))
    return [{"name": name, "in": "query", "required": name in required, "schema": prop,
             **({"description": prop["description"]} if "description" in prop else {})}
            for name, prop in resolved.get("properties", {}).items()]


def _operation_id(tag: str, method: str, path: str) -> str:
    return re.sub(r"\W+", "_", f"{tag} {method} {path}".lower()).strip("_")


def _headers(retry: bool = False) -> dict[str, Any]:
    headers = {name: {"description": text, "schema": {"type": "integer"}} for name, text in RATE_HEADERS.items()}
    if retry:
        headers["Retry-After"] = {"description": "seconds to wait before retrying", "schema": {"type": "integer"}}
    return headers


def _error_response(description: str, ref: dict[str, str], retry: bool = False) -> dict[str, Any]:
    return {"description": description, "headers": _headers(retry), "content": {"application/json": {"schema": ref}}}


def _extra(extra: Extra, body: dict[str, Any] | None) -> dict[str, Any]:
    content = {media: {"schema": extra.response or {}} for media in extra.media_types}
    operation: dict[str, Any] = {
        "tags": [extra.tag], "summary": extra.summary,
        "operationId": _operation_id(extra.tag, extra.method, extra.path),
        "responses": {str(extra.status): {"description": extra.summary, "content": content},
                      "default": {"description": "an error", "content": {"application/json": {
                          "schema": {"$ref": _REF.format(model="Error")}}}}},
    }
    _, params = _path(extra.path)
    if params:
        operation["parameters"] = params
    if body is not None:
        operation["requestBody"] = {"required": True, "content": {"application/json": {"schema": body}}}
    if extra.public:
        operation["security"] = []
    return operation


def _module_summary(dialect: Dialect) -> str:
    """The first paragraph of the docstring of the dialect's module (its tag's description)."""
    if not dialect.operations:
        return dialect.name
    # The dialect's own module of this package (a dialect that is a package keeps its routes in submodules).
    depth = __name__.count(".") + 1
    module = ".".join(dialect.operations[0].handler.__module__.split(".")[:depth])
    doc = getattr(sys.modules.get(module), "__doc__", None) or dialect.name
    return doc.strip().split("\n\n", 1)[0].replace("\n", " ")


# --- the docs page ------------------------------------------------------------------------------

def swagger_ui_assets() -> Path:
    """Swagger UI 5 (renders OpenAPI 3.1), as shipped in the swagger-ui-py package: no CDN."""
    import swagger_ui  # imported here: only the docs routes need it

    return Path(swagger_ui.__file__).parent / "static"


# Relative URLs: the page works wherever the app is mounted. validatorUrl null: no call to an online validator.
DOCS_PAGE = """<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>memos-mcp REST API</title>
  <link rel="stylesheet" href="docs/static/swagger-ui.css">
  <link rel="icon" type="image/png" href="docs/static/favicon-32x32.png">
</head>
<body>
  <div id="swagger-ui"></div>
  <script src="docs/static/swagger-ui-bundle.js"></script>
  <script>
    window.ui = SwaggerUIBundle({url: "openapi.json", dom_id: "#swagger-ui", deepLinking: true,
                                 validatorUrl: null, presets: [SwaggerUIBundle.presets.apis]});
  </script>
</body>
</html>
"""


def docs_page() -> HTMLResponse:
    return HTMLResponse(DOCS_PAGE)
