//! `GET /api/openapi.json`: the OpenAPI 3.1 document of this API, written out here as
//! data (the API is small, and a derive-macro crate would tie every handler's types to its
//! attributes). A test checks that every path in it is routed and every API route is in
//! it, so the document cannot drift from the router unnoticed.

use axum::Json;
use serde_json::{json, Value};

fn param(name: &str, desc: &str) -> Value {
    json!({ "name": name, "in": "query", "required": false, "description": desc, "schema": { "type": "string" } })
}

fn path_id(desc: &str) -> Value {
    json!({ "name": "id", "in": "path", "required": true, "description": desc, "schema": { "type": "string" } })
}

fn filters() -> Vec<Value> {
    vec![
        param("from", "a date YYYY-MM-DD in the site's zone (inclusive) or an RFC 3339 instant"),
        param("to", "a date (inclusive) or an RFC 3339 instant (exclusive)"),
        param("month", "YYYY-MM: the whole month in the site's zone"),
        param("ext", "one of our extensions, caller or callee"),
        param("group", "a [[group]] name"),
        param(
            "class",
            "internal, emergency, premium, toll-free, hk-macau, taiwan, international, mobile, long-distance, local, sip-uri",
        ),
        param("rule", "a rule id (OUT-1) or violation kind (premium-rate)"),
        param("number", "dialled or normalised number contains this"),
        param("direction", "inbound, outbound, internal, transit"),
        param("site", "one site's rows ([site] name); over the central store, one of several"),
    ]
}

fn paging() -> Vec<Value> {
    vec![
        param("limit", "rows per page, 1..1000 (default 100)"),
        param("after", "the `next` cursor of the previous page"),
    ]
}

fn with(mut a: Vec<Value>, b: Vec<Value>) -> Vec<Value> {
    a.extend(b);
    a
}

fn ok(desc: &str) -> Value {
    json!({
        "200": { "description": desc },
        "400": { "description": "a bad parameter (the error names it)", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } } },
        "401": { "description": "no token or an unknown one" },
        "403": { "description": "the token's role does not allow this" }
    })
}

fn get(summary: &str, role: &str, params: Vec<Value>, desc: &str) -> Value {
    json!({ "get": { "summary": summary, "description": format!("Role: {role}."), "parameters": params, "responses": ok(desc) } })
}

