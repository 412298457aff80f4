"""The OpenAPI 3.1 document of the server's HTTP API (served at /api/v1/openapi.json)."""

from __future__ import annotations

from typing import Any

from gateway import __version__
from gateway.web.protocols import HttpSettings

_ERROR = {
    "type": "object",
    "properties": {
        "error": {
            "type": "object",
            "properties": {"code": {"type": "string"}, "message": {"type": "string"}},
            "required": ["code", "message"],
        }
    },
}
_MSISDN = {"type": "string", "pattern": r"^\+?[0-9 \-]{9,18}$", "examples": ["48600000001"]}


def _json(schema: dict[str, Any]) -> dict[str, Any]:
    return {"content": {"application/json": {"schema": schema}}}


def openapi_document(settings: HttpSettings) -> dict[str, Any]:
    key_auth: list[dict[str, list[str]]] = [{"apiKey": []}]
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "idea24 server API",
            "version": __version__,
            "description": "Portal one-time passwords, USSD from aggregators, health, metrics.",
        },
        "servers": [{"url": f"http://{settings.http_host}:{settings.http_port}"}],
        "components": {
            "securitySchemes": {
                "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
                "apiKeyQuery": {"type": "apiKey", "in": "query", "name": "key"},
            },
            "schemas": {"Error": _ERROR},
        },
        "paths": {
            "/api/v1/passwords": {
                "post": {
                    "summary": "Send a temporary password (hasło tymczasowe) by SMS",
                    "security": key_auth,
                    "requestBody": {
                        "required": True,
                        **_json(
                            {
                                "type": "object",
                                "properties": {"msisdn": _MSISDN},
                                "required": ["msisdn"],
                            }
                        ),
                    },
                    "responses": {
                        "202": {"description": "accepted; an SMS is on its way to a subscriber"},
                        "400": {"description": "bad JSON or number", **_json(_ERROR)},
                        "401": {"description": "missing or wrong X-API-Key", **_json(_ERROR)},
                        "429": {"description": "too many requests or locked", **_json(_ERROR)},
                    },
                }
            },
            "/api/v1/passwords/verify": {
                "post": {
                    "summary": "Verify a temporary password once",
                    "security": key_auth,
                    "requestBody": {
                        "required": True,
                        **_json(
                            {
                                "type": "object",
                                "properties": {
                                    "msisdn": _MSISDN,
                                    "password": {"type": "string", "minLength": 1},
                                },
                                "required": ["msisdn", "password"],
                            }
                        ),
                    },
                    "responses": {
                        "200": {
                            "description": "valid (only the first time)",
                            **_json({"type": "object", "properties": {"valid": {"const": True}}}),
                        },
                        "400": {"description": "bad JSON or fields", **_json(_ERROR)},
                        "401": {
                            "description": "wrong, expired or already used; or wrong API key",
                            **_json({"type": "object"}),
                        },
                        "429": {"description": "number locked after repeated failures"},
                    },
                }
            },
            "/api/v1/ussd": {
                "post": {
                    "summary": "One USSD turn from an HTTP aggregator",
                    "description": "Key: IDEA24_USSD_API_KEY, else the API key. With neither"
                    " set, loopback peers only; IDEA24_USSD_ALLOW limits the peers further.",
                    "security": [{"apiKey": []}, {"apiKeyQuery": []}],
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/x-www-form-urlencoded": {
                                "schema": {
                                    "type": "object",
                                    "properties": {
                                        "sessionId": {
                                            "type": "string",
                                            "minLength": 1,
                                            "maxLength": 100,
                                            "pattern": r"\S",
                                        },
                                        "phoneNumber": _MSISDN,
                                        "serviceCode": {"type": "string", "examples": ["*100#"]},
                                        "text": {
                                            "type": "string",
                                            "description": "answers so far joined by *",
                                        },
                                    },
                                    "required": ["sessionId", "phoneNumber"],
                                }
                            }
                        },
                    },
                    "responses": {
                        "200": {
                            "description": "CON <menu> (session open) or END <text> (final)",
                            "content": {"text/plain": {"schema": {"type": "string"}}},
                        },
                        "400": {
                            "description": "missing or malformed fields, unreadable body",
                            "content": {"text/plain": {"schema": {"type": "string"}}},
                        },
                        "401": {"description": "missing or wrong key", **_json(_ERROR)},
                        "403": {
                            "description": "address not allowed (loopback only while no key"
                            " is configured, or outside IDEA24_USSD_ALLOW)",
                            **_json(_ERROR),
                        },
                    },
                }
            },
            "/healthz": {
                "get": {
                    "summary": "Health",
                    "responses": {"200": {"description": "ok"}, "503": {"description": "degraded"}},
                }
            },
            "/metrics": {
                "get": {
                    "summary": "Prometheus metrics",
                    "responses": {"200": {"description": "text exposition"}},
                }
            },
            "/api/v1/openapi.json": {
                "get": {
                    "summary": "This document",
                    "responses": {"200": {"description": "OpenAPI"}},
                }
            },
            "/phone": {
                "get": {
                    "summary": "Web handset (developer)",
                    "responses": {"200": {"description": "HTML"}},
                }
            },
        },
    }
