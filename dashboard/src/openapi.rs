//! The OpenAPI 3.1 description of `/api/v1`, written by hand next to the routes; a test checks that
//! every route in [`crate::api::ROUTES`] is described and nothing else is.

use serde_json::{Value, json};

fn error_responses(codes: &[&str]) -> Value {
    let mut map = serde_json::Map::new();
    for code in codes {
        let (description, schema) = match *code {
            "401" => ("Not authenticated: send Authorization: Bearer <token>", "Error"),
            "403" => ("Not allowed (RBAC), or a CSRF check failed", "Error"),
            "400" => ("A path parameter does not parse", "Error"),
            "404" => ("No such job or run", "Error"),
            "409" => ("A job with this name exists, or it changed meanwhile", "Error"),
            "415" => ("The body is not sent as content-type: application/json", "Error"),
            "422" => (
                "Invalid input, with every problem by field (unknown fields too)",
                "ValidationErrors",
            ),
            _ => ("Internal error", "Error"),
        };
        map.insert(
            (*code).to_owned(),
            json!({
                "description": description,
                "content": { "application/json": { "schema": { "$ref": format!("#/components/schemas/{schema}") } } }
            }),
        );
    }
    Value::Object(map)
}

fn with_errors(mut ok: Value, codes: &[&str]) -> Value {
    if let (Some(map), Value::Object(errors)) = (ok.as_object_mut(), error_responses(codes)) {
        map.extend(errors);
    }
    ok
}

fn path_params() -> Value {
    json!([
        { "name": "namespace", "in": "path", "required": true, "schema": { "type": "string" },
          "description": "The job's namespace (standalone: \"default\")" },
        { "name": "name", "in": "path", "required": true, "schema": { "type": "string" } }
    ])
}

fn id_param() -> Value {
    json!([{ "name": "id", "in": "path", "required": true, "schema": { "type": "integer", "format": "int64", "minimum": 1 },
             "description": "A run id; anything else is a 404 in JSON" }])
}

/// The filters and cursors of the run lists.
fn run_list_params(across_jobs: bool) -> Value {
    let mut params = vec![
        json!({ "name": "status", "in": "query", "schema": { "type": "string", "enum": ["", "SUCCESS", "FAILURE", "ERROR", "RUNNING"] } }),
        json!({ "name": "trigger", "in": "query", "schema": { "type": "string", "enum": ["", "schedule", "manual"] } }),
        json!({ "name": "since", "in": "query", "schema": { "type": "string" },
                "description": "Started at or after: RFC3339, or 2026-11-30 / 2026-11-30T09:00 in the job's zone (across jobs: Asia/Hong_Kong)" }),
        json!({ "name": "until", "in": "query", "schema": { "type": "string" }, "description": "Started before (same forms as since)" }),
        json!({ "name": "before", "in": "query", "schema": { "type": "string" }, "description": "A cursor (olderCursor of a page): the page of older runs" }),
        json!({ "name": "after", "in": "query", "schema": { "type": "string" }, "description": "A cursor (newerCursor of a page): the page of newer runs" }),
        json!({ "name": "limit", "in": "query", "schema": { "type": "integer", "minimum": 1, "maximum": 500 } }),
        json!({ "name": "q", "in": "query", "schema": { "type": "string", "minLength": 3, "maxLength": 200 },
                "description": "Only runs whose output contains this text (case-insensitive, literal); each item then has a snippet: before, matched, after, cutBefore" }),
    ];
    if across_jobs {
        params.push(json!({ "name": "job", "in": "query", "schema": { "type": "string" }, "description": "A job's exact name (deleted jobs' runs included)" }));
        params.push(json!({ "name": "namespace", "in": "query", "schema": { "type": "string" } }));
    }
    Value::Array(params)
}

fn schema_ref(name: &str) -> Value {
    json!({ "$ref": format!("#/components/schemas/{name}") })
}

fn json_body(schema: Value) -> Value {
    json!({ "required": true, "content": { "application/json": { "schema": schema } } })
}

fn json_ok(code: &str, description: &str, schema: Value) -> Value {
    json!({ code: { "description": description, "content": { "application/json": { "schema": schema } } } })
}

