//! In-process tests of the router (no socket): the OpenAPI document matches the routes,
//! roles are enforced on every route group, errors are JSON. The tests over a real server
//! on 127.0.0.1 with replayed captures are in tests/api*.rs.

use super::*;
use crate::store::{self, testdata};
use axum::body::Body;
use axum::http::{Request, StatusCode};
use callwarden_core::track::{CallEvent, Direction};
use callwarden_core::Output;
use tower::ServiceExt;

const CONFIG: &str = r#"
[site]
timezone = "Asia/Shanghai"
extensions = ["8000-8999"]

[[api.token]]
name = "sup"
token = "sup-token"
role = "supervisor"

[[api.token]]
name = "aud"
token = "aud-token"
role = "auditor"

[[api.token]]
name = "adm"
token = "adm-token"
role = "admin"
"#;

struct Fx {
    _dir: tempfile::TempDir,
    state: AppState,
}

fn fixture() -> Fx {
    let dir = tempfile::tempdir().unwrap();
    let cfg_path = dir.path().join("callwarden.toml");
    std::fs::write(&cfg_path, CONFIG).unwrap();
    let db = dir.path().join("calls.db");
    let (mut sink, writer) = store::open(&db, "Asia/Shanghai").unwrap();
    let c = testdata::call("c-1", testdata::T0, "8001", "13800138000", Direction::Outbound);
    sink.take(&Output::Call(CallEvent::Ended(Box::new(c)))).unwrap();
    writer.close().unwrap();
    std::fs::create_dir_all(dir.path().join("recordings")).unwrap();
    let settings = Settings::load(Some(&cfg_path), Some(&db)).unwrap();
    let state = AppState::new(db, &settings).unwrap();
    Fx { _dir: dir, state }
}

async fn get(state: &AppState, path: &str, token: Option<&str>) -> (StatusCode, String) {
    let mut req = Request::get(path);
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    let res = router(state.clone()).oneshot(req.body(Body::empty()).unwrap()).await.unwrap();
    let status = res.status();
    let body = axum::body::to_bytes(res.into_body(), 1 << 20).await.unwrap();
    (status, String::from_utf8_lossy(&body).into_owned())
}

/// Paths routed in `router` (from this module's source), with `{id}` as written.
fn routed_paths() -> Vec<String> {
    let src = include_str!("mod.rs");
    let mut out: Vec<String> = src
        .split(".route(\"")
        .skip(1)
        .filter_map(|s| s.split('"').next())
        .map(str::to_string)
        .filter(|p| !matches!(p.as_str(), "/" | "/app.js" | "/app.css"))
        .collect();
    out.sort();
    out
}

