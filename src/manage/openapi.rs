//! The OpenAPI 3.1 document of the management API (`GET /v1/openapi.json`).

use serde_json::{Value, json};

fn problem(description: &str) -> Value {
    json!({
        "description": description,
        "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}
    })
}

fn ok(description: &str, schema: Value) -> Value {
    json!({
        "description": description,
        "content": {"application/json": {"schema": schema}}
    })
}

fn body(schema: Value) -> Value {
    json!({"required": true, "content": {"application/json": {"schema": schema}}})
}

fn schema(name: &str) -> Value {
    json!({"$ref": format!("#/components/schemas/{name}")})
}

/// The responses every call may give, with `extra` ones.
fn responses(extra: Value) -> Value {
    let mut r = json!({
        "400": problem("The body is not JSON, or not a JSON object."),
        "401": problem("No valid caller (the application's identify said no)."),
        "413": problem("The body is larger than the server accepts."),
        "422": problem("A field's value is not acceptable; `field` names it."),
        "429": {
            "description": "The tenant's request rate is over its limit; nothing was done. Ask again after Retry-After.",
            "headers": {"Retry-After": {"description": "Seconds to wait.", "schema": {"type": "integer", "minimum": 1}}},
            "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}
        },
    });
    if let (Some(r), Some(extra)) = (r.as_object_mut(), extra.as_object()) {
        for (k, v) in extra {
            r.insert(k.clone(), v.clone());
        }
    }
    r
}

fn op(id: &str, summary: &str, request: Option<Value>, extra: Value) -> Value {
    let mut o = json!({
        "operationId": id,
        "summary": summary,
        "responses": responses(extra),
    });
    if let Some(b) = request {
        o["requestBody"] = body(b);
    }
    o
}

fn not_found() -> Value {
    problem("No such webhook for this caller (another tenant's is not found either).")
}

