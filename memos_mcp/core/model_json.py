"""Reading the JSON object out of a language model's answer, which may be fenced in ``````json``
or surrounded by prose, and may hold raw newlines inside strings."""

from __future__ import annotations

import json
import re
from typing import Any

_FENCE = re.compile(r"^```(?:json)?\s*|\s*```$", re.IGNORECASE)


def json_object(text: str) -> dict[str, Any]:
    """The answer's JSON object; ValueError saying what is wrong otherwise."""
    body = _FENCE.sub("", text.strip())
    try:
        found = json.loads(body, strict=False)
    except json.JSONDecodeError:
        start, end = body.find("{"), body.rfind("}")
        if start < 0 or end <= start:
            raise ValueError("the answer holds no JSON object") from None
        try:
            found = json.loads(body[start:end + 1], strict=False)
        except json.JSONDecodeError as exc:
            raise ValueError(f"the answer is not valid JSON ({exc.msg} at character {exc.pos})") from None
    if not isinstance(found, dict):
        raise ValueError(f"the answer is a JSON {type(found).__name__}, not an object")
    return found