#[tokio::test]
async fn openapi_document_and_router_agree() {
    let mut documented: Vec<String> = openapi::spec()["paths"].as_object().unwrap().keys().cloned().collect::<Vec<_>>();
    documented.sort();
    assert_eq!(documented, routed_paths());
    let fx = fixture();
    for p in &documented {
        let path = p.replace("{id}", "1");
        if p == "/api/events" {
            // An endless stream: check the head only.
            let req = Request::get(&path).header("authorization", "Bearer adm-token").body(Body::empty()).unwrap();
            let res = router(fx.state.clone()).oneshot(req).await.unwrap();
            assert_eq!(res.status(), StatusCode::OK);
            assert_eq!(res.headers()["content-type"], "text/event-stream");
            continue;
        }
        let (status, body) = get(&fx.state, &path, Some("adm-token")).await;
        assert!(!body.contains("no such path"), "{p} is documented but not routed: {status} {body}");
    }
    let (status, body) = get(&fx.state, "/api/nope", Some("adm-token")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(body.contains("no such path"), "{body}");
}

#[tokio::test]
async fn roles_nest_and_errors_are_json() {
    let fx = fixture();
    let cases = [
        ("/api/calls", [StatusCode::UNAUTHORIZED, StatusCode::OK, StatusCode::OK, StatusCode::OK]),
        ("/api/recordings", [StatusCode::UNAUTHORIZED, StatusCode::FORBIDDEN, StatusCode::OK, StatusCode::OK]),
        ("/api/playback-log", [StatusCode::UNAUTHORIZED, StatusCode::FORBIDDEN, StatusCode::OK, StatusCode::OK]),
        ("/api/approvals", [StatusCode::UNAUTHORIZED, StatusCode::FORBIDDEN, StatusCode::FORBIDDEN, StatusCode::OK]),
    ];
    for (path, want) in cases {
        for (token, want) in [None, Some("sup-token"), Some("aud-token"), Some("adm-token")].into_iter().zip(want) {
            let (status, body) = get(&fx.state, path, token).await;
            assert_eq!(status, want, "{path} with {token:?}: {body}");
            if !status.is_success() {
                let v: serde_json::Value = serde_json::from_str(&body).unwrap();
                assert!(v["error"].is_string(), "{body}");
            }
        }
    }
    let (status, _) = get(&fx.state, "/api/calls", Some("sup-tokenx")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, body) = get(&fx.state, "/api/calls?class=nope", Some("sup-token")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body.contains("class:"), "{body}");
    // Open routes. `whoami` says "nobody" rather than 401 (the page's first request).
    let (status, body) = get(&fx.state, "/api/whoami", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(serde_json::from_str::<serde_json::Value>(&body).unwrap()["name"], serde_json::Value::Null);
    let (_, body) = get(&fx.state, "/api/whoami", Some("aud-token")).await;
    assert!(body.contains("\"name\":\"aud\"") && body.contains("\"role\":\"auditor\""), "{body}");
    assert!(body.contains("\"login\":true"), "tokens configured: the page offers Log out: {body}");
    assert_eq!(get(&fx.state, "/healthz", None).await.0, StatusCode::OK);
    assert_eq!(get(&fx.state, "/", None).await.0, StatusCode::OK);
    assert_eq!(get(&fx.state, "/api/openapi.json", None).await.0, StatusCode::OK);
}

#[tokio::test]
async fn metrics_need_loopback_or_a_token() {
    let fx = fixture();
    // No ConnectInfo (the router mounted without `serve`): the peer is unknown.
    assert_eq!(get(&fx.state, "/metrics", None).await.0, StatusCode::UNAUTHORIZED);
    // Hooks are set on a state not yet shared (as the daemon builds it).
    let Fx { _dir, state } = fixture();
    let state = state.with_metrics(Arc::new(|| "callwarden_calls_active 3\n".to_string()));
    let (status, body) = get(&state, "/metrics", Some("sup-token")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.starts_with("callwarden_calls_active 3\n"), "{body}");
    assert!(body.contains("callwarden_api_requests_total{code=\"2xx\"}"), "{body}");
}

#[tokio::test]
async fn cookie_login_and_csrf_header() {
    let fx = fixture();
    let app = router(fx.state.clone());
    let res = app
        .clone()
        .oneshot(
            Request::post("/api/login")
                .header("content-type", "application/json")
                .body(Body::from(r#"{"token":"adm-token"}"#))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let cookie = res.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"), "{cookie}");
    let pair = cookie.split(';').next().unwrap().to_string();
    let res = app
        .clone()
        .oneshot(Request::get("/api/whoami").header("cookie", &pair).body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let body =
        r#"{"extension":"8020","class":"long-distance","from":"2026-11-01","until":"2026-11-30","approver":"boss"}"#;
    let post = |csrf: bool| {
        let mut r = Request::post("/api/approvals").header("cookie", &pair).header("content-type", "application/json");
        if csrf {
            r = r.header("x-requested-with", "callwarden");
        }
        r.body(Body::from(body)).unwrap()
    };
    assert_eq!(app.clone().oneshot(post(false)).await.unwrap().status(), StatusCode::FORBIDDEN);
    assert_eq!(app.clone().oneshot(post(true)).await.unwrap().status(), StatusCode::CREATED);
    let res = app
        .oneshot(
            Request::post("/api/login")
                .header("content-type", "application/json")
                .body(Body::from(r#"{"token":"wrong"}"#))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
}

#[test]
fn duplicate_token_names_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("c.toml");
    std::fs::write(
        &p,
        "[[api.token]]\nname = \"a\"\ntoken = \"x\"\nrole = \"admin\"\n[[api.token]]\nname = \"a\"\ntoken = \"y\"\nrole = \"admin\"\n",
    )
    .unwrap();
    // The config loader refuses it already (the playback log names tokens); `AppState::new`
    // checks again for configs built in code.
    let e = Settings::load(Some(&p), None).err().unwrap();
    assert!(format!("{e:#}").contains("duplicate token name"), "{e:#}");
    let mut settings = Settings::load(None, None).unwrap();
    let t = Token { name: "a".into(), token: "x".into(), role: callwarden_core::config::Role::Admin };
    settings.config.api.tokens = vec![t.clone(), Token { token: "y".into(), ..t }];
    let e = AppState::new(dir.path().join("db"), &settings).err().unwrap();
    assert!(e.to_string().contains("used twice"), "{e}");
}

#[tokio::test]
async fn stats_answers_survive_commits_that_do_not_touch_their_calls() {
    let fx = fixture();
    let calls_of = |body: &str| -> u64 {
        let v: serde_json::Value = serde_json::from_str(body).unwrap();
        v["rows"].as_array().unwrap().iter().map(|r| r["calls"].as_u64().unwrap()).sum()
    };
    let counts = || {
        let c = fx.state.stats_cache().lock().unwrap();
        (c.hits, c.misses)
    };
    // The fixture's call is in March 2026 (Asia/Shanghai).
    const MARCH: &str = "/api/stats?by=day&month=2026-03";
    const ALL: &str = "/api/stats?by=day";
    let (status, first) = get(&fx.state, MARCH, Some("sup-token")).await;
    assert_eq!(status, StatusCode::OK, "{first}");
    assert_eq!(calls_of(&first), 1);
    let (_, all) = get(&fx.state, ALL, Some("sup-token")).await;
    assert_eq!(calls_of(&all), 1);
    assert_eq!(counts(), (0, 2));
    let (_, again) = get(&fx.state, MARCH, Some("sup-token")).await;
    assert_eq!(again, first);
    assert_eq!(counts(), (1, 2));
    // Another connection commits calls (as the daemon's writer would).
    let db = fx.state.db_path().to_path_buf();
    let commit = |id: &str, start: i64| {
        let (mut sink, writer) = store::open(&db, "Asia/Shanghai").unwrap();
        let c = testdata::call(id, start, "8002", "13800138001", Direction::Outbound);
        sink.take(&Output::Call(CallEvent::Ended(Box::new(c)))).unwrap();
        writer.close().unwrap();
    };
    // A call in April: March's answer is still right and still served from the cache;
    // the question over every day counts the new call.
    commit("c-april", testdata::T0 + 40 * 86_400_000_000);
    let (_, march) = get(&fx.state, MARCH, Some("sup-token")).await;
    assert_eq!(march, first);
    assert_eq!(counts(), (2, 2), "March's answer survived the commit");
    let (_, all) = get(&fx.state, ALL, Some("sup-token")).await;
    assert_eq!(calls_of(&all), 2, "{all}");
    assert_eq!(counts(), (2, 3));
    // A call in March: its answer is computed again and counts it.
    commit("c-march", testdata::T0 + 60_000_000);
    let (_, march) = get(&fx.state, MARCH, Some("sup-token")).await;
    assert_eq!(calls_of(&march), 2, "{march}");
    assert_eq!(counts(), (2, 4));
    // A different question is not answered from another's entry.
    let (_, ext) = get(&fx.state, "/api/stats?by=ext&ext=8002", Some("sup-token")).await;
    assert_eq!(calls_of(&ext), 2, "{ext}");
}

/// What the page and scripts read of the recordings and the playback log: the field
/// names, null for what is not known, the cursors, and the group filter (the recording's
/// or its call's, as the CLI's).
#[tokio::test]
async fn recordings_and_playback_log_json() {
    use crate::store::recordings::{self as rows, NewRecording, PlaybackAction, PlaybackEntry, Via};
    let fx = fixture();
    let conn = rows::open_rw(fx.state.db_path()).unwrap();
    let t0 = testdata::T0;
    // r1 is the recording of c-1 (filed under "dispatch"), asked for by "callback".
    let new = |id: &str, call_id: &str, at: i64, group: Option<&str>| NewRecording {
        id: id.into(),
        call_id: call_id.into(),
        call_started_us: at,
        caller: "8001".into(),
        callee: "13800138000".into(),
        dialled: "13800138000".into(),
        group: group.map(str::to_string),
        path: format!("2026/03/02/{id}.wav"),
        retention_days: 30,
        day: "2026-03-02".into(),
        month: "2026-03".into(),
    };
    rows::begin(&conn, &new("r1", "c-1", t0, Some("callback"))).unwrap();
    let fin = rows::Finished {
        id: "r1".into(),
        sample_rate: Some(8000),
        frames: 16_000,
        undecodable: vec![18, 98],
        ..rows::Finished::default()
    };
    rows::finish(&conn, &fin).unwrap();
    rows::begin(&conn, &new("r2", "c-9", t0 + 1_000_000, None)).unwrap();
    for i in 0..3 {
        let e = PlaybackEntry {
            at: callwarden_core::Ts(t0 + i),
            who: "aud".into(),
            recording_id: "r1".into(),
            action: PlaybackAction::Stream,
            via: Via::Api,
            detail: "full".into(),
        };
        rows::log_playback(&conn, &e).unwrap();
    }
    let json = |path: &'static str| {
        let state = fx.state.clone();
        async move {
            let (status, body) = get(&state, path, Some("aud-token")).await;
            assert_eq!(status, StatusCode::OK, "{path}: {body}");
            serde_json::from_str::<serde_json::Value>(&body).unwrap()
        }
    };
    let keys = |v: &serde_json::Value| v.as_object().unwrap().keys().cloned().collect::<Vec<_>>().join(",");

    let page = json("/api/recordings?limit=1").await;
    assert_eq!(page["next"], format!("{}:r2", t0 + 1_000_000), "newest first, cursor start:id");
    let r2 = &page["recordings"][0];
    assert_eq!(
        keys(r2),
        "bytes,call_id,call_record,call_started_at,callee,caller,channels,dialled,dtmf,duration_ms,ended_at,group,id,\
         retention_days,sample_rate,sha256,site,status,superseded_by,undecodable"
    );
    assert_eq!((r2["id"].as_str(), r2["status"].as_str()), (Some("r2"), Some("recording")));
    assert!(r2["group"].is_null() && r2["sample_rate"].is_null() && r2["undecodable"].is_null());
    assert_eq!(r2["call_record"], false, "c-9 has no call row");
    let page = json("/api/recordings?limit=1&after=1772407801000000:r2").await;
    assert_eq!(page["recordings"][0]["undecodable"], "18,98");
    assert_eq!(page["recordings"][0]["call_record"], true, "r1 is c-1's");
    assert_eq!(page["recordings"][0]["duration_ms"], 2000);
    assert!(page["next"].is_null());
    assert_eq!(json("/api/recordings?group=callback").await["recordings"].as_array().unwrap().len(), 1);
    let dispatch = json("/api/recordings?group=dispatch").await;
    let ids: Vec<&str> = dispatch["recordings"].as_array().unwrap().iter().filter_map(|r| r["id"].as_str()).collect();
    assert_eq!(ids, ["r1"], "the call's group counts, as in `recordings list --group`: {dispatch}");
    assert_eq!(json("/api/recordings?status=nonsense").await, serde_json::json!({"recordings": [], "next": null}));

    let one = json("/api/recordings/r1").await;
    let log = one["playback_log"].as_array().unwrap();
    assert_eq!(log.iter().map(|l| l["id"].as_i64().unwrap()).collect::<Vec<_>>(), [3, 2, 1]);
    assert_eq!(keys(&log[0]), "action,at,detail,id,via,who");
    let page = json("/api/playback-log?limit=2").await;
    assert_eq!(page["next"], "2");
    assert_eq!(keys(&page["rows"][0]), "action,at,detail,id,recording_id,site,via,who");
    let page = json("/api/playback-log?limit=2&after=2").await;
    assert_eq!(page["rows"].as_array().unwrap().len(), 1);
    assert!(page["next"].is_null());
}
