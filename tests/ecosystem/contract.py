"""Checks live HTTP answers (and the requests that earned a success) against the OpenAPI
document, with jsonschema (Draft 2020-12, as OpenAPI 3.1 uses) and its date-time format."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import httpx
from journeys.gateway import OPENAPI_DOCUMENT as DOCUMENT
from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

URI = "urn:journeys:openapi"


def load(path: Path = DOCUMENT) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(path.read_text())
    return document


def _pointer(*parts: str) -> str:
    return "".join("/" + part.replace("~", "~0").replace("/", "~1") for part in parts)


class Contract:
    """The document's answer to "is this response what the document says?"."""

    def __init__(self, document: dict[str, Any]) -> None:
        self.document = document
        resource: Resource[Any] = Resource.from_contents(
            document, default_specification=DRAFT202012
        )
        self._registry: Registry[Any] = Registry().with_resource(URI, resource)
        self._templates = [
            (re.compile("^" + re.sub(r"\{[^/}]+\}", "[^/]+", path) + "$"), path)
            for path in document["paths"]
        ]
        #: (METHOD, path template, status) of every checked answer.
        self.checked: set[tuple[str, str, int]] = set()

    def operations(self) -> set[tuple[str, str]]:
        return {
            (method.upper(), path)
            for path, item in self.document["paths"].items()
            for method in item
        }

    def template(self, path: str) -> str:
        matches = [template for pattern, template in self._templates if pattern.match(path)]
        assert len(matches) == 1, f"{path} matches {matches} in the document"
        template: str = matches[0]
        return template

    def _validate(self, pointer: str, instance: Any) -> None:
        validator = Draft202012Validator(
            {"$ref": f"{URI}#{pointer}"},
            registry=self._registry,
            format_checker=Draft202012Validator.FORMAT_CHECKER,
        )
        errors = sorted(validator.iter_errors(instance), key=lambda error: list(error.path))
        assert not errors, "\n".join(
            f"{list(error.absolute_path)}: {error.message}" for error in errors
        )

    def check(self, response: httpx.Response) -> httpx.Response:
        """Asserts the answer is documented for its operation and status and matches its
        schema; for a 2xx, the request body too. Returns the response."""
        request = response.request
        method = request.method.lower()
        path = self.template(request.url.path)
        operation = self.document["paths"][path].get(method)
        assert operation is not None, f"{method.upper()} {path} is not in the document"
        status = str(response.status_code)
        assert status in operation["responses"], (
            f"{method.upper()} {path} answered {status}, which the document does not list: "
            f"{response.text[:300]}"
        )
        where: tuple[str, ...] = ("paths", path, method, "responses", status)
        entry = operation["responses"][status]
        if "$ref" in entry:
            where = tuple(entry["$ref"].removeprefix("#/").split("/"))
            entry = self.document[where[0]][where[1]][where[2]]
        content_type = response.headers.get("content-type", "")
        assert content_type in entry["content"], f"{content_type!r} for {method} {path} {status}"
        self._validate(_pointer(*where, "content", content_type, "schema"), response.json())
        if response.is_success and request.content and "requestBody" in operation:
            self._validate(
                _pointer("paths", path, method, "requestBody", "content", "application/json")
                + "/schema",
                json.loads(request.content),
            )
        self.checked.add((method.upper(), path, response.status_code))
        return response
