"""What the OpenAPI description says beyond what drf-spectacular reads from the views."""

from __future__ import annotations

from typing import Any

ERROR_REF = {"$ref": "#/components/schemas/Error"}


def document_rate_limits(result: dict[str, Any], generator: Any, request: Any, public: bool) -> dict[str, Any]:
    """Every /api/v1 operation is behind DRF's throttles: each documents its 429 with the error body.

    A postprocessing hook (SPECTACULAR_SETTINGS["POSTPROCESSING_HOOKS"]), so a new
    route cannot forget it.
    """
    for path, operations in result.get("paths", {}).items():
        if not path.startswith("/api/v1/"):
            continue
        for method, operation in operations.items():
            if method in ("get", "post", "put", "patch", "delete"):
                operation.setdefault("responses", {}).setdefault(
                    "429",
                    {
                        "description": "Rate-limited or locked out; Retry-After says when to come back.",
                        "content": {"application/json": {"schema": ERROR_REF}},
                    },
                )
    return result