/// The document.
pub(super) fn document() -> Value {
    let id_param = json!([{
        "name": "id", "in": "path", "required": true,
        "schema": {"type": "string"}, "description": "The webhook's id (`wh_…`)."
    }]);
    let webhook_fields = json!({
        "name": {"type": "string", "minLength": 1, "maxLength": 256},
        "url": {"type": "string", "format": "uri", "description": "https (http to loopback only when the server allows it); internal addresses are refused."},
        "events": {"type": "array", "items": {"type": "string"}, "minItems": 1, "maxItems": 100, "description": "Event types or patterns (`order.*`, `order.**`)."},
        "filters": {"description": "A declarative filter: an expression, or a map of field to allowed values."},
        "retry_config": {"type": "object", "properties": {
            "max_retries": {"type": "integer", "minimum": 0},
            "backoff": {"type": "string", "enum": ["exponential", "fixed", "standard_webhooks"]},
            "initial_delay_ms": {"type": "integer", "minimum": 0},
            "max_delay_ms": {"type": "integer", "minimum": 0}
        }, "additionalProperties": false},
        "format": {"type": "string", "enum": ["structured", "binary", "batched", "envelope", "raw"]},
        "templates": {"type": "object", "additionalProperties": true, "description": "Payload templates by event type or pattern."}
    });
    let mut create_props = webhook_fields.clone();
    create_props["secret"] = json!({"type": "string", "pattern": "^whsec_", "description": "A Standard Webhooks secret; generated when absent."});
    let mut patch_props = create_props.clone();
    patch_props["id"] =
        json!({"type": "string", "description": "If given, must be the path's id."});
    let mut webhook_props = webhook_fields;
    for (k, v) in [
        ("id", json!({"type": "string"})),
        (
            "status",
            json!({"type": "string", "enum": ["enabled", "disabled"]}),
        ),
        (
            "failed_events",
            json!({"type": "integer", "minimum": 0, "description": "Events given up or refused while disabled, waiting for retry_failed."}),
        ),
        (
            "created_at",
            json!({"type": "string", "format": "date-time"}),
        ),
    ] {
        webhook_props[k] = v;
    }
    let mut created_props = webhook_props.clone();
    created_props["secret"] =
        json!({"type": "string", "description": "The signing secret: returned here only."});
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "hookbus webhook management API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Register, inspect, test and retry webhook endpoints, and post events, for the calling tenant. Errors are RFC 9457 problem details."
        },
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {
                "Problem": {
                    "type": "object",
                    "required": ["type", "title", "status", "detail"],
                    "properties": {
                        "type": {"type": "string", "format": "uri"},
                        "title": {"type": "string"},
                        "status": {"type": "integer"},
                        "detail": {"type": "string"},
                        "field": {"type": "string", "description": "The request field at fault."}
                    }
                },
                "WebhookCreate": {
                    "type": "object", "required": ["name", "url", "events"],
                    "properties": create_props, "additionalProperties": false
                },
                "WebhookPatch": {
                    "type": "object", "properties": patch_props, "additionalProperties": false
                },
                "Webhook": {"type": "object", "properties": webhook_props},
                "WebhookCreated": {"type": "object", "properties": created_props},
                "Delivery": {
                    "type": "object",
                    "properties": {
                        "event_id": {"type": "string"},
                        "event_type": {"type": "string"},
                        "success": {"type": "boolean"},
                        "response_code": {"type": ["integer", "null"]},
                        "attempts": {"type": "integer"},
                        "at": {"type": "string", "format": "date-time"},
                        "error": {"type": ["string", "null"]}
                    }
                },
                "Event": {
                    "type": "object", "required": ["type"],
                    "description": "`{type, data, subject?, id?}` or a structured-mode CloudEvent; the tenant is the caller's.",
                    "properties": {
                        "type": {"type": "string"}, "data": {}, "subject": {"type": "string"},
                        "id": {"type": "string"}, "source": {"type": "string"},
                        "specversion": {"const": "1.0"}, "time": {"type": "string", "format": "date-time"},
                        "datacontenttype": {"type": "string"}, "dataschema": {"type": "string"}
                    },
                    "additionalProperties": false
                },
                "Since": {
                    "type": "object",
                    "properties": {"since": {"type": "string", "format": "date-time"}},
                    "additionalProperties": false
                }
            }
        },
        "security": [{"bearer": []}],
        "paths": {
            "/v1/webhooks": {
                "post": op("createWebhook", "Create a webhook (the secret is returned only here).", Some(schema("WebhookCreate")), json!({
                    "201": ok("Created.", schema("WebhookCreated")),
                    "409": problem("The tenant has as many webhooks as it may.")
                })),
                "get": op("listWebhooks", "The caller's webhooks.", None, json!({
                    "200": ok("The webhooks (no secrets).", json!({"type": "object", "properties": {"data": {"type": "array", "items": schema("Webhook")}}}))
                }))
            },
            "/v1/webhooks/{id}": {
                "parameters": id_param,
                "get": op("getWebhook", "One webhook.", None, json!({"200": ok("The webhook.", schema("Webhook")), "404": not_found()})),
                "patch": op("updateWebhook", "Change fields; the id, secret (unless given) and status are kept.", Some(schema("WebhookPatch")), json!({"200": ok("The webhook.", schema("Webhook")), "404": not_found()})),
                "delete": op("deleteWebhook", "Delete a webhook.", None, json!({"204": {"description": "Deleted."}, "404": not_found()}))
            },
            "/v1/webhooks/{id}/disable": {
                "parameters": id_param,
                "post": op("disableWebhook", "Disable: its events are kept for retry_failed.", None, json!({"200": ok("The webhook.", schema("Webhook")), "404": not_found()}))
            },
            "/v1/webhooks/{id}/enable": {
                "parameters": id_param,
                "post": op("enableWebhook", "Enable again.", None, json!({"200": ok("The webhook.", schema("Webhook")), "404": not_found()}))
            },
            "/v1/webhooks/{id}/test": {
                "parameters": id_param,
                "post": op("testWebhook", "Send one event now, once.", Some(json!({
                    "type": "object", "required": ["event_type"],
                    "properties": {"event_type": {"type": "string"}, "payload": {}},
                    "additionalProperties": false
                })), json!({
                    "200": ok("How it went.", json!({"type": "object", "properties": {
                        "status": {"type": "string", "enum": ["success", "failed"]},
                        "response_code": {"type": ["integer", "null"]},
                        "response_body": {"type": ["string", "null"]},
                        "latency_ms": {"type": "integer"},
                        "error": {"type": ["string", "null"]}
                    }})),
                    "404": not_found()
                }))
            },
            "/v1/webhooks/{id}/deliveries": {
                "parameters": id_param,
                "get": {
                    "operationId": "listDeliveries",
                    "summary": "Delivery attempts, newest first.",
                    "parameters": [
                        {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100}},
                        {"name": "cursor", "in": "query", "schema": {"type": "string"}, "description": "next_cursor of the previous page."}
                    ],
                    "responses": responses(json!({
                        "200": ok("A page.", json!({"type": "object", "properties": {
                            "data": {"type": "array", "items": schema("Delivery")},
                            "next_cursor": {"type": ["string", "null"]}
                        }})),
                        "404": not_found()
                    }))
                }
            },
            "/v1/webhooks/{id}/retry_failed": {
                "parameters": id_param,
                "post": op("retryFailed", "Send again the events given up (or refused while disabled) since a time.", Some(schema("Since")), json!({
                    "202": ok("Accepted; sent in the background.", json!({"type": "object", "properties": {"retried": {"type": "integer"}}})),
                    "404": not_found()
                }))
            },
            "/v1/webhooks/{id}/rotate_secret": {
                "parameters": id_param,
                "post": op("rotateSecret", "A new signing secret; the old one signs alongside for the grace.", Some(json!({
                    "type": "object",
                    "properties": {
                        "secret": {"type": "string", "pattern": "^whsec_", "description": "Generated when absent."},
                        "grace_seconds": {"type": "integer", "minimum": 0, "maximum": 604800, "default": 86400}
                    },
                    "additionalProperties": false
                })), json!({
                    "200": ok("The new secret: returned here only.", json!({"type": "object", "properties": {
                        "id": {"type": "string"},
                        "secret": {"type": "string"},
                        "previous_valid_until": {"type": ["string", "null"], "format": "date-time"}
                    }})),
                    "404": not_found()
                }))
            },
            "/v1/webhooks/{id}/replay": {
                "parameters": id_param,
                "post": op("replay", "Send again the events delivered since a time (needs a store that keeps delivered events).", Some(schema("Since")), json!({
                    "202": ok("Accepted; sent in the background.", json!({"type": "object", "properties": {"retried": {"type": "integer"}}})),
                    "404": not_found(),
                    "409": problem("This server does not keep delivered events.")
                }))
            },
            "/v1/events": {
                "post": op("postEvent", "Emit an event for the caller's tenant.", Some(schema("Event")), json!({
                    "202": ok("Accepted (on disk, with a store).", json!({"type": "object", "properties": {"id": {"type": "string"}}})),
                    "503": problem("The bus or its store does not take events now.")
                }))
            },
            "/v1/openapi.json": {
                "get": {
                    "operationId": "openapi",
                    "summary": "This document.",
                    "security": [],
                    "responses": {"200": {"description": "The OpenAPI document.", "content": {"application/json": {}}}}
                }
            }
        }
    })
}