/// The document served at `/api/v1/openapi.json`.
pub fn document() -> Value {
    let spec_schema = serde_json::to_value(schemars::schema_for!(jtp_crds::ScheduledJobSpec))
        .unwrap_or_else(|_| json!({ "type": "object" }));
    let live_schema = json!({
                        "type": "object",
                        "required": ["status", "live", "offset", "segments", "skipped"],
                        "properties": {
                            "status": { "type": "string", "enum": ["RUNNING", "SUCCESS", "FAILURE", "ERROR"] },
                            "live": { "type": "boolean" },
                            "offset": { "type": "integer", "description": "Pass as offset next time: every byte written so far" },
                            "segments": { "type": "array", "items": { "type": "object", "required": ["class", "text"], "properties": {
                                "class": { "type": "string", "description": "CSS classes of the ANSI style (ansi-fg-1 ansi-bold), empty for plain" },
                                "text": { "type": "string", "description": "Text, not escaped, escape sequences removed" } } } },
                            "skipped": { "type": "integer", "description": "Bytes the cap dropped before this client read them" }
                        }
    });
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Job Trigger Portal API",
            "version": "v1",
            "description": "Jobs, runs and Run Now. Authenticate with `Authorization: Bearer <token>` \
                (Kubernetes mode: a Kubernetes token, checked with TokenReview; rights are the caller's own \
                RBAC rights on scheduledjobs.jobtrigger.io). Times are UTC (RFC3339) with the job's local \
                rendering beside them."
        },
        "servers": [{ "url": "/api/v1" }],
        "security": [{ "bearer": [] }, {}],
        "paths": {
            "/jobs": {
                "get": {
                    "operationId": "listJobs",
                    "summary": "List jobs, ordered by next run (NULLs last), then name",
                    "parameters": [
                        { "name": "name", "in": "query", "schema": { "type": "string" }, "description": "Case-insensitive part of the name" },
                        { "name": "status", "in": "query", "schema": { "type": "string", "enum": ["", "SUCCESS", "FAILURE", "ERROR"] }, "description": "The last run's status" },
                        { "name": "state", "in": "query", "schema": { "type": "string", "enum": ["", "active", "suspended"] }, "description": "Active (not suspended) or suspended jobs only" },
                        { "name": "namespace", "in": "query", "schema": { "type": "string" } },
                        { "name": "page", "in": "query", "schema": { "type": "integer", "minimum": 1 } },
                        { "name": "per_page", "in": "query", "schema": { "type": "integer", "minimum": 1, "maximum": 500 } },
                        { "name": "sort", "in": "query", "schema": { "type": "string", "enum": ["", "next", "name", "last", "status"] },
                          "description": "Sort by next run (default), name, last run or last status (ERROR, FAILURE, SUCCESS); jobs without a value last; ties by name, then id" },
                        { "name": "dir", "in": "query", "schema": { "type": "string", "enum": ["", "asc", "desc"] } }
                    ],
                    "responses": with_errors(json_ok("200", "A page of jobs", schema_ref("JobList")), &["401", "403", "422", "500"])
                },
                "post": {
                    "operationId": "createJob",
                    "summary": "Create a job (Kubernetes: a ScheduledJob resource; standalone: a row)",
                    "requestBody": json_body(schema_ref("CreateJob")),
                    "responses": with_errors(json_ok("201", "Created", schema_ref("WrittenJob")), &["401", "403", "409", "415", "422", "500"])
                }
            },
            "/jobs/{namespace}/{name}": {
                "parameters": path_params(),
                "get": {
                    "operationId": "getJob",
                    "summary": "One job",
                    "responses": with_errors(json_ok("200", "The job", schema_ref("Job")), &["401", "403", "404", "500"])
                },
                "put": {
                    "operationId": "updateJob",
                    "summary": "Replace a job's spec; its next run is recomputed from now when its schedule, zone or suspend changed",
                    "requestBody": json_body(json!({ "type": "object", "required": ["spec"], "properties": { "spec": schema_ref("ScheduledJobSpec") } })),
                    "responses": with_errors(json_ok("200", "Saved", schema_ref("WrittenJob")), &["401", "403", "404", "409", "415", "422", "500"])
                },
                "patch": {
                    "operationId": "pauseOrResumeJob",
                    "summary": "Pause (suspend: true) or resume (suspend: false) a job; resuming plans its next run from now",
                    "requestBody": json_body(json!({ "type": "object", "required": ["suspend"], "additionalProperties": false, "properties": { "suspend": { "type": "boolean" } } })),
                    "responses": with_errors(json_ok("200", "Saved", json!({ "type": "object", "properties": {
                        "namespace": { "type": "string" }, "name": { "type": "string" }, "suspend": { "type": "boolean" }
                    } })), &["401", "403", "404", "415", "422", "500"])
                },
                "delete": {
                    "operationId": "deleteJob",
                    "summary": "Delete a job; its runs stay recorded",
                    "responses": with_errors(json!({ "204": { "description": "Deleted" } }), &["401", "403", "404", "500"])
                }
            },
            "/jobs/{namespace}/{name}/run": {
                "parameters": path_params(),
                "post": {
                    "operationId": "runNow",
                    "summary": "Run Now: one run as soon as possible (needs the trigger right)",
                    "description": "The body is optional. For a job with spec.parameters, give values by name; a parameter left out takes its default. Each value is checked (the job declares the name, allowed values, pattern; a parameter without default needs a value): every problem is a 422 field error at parameters.NAME.",
                    "requestBody": { "required": false, "content": { "application/json": { "schema": {
                        "type": "object", "additionalProperties": false,
                        "properties": { "parameters": { "type": "object", "additionalProperties": { "type": "string" },
                            "description": "Values of the job's parameters by name, each a string; passed to the script as environment variables" } }
                    } } } },
                    "responses": with_errors(json_ok("202", "Requested", json!({
                        "type": "object",
                        "properties": { "namespace": { "type": "string" }, "name": { "type": "string" }, "requestedAt": { "type": "string", "format": "date-time" },
                            "parameters": { "type": "object", "additionalProperties": { "type": "string" }, "description": "The values the run gets: those given, and the defaults of the rest" } }
                    })), &["401", "403", "404", "415", "422", "500"])
                }
            },
            "/jobs/{namespace}/{name}/runs": {
                "parameters": path_params(),
                "get": {
                    "operationId": "listRuns",
                    "summary": "A job's runs, newest first, paged by cursor",
                    "parameters": run_list_params(false),
                    "responses": with_errors(json_ok("200", "Runs", json!({ "type": "object", "properties": {
                        "items": { "type": "array", "items": schema_ref("Run") },
                        "olderCursor": { "type": ["string", "null"] }, "newerCursor": { "type": ["string", "null"] }
                    } })), &["401", "403", "404", "422", "500"])
                }
            },
            "/runs": {
                "get": {
                    "operationId": "listAllRuns",
                    "summary": "Runs of every job the caller may read (deleted jobs' included), newest first, paged by cursor",
                    "parameters": run_list_params(true),
                    "responses": with_errors(json_ok("200", "Runs", json!({ "type": "object", "properties": {
                        "items": { "type": "array", "items": schema_ref("RunOfJob") },
                        "olderCursor": { "type": ["string", "null"], "description": "Pass as before for the next page; null on the last" },
                        "newerCursor": { "type": ["string", "null"], "description": "Pass as after for the previous page; null on the first" },
                        "searchedPart": { "type": "boolean", "description": "A search for a text most outputs contain read its limit of runs (2,000 per page on SQLite) before it filled the page: items are the hits among the runs read, and the cursor in the direction read searches on" }
                    } })), &["401", "403", "422", "500"])
                }
            },
            "/runs/{id}": {
                "parameters": id_param(),
                "get": {
                    "operationId": "getRun",
                    "summary": "One run with its output",
                    "responses": with_errors(json_ok("200", "The run", schema_ref("RunWithOutput")), &["401", "403", "404", "500"])
                }
            },
            "/runs/{id}/output": {
                "parameters": id_param(),
                "get": {
                    "operationId": "getRunOutput",
                    "summary": "A run's stored output (stdout and stderr, capped) as plain text",
                    "responses": with_errors(json!({ "200": { "description": "The output", "content": { "text/plain": { "schema": { "type": "string" } } } } }), &["401", "403", "404", "500"])
                }
            },
            "/runs/{id}/live": {
                "parameters": id_param(),
                "get": {
                    "operationId": "getRunLiveOutput",
                    "summary": "What a run in flight has written after byte `offset` (poll it about once a second, passing back `offset`)",
                    "description": "Standalone: the output as the runner reads it from the run's pipe, within the output cap (its head and tail; a client that fell behind the tail gets one line saying how many bytes were skipped). `live` is false once the run has ended (read `/runs/{id}/output`) or while it runs where this portal cannot follow it.",
                    "parameters": [{ "name": "offset", "in": "query", "required": false, "schema": { "type": "integer", "minimum": 0 }, "description": "Bytes already read (the last answer's `offset`); 0 or absent: from the start" }],
                    "responses": with_errors(json!({ "200": { "description": "The new output", "content": { "application/json": { "schema": schema_ref("LiveOutput") } } } }), &["401", "403", "404", "422", "500"])
                }
            },
            "/runs/{id}/stop": {
                "parameters": id_param(),
                "post": {
                    "operationId": "stopRun",
                    "summary": "Stop a run in flight; it is recorded as FAILURE with the note \"stopped by <you>\" and not retried",
                    "description": "Needs the right to patch the run's ScheduledJob (cluster: a SubjectAccessReview of `patch` on `scheduledjobs.jobtrigger.io`; a cookie session also needs `X-CSRF-Token`). Standalone: the runner ends the run's whole process tree (SIGTERM, SIGKILL 3 s later). Cluster: the portal sets the annotation `stop.jobtrigger.io/<Job name>` on the ScheduledJob, as you; the operator records the run and deletes its Job with its pods. 202 once asked: the run ends within seconds (poll `/runs/{id}`). 409 when the run has already ended, or is not stoppable from here yet (e.g. its Job not created yet).",
                    "responses": with_errors(json!({ "202": { "description": "The stop is asked for", "content": { "application/json": { "schema": {
                        "type": "object",
                        "required": ["id", "namespace", "job", "stopRequestedBy"],
                        "properties": {
                            "id": { "type": "integer" }, "namespace": { "type": "string" }, "job": { "type": "string" },
                            "stopRequestedBy": { "type": "string", "description": "The name recorded in the note" }
                        }
                    } } } } }), &["401", "403", "404", "409", "500"])
                }
            },
            "/preview": {
                "post": {
                    "operationId": "previewRuns",
                    "summary": "The next runs of a spec, as `jtp preview` computes them, DST changes marked; reads and writes nothing",
                    "requestBody": json_body(json!({
                        "type": "object", "required": ["name", "spec"],
                        "properties": {
                            "name": { "type": "string", "description": "Places an interval's phase" },
                            "namespace": { "type": "string", "default": "default" },
                            "spec": spec_schema.clone(),
                            "count": { "type": "integer", "minimum": 1, "maximum": 100, "default": 5 },
                            "after": { "type": "string", "format": "date-time", "description": "From this instant (default now)" }
                        }
                    })),
                    "responses": with_errors(json_ok("200", "The next runs", json!({
                        "type": "object", "required": ["schedule", "timeZone", "runs"],
                        "properties": {
                            "schedule": { "type": "string" },
                            "timeZone": { "type": "string" },
                            "runs": { "type": "array", "items": { "type": "object", "required": ["at", "local", "skipped"], "properties": {
                                "at": { "type": "string", "format": "date-time" },
                                "local": { "type": "string", "description": "In the job's zone, with its offset" },
                                "skipped": { "type": "boolean", "description": "A wall time the DST policy does not run" },
                                "note": { "type": ["string", "null"], "description": "What a DST change did, or why it is not run" } } } }
                        }
                    })), &["401", "415", "422", "500"])
                }
            },
            "/openapi.json": {
                "get": {
                    "operationId": "openapi",
                    "summary": "This document",
                    "security": [],
                    "responses": { "200": { "description": "OpenAPI 3.1", "content": { "application/json": { "schema": { "type": "object" } } } } }
                }
            }
        },
        "components": {
            "securitySchemes": { "bearer": { "type": "http", "scheme": "bearer" } },
            "schemas": {
                "ScheduledJobSpec": spec_schema,
                "LiveOutput": live_schema,
                "ShownTime": {
                    "type": "object",
                    "properties": {
                        "local": { "type": "string", "example": "2026-11-30 09:00 HKT" },
                        "utc": { "type": "string", "example": "2026-11-30 01:00:00 UTC" },
                        "rfc3339": { "type": "string", "format": "date-time" },
                        "relative": { "type": "string", "example": "in 3 h 05 min", "description": "As of the response" }
                    }
                },
                "Health": {
                    "type": "object",
                    "description": "The job's last 20 runs at a glance",
                    "properties": {
                        "finished": { "type": "integer" }, "succeeded": { "type": "integer" },
                        "successRate": { "type": ["integer", "null"], "description": "Percent of the finished ones" },
                        "lastSuccess": { "oneOf": [schema_ref("ShownTime"), { "type": "null" }] },
                        "failingStreak": { "type": "integer", "description": "Finished runs in a row that did not succeed" }
                    }
                },
                "Job": {
                    "type": "object",
                    "properties": {
                        "namespace": { "type": "string" }, "name": { "type": "string" },
                        "description": { "type": ["string", "null"] },
                        "schedule": { "type": "string", "description": "The schedule in words" },
                        "timeZone": { "type": "string" },
                        "nextRun": { "oneOf": [schema_ref("ShownTime"), { "type": "null" }] },
                        "nextRunDst": { "type": ["string", "null"], "description": "What a DST change does to the next run, e.g. \"second pass of the repeated 01:30\"" },
                        "lastRun": { "oneOf": [schema_ref("ShownTime"), { "type": "null" }] },
                        "lastStatus": { "type": ["string", "null"], "enum": ["SUCCESS", "FAILURE", "ERROR", "RUNNING", null] },
                        "active": { "type": "boolean" },
                        "runNowRequested": { "oneOf": [schema_ref("ShownTime"), { "type": "null" }] },
                        "sourceFile": { "type": ["string", "null"], "description": "Standalone: the jobs-folder file the job comes from" },
                        "consecutiveFailures": { "type": "integer" },
                        "pausedBecause": { "type": ["string", "null"], "description": "Why the job was paused automatically (pauseAfterConsecutiveFailures), while it stays suspended" },
                        "retryAt": { "oneOf": [schema_ref("ShownTime"), { "type": "null" }], "description": "Standalone: when the next attempt of a failed run starts" },
                        "health": { "oneOf": [schema_ref("Health"), { "type": "null" }] },
                        "retention": schema_ref("Retention"),
                        "overdue": { "oneOf": [schema_ref("Overdue"), { "type": "null" }], "description": "Set while the job has not succeeded within spec.expectSuccessWithin (the dead-man's switch)" },
                        "spec": schema_ref("ScheduledJobSpec")
                    }
                },
                "Overdue": {
                    "type": "object",
                    "required": ["deadline", "message"],
                    "properties": {
                        "deadline": schema_ref("ShownTime"),
                        "message": { "type": "string", "example": "no success within 1d2h: the last one finished at 2026-03-02T01:01:00Z, so one was due by 2026-03-03T03:01:00Z" }
                    }
                },
                "Retention": {
                    "type": "object",
                    "description": "Which runs are kept: a finished run goes when it is not among its job's newest keepLast and (with maxAge) started longer ago than maxAge; neither set keeps every run",
                    "required": ["source", "summary"],
                    "properties": {
                        "maxAge": { "type": "string", "example": "90d", "description": "units d, h, m, s, largest first" },
                        "keepLast": { "type": "integer", "minimum": 1 },
                        "source": { "type": "string", "enum": ["job", "global"], "description": "job: its spec.retention; global: the operator's or runner's --retention-* flags" },
                        "summary": { "type": "string", "example": "runs of the last 90 days, and at least the last 20 runs" }
                    }
                },
                "JobList": {
                    "type": "object",
                    "properties": {
                        "items": { "type": "array", "items": schema_ref("Job") },
                        "total": { "type": "integer" }, "page": { "type": "integer" }, "perPage": { "type": "integer" },
                        "pages": { "type": "integer", "description": "At least 1; a page past the last is empty" }
                    }
                },
                "CreateJob": {
                    "type": "object",
                    "required": ["name", "spec"],
                    "properties": {
                        "name": { "type": "string" },
                        "namespace": { "type": "string", "description": "Required in Kubernetes mode" },
                        "spec": schema_ref("ScheduledJobSpec")
                    }
                },
                "WrittenJob": {
                    "type": "object",
                    "properties": { "namespace": { "type": "string" }, "name": { "type": "string" }, "spec": schema_ref("ScheduledJobSpec") }
                },
                "Run": {
                    "type": "object",
                    "properties": {
                        "id": { "type": "integer" },
                        "status": { "type": "string", "enum": ["RUNNING", "SUCCESS", "FAILURE", "ERROR"] },
                        "started": schema_ref("ShownTime"),
                        "scheduledFor": schema_ref("ShownTime"),
                        "finished": { "oneOf": [schema_ref("ShownTime"), { "type": "null" }] },
                        "duration": { "type": "string" },
                        "trigger": { "type": "string", "enum": ["schedule", "manual"] },
                        "requester": { "type": ["string", "null"], "description": "Who asked for a manual run: the portal's user, the run-now-requester annotation of a kubectl user, or \"local\" on an open standalone portal; null for scheduled runs and when nobody said" },
                        "parameters": { "type": "object", "additionalProperties": { "type": "string" }, "description": "The values of the job's parameters (spec.parameters) the run got, by name: a Run Now's, or the defaults for a scheduled run; {} for a job without parameters" },
                        "attempt": { "type": "integer", "minimum": 1, "description": "1 for a slot's first run, 2 for its first retry (spec.retries), and so on" },
                        "exitCode": { "type": ["integer", "null"] },
                        "outputBytes": { "type": "integer" },
                        "outputTruncatedBytes": { "type": "integer", "description": "Bytes cut from the middle by the cap (0: whole)" },
                        "kubernetesJob": { "type": ["string", "null"] }
                    }
                },
                "RunOfJob": {
                    "allOf": [schema_ref("Run"), {
                        "type": "object",
                        "properties": {
                            "namespace": { "type": "string" }, "job": { "type": "string" }, "timeZone": { "type": "string" },
                            "jobDeleted": { "type": "boolean" }
                        }
                    }]
                },
                "RunWithOutput": {
                    "allOf": [schema_ref("RunOfJob"), {
                        "type": "object",
                        "properties": { "output": { "type": "string" } }
                    }]
                },
                "Error": {
                    "type": "object",
                    "required": ["error"],
                    "properties": { "error": { "type": "string" }, "kind": { "type": "string" } }
                },
                "ValidationErrors": {
                    "type": "object",
                    "required": ["errors"],
                    "properties": {
                        "errors": {
                            "type": "array",
                            "items": {
                                "type": "object",
                                "properties": {
                                    "field": { "type": "string", "example": "spec.schedule.daily.at" },
                                    "message": { "type": "string" }
                                }
                            }
                        }
                    }
                }
            }
        }
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    #[test]
    fn every_route_is_documented_and_nothing_else() {
        let doc = document();
        let mut documented = BTreeSet::new();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for method in ["get", "post", "put", "delete", "patch"] {
                if item.get(method).is_some() {
                    documented.insert((method.to_owned(), path.clone()));
                }
            }
        }
        let routes: BTreeSet<(String, String)> = crate::api::ROUTES
            .iter()
            .map(|(m, p)| ((*m).to_owned(), (*p).to_owned()))
            .collect();
        assert_eq!(documented, routes);
    }

    #[test]
    fn every_reference_resolves() {
        let doc = document();
        let text = doc.to_string();
        let schemas = doc["components"]["schemas"].as_object().unwrap();
        for part in text.split("#/components/schemas/").skip(1) {
            let name: String = part.chars().take_while(|c| c.is_ascii_alphanumeric()).collect();
            assert!(schemas.contains_key(&name), "missing schema {name}");
        }
    }
}