/// The document.
pub fn spec() -> Value {
    let fmt = vec![
        param("format", "json (default) or csv"),
        param("bom", "1: a UTF-8 byte-order mark before the CSV (spreadsheet programs)"),
    ];
    let mut doc = json!({
        "openapi": "3.1.0",
        "info": {
            "title": "callwarden",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Call records, statistics, rule violations, recordings and live events of a PBX watched passively. Times are RFC 3339 with the site's offset, durations in milliseconds, money in fen. Access: bearer tokens of [[api.token]] with roles supervisor < auditor < admin. With no token configured (local mode) the server listens on loopback only and a loopback client whose Host is localhost/127.x/[::1] is the admin `local`; changes (POST) then need the header X-Requested-With."
        },
        "components": {
            "securitySchemes": {
                "bearer": { "type": "http", "scheme": "bearer", "description": "a token of [[api.token]]" },
                "cookie": { "type": "apiKey", "in": "cookie", "name": "callwarden_token", "description": "set by POST /api/login (the web page)" }
            },
            "schemas": {
                "Error": { "type": "object", "properties": { "error": { "type": "string" } }, "required": ["error"] }
            }
        },
        "security": [ { "bearer": [] }, { "cookie": [] } ]
    });
    let mut paths = serde_json::Map::new();
    paths.insert(
        "/healthz".to_string(),
        json!({ "get": { "summary": "liveness", "security": [], "responses": { "200": { "description": "ok" } } } }),
    );
    paths.insert("/metrics".to_string(), json!({ "get": { "summary": "Prometheus metrics", "description": "Open to loopback peers; otherwise any valid token.", "responses": { "200": { "description": "text exposition format" }, "401": { "description": "not loopback and no valid token" } } } }));
    paths.insert("/api/openapi.json".to_string(), json!({ "get": { "summary": "this document", "security": [], "responses": { "200": { "description": "OpenAPI 3.1" } } } }));
    paths.insert("/api/login".to_string(), json!({ "post": { "summary": "set the page's cookie from a token", "security": [],
                "requestBody": { "required": true, "content": { "application/json": { "schema": { "type": "object", "properties": { "token": { "type": "string" } }, "required": ["token"] } } } },
                "responses": { "200": { "description": "{name, role}; Set-Cookie" }, "401": { "description": "unknown token" } } } }));
    paths.insert("/api/logout".to_string(), json!({ "post": { "summary": "clear the page's cookie", "security": [], "responses": { "204": { "description": "cleared" } } } }));
    paths.insert(
        "/api/whoami".to_string(),
        json!({ "get": { "summary": "who the request is: the token's name and role, or nulls", "security": [],
                "description": "Open: {name: null, role: null} when the request has no valid token. login: whether tokens are configured (false: local mode, nothing to log out of).",
                "responses": { "200": { "description": "{name, role, login}" } } } }),
    );
    paths.insert(
        "/api/calls".to_string(),
        json!(get(
            "call records, newest first",
            "supervisor",
            with(with(with(filters(), paging()), vec![param("order", "desc (default) or asc")]), fmt.clone()),
            "{calls: [Call], next: cursor|null}; a Call is the call as the caller lived it, however many SIP \
             dialogs (a B2BUA PBX's legs) it took: answered_by, transferred_to, wait_ms, link (header | \
             session-id | hep | inferred | null), legs: [{call_id, from, to, started_at, answered_at, ended_at, \
             sip_status, role}]; CSV with format=csv (every matching call)"
        )),
    );
    paths.insert("/api/calls/{id}".to_string(), json!({ "get": { "summary": "one call by the Call-ID of its first leg: legs, ladder of all its legs, media, violations, recording", "description": "Role: supervisor.",
                "parameters": [ path_id("the SIP Call-ID (percent-encoded)"), param("site", "the call's site: a Call-ID is unique within a site; over the central store without it, the latest call with this Call-ID at any site") ], "responses": ok("the call; 404 when unknown") } }));
    paths.insert(
        "/api/stats".to_string(),
        json!(get(
            "figures by extension, group, day, month or site",
            "supervisor",
            with(with(vec![param("by", "ext (default), group, day, month, site")], filters()), fmt.clone()),
            "{by, rows: [StatsRow]}; CSV with format=csv"
        )),
    );
    paths.insert(
        "/api/sites".to_string(),
        json!(get(
            "the sites whose rows this API shows",
            "supervisor",
            vec![],
            "{central: bool, sites: [name]}: over the central store (serve --store) every site that forwarded to \
             it; over a site's own database its [site] name, or none"
        )),
    );
    paths.insert(
        "/api/violations".to_string(),
        json!(get(
            "violations, oldest first",
            "supervisor",
            with(filters(), paging()),
            "{violations: [Violation], next}"
        )),
    );
    paths.insert("/api/register".to_string(), json!(get("the long-distance register (OUT-3)", "supervisor",
                with(with(filters(), fmt), vec![param("lang", "zh: Chinese CSV column names")]),
                "{rows: [{user, callee, dialled, start, end, answered, talk_ms, class, cost_fen, group, call_id, matter, outcome}]}; CSV with format=csv")));
    paths.insert(
        "/api/callbacks".to_string(),
        json!(get(
            "the monthly call-back report (STA-3) per group, as `callwarden callbacks --json`",
            "supervisor",
            vec![
                param("month", "YYYY-MM (required)"),
                param("group", "one [[group]] (default: all)"),
                param("site", "one site's calls ([site] name); over the central store, one of several")
            ],
            "{month, groups: [{group, made, numbers, answered, answered_rate, effective, effective_min_talk_s}]}"
        )),
    );
    paths.insert("/api/policy/check".to_string(), json!(get("may this extension dial this number, which class, which rule", "supervisor",
                vec![param("from", "the calling extension (required)"), param("to", "the number as dialled (required)"), param("at", "an RFC 3339 instant (default: now)")],
                "{from, to, at, number, class, group, allowed, violations: [{rule, kind, fine_fen, detail}], stored_approvals}")));
    paths.insert(
        "/api/events".to_string(),
        json!(get(
            "live calls and violations (Server-Sent Events)",
            "supervisor",
            vec![],
            "text/event-stream: hello, call-started, call-ringing, call-answered, call-ended, violation, lagged"
        )),
    );
    paths.insert(
        "/api/live".to_string(),
        json!(get("calls in progress", "supervisor", vec![], "{live: bool, calls: [LiveCall]}")),
    );
    paths.insert(
        "/api/central".to_string(),
        json!(get(
            "forwarding to the central store: backlog and state",
            "supervisor",
            vec![],
            "{configured, site, central, up, refused, backlog_rows, oldest_age_s, shipped_rows, failures, last_error}"
        )),
    );
    paths.insert(
        "/api/recordings".to_string(),
        json!(get(
            "recordings, newest first",
            "auditor",
            with(
                vec![
                    param("from", "date or instant"),
                    param("to", "date or instant"),
                    param("month", "YYYY-MM"),
                    param("ext", "caller or callee"),
                    param("group", "group"),
                    param("number", "caller, callee or dialled contains"),
                    param("status", "complete, repaired, incomplete, recording, expired, missing, empty")
                ],
                paging()
            ),
            "{recordings: [Recording], next}"
        )),
    );
    paths.insert(
        "/api/recordings/sample".to_string(),
        json!(get(
            "the monthly spot check (REC-3)",
            "auditor",
            vec![
                param("month", "YYYY-MM (required)"),
                param("group", "group"),
                param("n", "how many (default 10)"),
                param("seed", "repeat an earlier draw")
            ],
            "{month, group, n, seed, total, recordings}; each drawn recording is logged as `sample`"
        )),
    );
    paths.insert(
        "/api/recordings/{id}".to_string(),
        json!({ "get": { "summary": "one recording with its playback log", "description": "Role: auditor.",
                "parameters": [ path_id("recording id") ], "responses": ok("the recording") } }),
    );
    paths.insert("/api/recordings/{id}/audio".to_string(), json!({ "get": { "summary": "the WAV (Range requests: 206)", "description": "Role: auditor. Logged in the playback log: one row per playback (range requests of one playback are folded).",
                "parameters": [ path_id("recording id"), { "name": "Range", "in": "header", "required": false, "schema": { "type": "string" } } ],
                "responses": { "200": { "description": "audio/wav" }, "206": { "description": "part of it" }, "409": { "description": "still being written" },
                               "410": { "description": "expired or missing" }, "416": { "description": "range not satisfiable" }, "503": { "description": "the playback log cannot be written: not served" } } } }));
    paths.insert("/api/recordings/{id}/peaks".to_string(), json!({ "get": { "summary": "waveform peaks", "description": "Role: auditor.",
                "parameters": [ path_id("recording id"), param("n", "buckets (default 800, at most 4000)") ], "responses": ok("{sample_rate, channels, frames, peaks: [[[min,max]]]}") } }));
    paths.insert(
        "/api/playback-log".to_string(),
        json!(get(
            "who played what, when",
            "auditor",
            with(
                vec![
                    param("recording", "recording id"),
                    param("who", "token name"),
                    param("from", "date or instant"),
                    param("to", "date or instant"),
                    param("site", "one site's log ([site] name); over the central store, one of several")
                ],
                paging()
            ),
            "{rows: [{site, id, at, who, recording_id, action, via, detail}], next}"
        )),
    );
    paths.insert("/api/approvals".to_string(), json!({
                "get": { "summary": "stored approvals (OUT-2)", "description": "Role: admin.", "responses": ok("[Approval]") },
                "post": { "summary": "register an approval", "description": "Role: admin. With the page's cookie, also X-Requested-With.",
                    "requestBody": { "required": true, "content": { "application/json": { "schema": { "type": "object",
                        "properties": { "extension": { "type": "string" }, "class": { "type": "string" }, "from": { "type": "string" }, "until": { "type": "string" }, "approver": { "type": "string" }, "note": { "type": "string" } },
                        "required": ["extension", "class", "from", "until", "approver"] } } } },
                    "responses": { "201": { "description": "{id}" }, "400": { "description": "invalid" }, "401": { "description": "no token" }, "403": { "description": "not admin" } } }
            }));
    paths.insert("/api/approvals/{id}/revoke".to_string(), json!({ "post": { "summary": "revoke an approval", "description": "Role: admin.",
                "parameters": [ { "name": "id", "in": "path", "required": true, "schema": { "type": "integer" } } ],
                "responses": { "204": { "description": "revoked" }, "404": { "description": "no such approval in force" } } } }));
    doc["paths"] = Value::Object(paths);
    doc
}

pub async fn document() -> Json<Value> {
    Json(spec())
}
