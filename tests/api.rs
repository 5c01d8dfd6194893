//! The HTTP API over a real server on 127.0.0.1 and a real database filled by replaying
//! captures with the built binary: filters and pagination (compared with what the CLI
//! prints for the same filters), one call with its ladder, stats, violations, CSV, the
//! register, the policy check, roles (401/403), and recordings: Range requests compared
//! byte for byte with the file and with what curl gets, the playback log (one row per
//! playback and per person), and refusals for ids whose stored path leaves the folder.

mod api_support;

use api_support::*;
use callwarden::store::{self, testdata};
use callwarden_core::track::{CallEvent, Direction};
use callwarden_core::Output;
use reqwest::StatusCode;
use serde_json::Value;
use std::collections::HashSet;
use std::path::Path;

/// gen-sipp-mixed-calls-udp (7 calls, one premium), gen-synth-100-calls (100 calls, two
/// premium), ring-7s (8001 → 8101), and two crafted outbound long-distance calls.
fn site() -> Site {
    let s = Site::new();
    s.replay(&[
        &Path::new(PUBLIC).join("gen-sipp-mixed-calls-udp.pcap"),
        &Path::new(PUBLIC).join("gen-synth-100-calls.pcap"),
        &Path::new(SIPP).join("ring-7s.pcap"),
    ]);
    // The long-distance register needs long-distance calls; no capture has one, so two are
    // written through the real store writer as the engine would emit them.
    let (mut sink, writer) = store::open(&s.db, "Asia/Shanghai").unwrap();
    for (i, class) in ["long-distance", "international"].iter().enumerate() {
        let mut c =
            testdata::call(&format!("ld-{i}"), testdata::T0 + i as i64 * 60_000_000, "1005", "", Direction::Outbound);
        c.callee = if i == 0 { "075512345678".into() } else { "0044201234567".into() };
        c.dialled = c.callee.clone();
        c.number = c.callee.clone();
        c.class = Some((*class).into());
        c.cost_fen = Some(90);
        sink.take(&Output::Call(CallEvent::Ended(Box::new(c)))).unwrap();
    }
    writer.close().unwrap();
    s
}

fn ids(v: &Value, key: &str) -> Vec<String> {
    v[key].as_array().unwrap().iter().map(|c| c["call_id"].as_str().unwrap().to_string()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_filters_pagination_detail_stats_violations() {
    let site = site();
    let srv = Server::start(site.state()).await;
    let c = client();

    // Every call, paged 7 at a time, newest first: the same set the CLI lists.
    let cli_all = site.cli_json(&["calls"]);
    let total = cli_all.as_array().unwrap().len();
    assert_eq!(total, 7 + 100 + 1 + 2, "the replayed and crafted calls");
    let mut seen = Vec::new();
    let mut url = srv.url("/api/calls?limit=7");
    let mut pages = 0;
    loop {
        let page = get_json(&c, &url, SUP).await;
        let got = ids(&page, "calls");
        assert!(got.len() <= 7);
        seen.extend(got);
        pages += 1;
        match page["next"].as_str() {
            Some(next) => url = srv.url(&format!("/api/calls?limit=7&after={}", urlencode(next))),
            None => break,
        }
    }
    assert_eq!(pages, total.div_ceil(7));
    assert_eq!(seen.len(), total, "no call twice, none missing");
    assert_eq!(seen.iter().collect::<HashSet<_>>().len(), total);
    let mut cli_ids: Vec<String> = ids(&serde_json::json!({ "c": cli_all }), "c");
    cli_ids.reverse();
    assert_eq!(seen, cli_ids, "newest first = the CLI's order reversed");
    // Oldest first with order=asc, and the rows are the CLI's rows, field for field.
    let asc = get_json(&c, &srv.url(&format!("/api/calls?order=asc&limit={total}")), SUP).await;
    assert_eq!(asc["calls"], cli_all);
    assert!(asc["next"].is_null());

    // FilterParams narrow exactly as the CLI's do.
    for (api_q, cli_args) in [
        ("ext=1003", vec!["calls", "--ext", "1003"]),
        ("class=premium", vec!["calls", "--class", "premium"]),
        ("number=16800", vec!["calls", "--number", "16800"]),
        ("rule=OUT-1", vec!["calls", "--rule", "OUT-1"]),
        ("from=2026-03-02&to=2026-03-02", vec!["calls", "--from", "2026-03-02", "--to", "2026-03-02"]),
    ] {
        let api = get_json(&c, &srv.url(&format!("/api/calls?order=asc&{api_q}")), SUP).await;
        let cli = site.cli_json(&cli_args);
        assert_eq!(api["calls"], cli, "{api_q}");
        assert!(!cli.as_array().unwrap().is_empty() && cli.as_array().unwrap().len() < total, "{api_q} narrows");
    }
    let premium = get_json(&c, &srv.url("/api/calls?class=premium"), SUP).await;
    assert!(ids(&premium, "calls").contains(&"3-8866@127.0.0.1".to_string()));
    let outbound = get_json(&c, &srv.url("/api/calls?direction=outbound&limit=1000"), SUP).await;
    assert!(outbound["calls"].as_array().unwrap().iter().all(|c| c["direction"] == "outbound"));

    // One call: its ladder and violations.
    let one = get_json(&c, &srv.url("/api/calls/3-8866%40127.0.0.1"), SUP).await;
    assert_eq!(one["caller"], "1003");
    assert_eq!(one["class"], "premium");
    let ladder = one["ladder"].as_array().unwrap();
    assert!(ladder.len() >= 5, "INVITE, 100, 180, 200, ACK, BYE, 200: {ladder:?}");
    assert_eq!(ladder[0]["label"], "INVITE");
    assert!(one["violation_details"].as_array().unwrap().iter().any(|v| v["rule"] == "OUT-1"));
    // 1003 is in the dispatch group (record = "always"): the replay recorded the call.
    assert!(one["recording"].is_string(), "{one:#}");
    assert_eq!(one["recording_status"], "complete");
    let res = c.get(srv.url("/api/calls/no-such-call")).bearer_auth(SUP).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::NOT_FOUND);

    // Stats: the CLI's figures.
    for by in ["ext", "group", "day", "month"] {
        let api = get_json(&c, &srv.url(&format!("/api/stats?by={by}")), SUP).await;
        assert_eq!(api["by"], by);
        assert_eq!(api["rows"], site.cli_json(&["stats", "--by", by]), "by {by}");
    }
    let bad = c.get(srv.url("/api/stats?by=week")).bearer_auth(SUP).send().await.unwrap();
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
    assert!(bad.text().await.unwrap().contains("by:"));

    // Violations, paged 1 at a time: the CLI's list.
    let cli_v = site.cli_json(&["violations"]);
    assert!(cli_v.as_array().unwrap().len() >= 3, "three premium calls at least");
    let mut all = Vec::new();
    let mut url = srv.url("/api/violations?limit=1");
    loop {
        let page = get_json(&c, &url, SUP).await;
        all.extend(page["violations"].as_array().unwrap().iter().cloned());
        match page["next"].as_str() {
            Some(n) => url = srv.url(&format!("/api/violations?limit=1&after={}", urlencode(n))),
            None => break,
        }
    }
    assert_eq!(Value::Array(all), cli_v);

    srv.stop().await.unwrap();
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn csv_register_policy_check_and_roles() {
    let site = site();
    let srv = Server::start(site.state()).await;
    let c = client();

    // Calls CSV: a header and one record per call, the same ids as the JSON.
    let res = c.get(srv.url("/api/calls?format=csv&order=asc")).bearer_auth(SUP).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["content-type"], "text/csv; charset=utf-8");
    let text = res.text().await.unwrap();
    let mut r = csv::Reader::from_reader(text.as_bytes());
    assert_eq!(r.headers().unwrap().get(0), Some("call_id"));
    // The site last: a site without a name leaves it empty.
    assert_eq!(r.headers().unwrap().iter().next_back(), Some("site"));
    let records: Vec<csv::StringRecord> = r.records().map(|x| x.unwrap()).collect();
    assert!(records.iter().all(|x| x.iter().next_back() == Some("")));
    let csv_ids: Vec<String> = records.iter().map(|x| x[0].to_string()).collect();
    let json = get_json(&c, &srv.url("/api/calls?order=asc&limit=1000"), SUP).await;
    assert_eq!(csv_ids, ids(&json, "calls"));
    // With a BOM for spreadsheets.
    let bytes = c
        .get(srv.url("/api/calls?format=csv&bom=1&limit=1"))
        .bearer_auth(SUP)
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert!(bytes.starts_with("\u{feff}call_id,".as_bytes()));
    // Stats CSV: one line per extension of `stats --by ext`.
    let text =
        c.get(srv.url("/api/stats?by=ext&format=csv")).bearer_auth(SUP).send().await.unwrap().text().await.unwrap();
    let lines = csv::Reader::from_reader(text.as_bytes()).records().count();
    assert_eq!(lines, site.cli_json(&["stats", "--by", "ext"]).as_array().unwrap().len());

    // The register: the two crafted calls, oldest first, with empty matter/outcome.
    let reg = get_json(&c, &srv.url("/api/register?month=2026-03"), SUP).await;
    let rows = reg["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 2, "{reg}");
    assert_eq!(rows[0]["class"], "long-distance");
    assert_eq!(rows[0]["user"], "1005");
    assert_eq!(rows[1]["class"], "international");
    assert_eq!(rows[0]["matter"], "");
    let empty = get_json(&c, &srv.url("/api/register?month=2026-04"), SUP).await;
    assert!(empty["rows"].as_array().unwrap().is_empty());
    let zh = c.get(srv.url("/api/register?month=2026-03&format=csv&lang=zh")).bearer_auth(SUP).send().await.unwrap();
    assert!(zh.headers()["content-disposition"].to_str().unwrap().contains("register-2026-03.csv"));
    let text = zh.text().await.unwrap();
    assert!(text.starts_with("使用人(分机),被叫号码,开始时间"), "{text}");
    assert_eq!(text.lines().count(), 3);
    assert!(text.lines().nth(1).unwrap().ends_with(",,"), "matter and outcome empty: {text}");
    // The English CSV is the very file `callwarden register` writes for the month.
    let en = c
        .get(srv.url("/api/register?month=2026-03&format=csv&bom=1"))
        .bearer_auth(SUP)
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let cli = site.cli(&["register", "--month", "2026-03"]);
    assert!(cli.status.success(), "{}", String::from_utf8_lossy(&cli.stderr));
    assert_eq!(String::from_utf8_lossy(&en), String::from_utf8_lossy(&cli.stdout));
    assert_eq!(en.len(), cli.stdout.len());
    // Unanswered long-distance calls only with unanswered=1, on both sides.
    let cli_un = site.cli(&["register", "--month", "2026-03", "--unanswered"]);
    let api_un = c
        .get(srv.url("/api/register?month=2026-03&format=csv&bom=1&unanswered=1"))
        .bearer_auth(SUP)
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(api_un.as_ref(), cli_un.stdout.as_slice());

    // Policy check: premium from one of ours is OUT-1, a local call is allowed.
    let chk = get_json(&c, &srv.url("/api/policy/check?from=1003&to=16800123"), SUP).await;
    assert_eq!(chk["class"], "premium");
    assert_eq!(chk["allowed"], false);
    assert_eq!(chk["violations"][0]["rule"], "OUT-1");
    assert_eq!(chk["group"], "dispatch");
    let ok = get_json(&c, &srv.url("/api/policy/check?from=1003&to=1004"), SUP).await;
    assert_eq!(ok["allowed"], true, "{ok}");
    assert_eq!(ok["class"], "internal");
    let bad = c.get(srv.url("/api/policy/check?from=1003")).bearer_auth(SUP).send().await.unwrap();
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);

    // Approvals change the policy's answer: long distance from a group limited to local...
    // (no group limits it here, so check that an approval is listed and revocable).
    let body = serde_json::json!({"extension": "1005", "class": "long-distance", "from": "2026-11-01", "until": "2026-11-30", "approver": "manager"});
    let res = c.post(srv.url("/api/approvals")).bearer_auth(AUDIT).json(&body).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN, "auditors do not approve");
    let res = c.post(srv.url("/api/approvals")).bearer_auth(ADMIN).json(&body).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::CREATED);
    let id = res.json::<Value>().await.unwrap()["id"].as_i64().unwrap();
    let list = get_json(&c, &srv.url("/api/approvals"), ADMIN).await;
    assert_eq!(list[0]["id"], id);
    assert!(list[0]["note"].as_str().unwrap().contains("admin-1"));
    let chk = get_json(&c, &srv.url("/api/policy/check?from=1005&to=075512345678"), SUP).await;
    assert_eq!(chk["stored_approvals"], 1);
    let res = c.post(srv.url(&format!("/api/approvals/{id}/revoke"))).bearer_auth(ADMIN).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    let res = c.post(srv.url(&format!("/api/approvals/{id}/revoke"))).bearer_auth(ADMIN).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::NOT_FOUND, "revoked once");
    let bad = serde_json::json!({"extension": "1005", "class": "nope", "from": "2026-11-01", "until": "2026-11-30", "approver": "m"});
    let res = c.post(srv.url("/api/approvals")).bearer_auth(ADMIN).json(&bad).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    // The store's own check (shared with `callwarden approve`): premium cannot be approved.
    let premium = serde_json::json!({"extension": "1005", "class": "premium", "from": "2026-11-01", "until": "2026-11-30", "approver": "m"});
    let res = c.post(srv.url("/api/approvals")).bearer_auth(ADMIN).json(&premium).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    let e = res.json::<Value>().await.unwrap();
    assert!(e["error"].as_str().unwrap().contains("premium"), "{e}");
    // What the API stored is what `callwarden approve --list` reads.
    let cli = site.cli_json(&["approve", "--list", "--all"]);
    assert!(cli.as_array().unwrap().iter().any(|a| a["id"] == id && !a["revoked_at"].is_null()), "{cli}");

    // Roles on a real socket: none → 401 with WWW-Authenticate, too low → 403.
    let res = c.get(srv.url("/api/calls")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert!(res.headers()["www-authenticate"].to_str().unwrap().starts_with("Bearer"));
    let res = c.get(srv.url("/api/calls")).bearer_auth("sup-secretX").send().await.unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    for (path, sup, audit, admin) in [
        ("/api/stats", 200, 200, 200),
        ("/api/recordings", 403, 200, 200),
        ("/api/playback-log", 403, 200, 200),
        ("/api/approvals", 403, 403, 200),
    ] {
        for (tok, want) in [(SUP, sup), (AUDIT, audit), (ADMIN, admin)] {
            let res = c.get(srv.url(path)).bearer_auth(tok).send().await.unwrap();
            assert_eq!(res.status().as_u16(), want, "{path} with {tok}");
        }
    }
    // /metrics from loopback needs no token (the server knows the peer).
    let res = c.get(srv.url("/metrics")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert!(res.text().await.unwrap().contains("callwarden_api_requests_total{code=\"4xx\"}"));
    srv.stop().await.unwrap();
}

/// `curl -s -D headers -r RANGE` against the server: (status, headers, body).
fn curl(url: &str, token: &str, range: Option<&str>) -> (u16, String, Vec<u8>) {
    let dir = tempfile::tempdir().unwrap();
    let hdr = dir.path().join("h");
    let mut cmd = std::process::Command::new("curl");
    cmd.args(["-s", "--noproxy", "*", "-D"]).arg(&hdr).args(["-H", &format!("Authorization: Bearer {token}")]);
    if let Some(r) = range {
        cmd.args(["-r", r]);
    }
    let out = cmd.arg(url).output().expect("curl is installed (scripts/install-test-deps)");
    assert!(out.status.success(), "curl failed: {out:?}");
    let headers = std::fs::read_to_string(&hdr).unwrap();
    let status: u16 = headers.split_whitespace().nth(1).unwrap().parse().unwrap();
    (status, headers.to_ascii_lowercase(), out.stdout)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recordings_range_requests_and_playback_log() {
    let site = site();
    let wav = site.add_recording(
        "00000000000000aa",
        // Not a call of the captures: those of the dispatch group were recorded for real
        // by the replay (one recording per call).
        "aa-call@test",
        1_795_456_276_990_642,
        "complete",
        "2026/11/02/00000000000000aa.wav",
        3,
    );
    assert_eq!(wav.len(), 44 + 3 * 8000 * 4);
    site.add_recording("00000000000000bb", "b", 1, "recording", "2026/11/02/bb.wav", 1);
    site.add_recording("00000000000000cc", "c", 2, "expired", "2026/11/02/cc.wav", 0);
    site.add_recording("00000000000000dd", "d", 3, "complete", "../callwarden.toml", 0);
    site.add_recording("00000000000000ee", "e", 4, "complete", "2026/11/02/gone.wav", 0);
    let srv = Server::start(site.state()).await;
    let c = client();
    let audio = srv.url("/api/recordings/00000000000000aa/audio");

    // Whole file, then ranges: curl and reqwest get the file's bytes and the same answers.
    let (st, h, body) = curl(&audio, AUDIT, None);
    assert_eq!((st, body.as_slice()), (200, wav.as_slice()));
    assert!(h.contains("content-type: audio/wav"), "{h}");
    assert!(h.contains("accept-ranges: bytes"), "{h}");
    let n = wav.len();
    for (range, from, to) in [("0-0", 0, 0), ("44-1043", 44, 1043), ("1000-", 1000, n - 1), ("-100", n - 100, n - 1)] {
        let (st, h, body) = curl(&audio, AUDIT, Some(range));
        assert_eq!(st, 206, "{range}: {h}");
        assert_eq!(body, wav[from..=to], "{range}");
        assert!(h.contains(&format!("content-range: bytes {from}-{to}/{n}")), "{range}: {h}");
        let res = c.get(&audio).bearer_auth(AUDIT).header("range", format!("bytes={range}")).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::PARTIAL_CONTENT);
        assert_eq!(res.headers()["content-range"], format!("bytes {from}-{to}/{n}").as_str());
        assert_eq!(res.bytes().await.unwrap().as_ref(), &wav[from..=to]);
    }
    let (st, h, _) = curl(&audio, AUDIT, Some(&format!("{}-", n + 10)));
    assert_eq!(st, 416, "{h}");
    assert!(h.contains(&format!("content-range: bytes */{n}")), "{h}");

    // The playback log: all those fetches by audit-1 are one playback; audit-2 is another.
    let log = get_json(&c, &srv.url("/api/playback-log"), AUDIT).await;
    let rows = log["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 1, "{log}");
    assert_eq!(rows[0]["who"], "audit-1");
    assert_eq!(rows[0]["recording_id"], "00000000000000aa");
    assert_eq!(rows[0]["action"], "stream");
    assert_eq!(rows[0]["via"], "api");
    assert_eq!(rows[0]["detail"], "full");
    let res = c.get(&audio).bearer_auth(AUDIT2).header("range", "bytes=0-99").send().await.unwrap();
    assert_eq!(res.status(), StatusCode::PARTIAL_CONTENT);
    let log = get_json(&c, &srv.url("/api/playback-log?who=audit-2"), ADMIN).await;
    assert_eq!(log["rows"].as_array().unwrap().len(), 1);
    assert_eq!(log["rows"][0]["detail"], "bytes=0-99");
    // A HEAD fetches no audio and is not logged; a supervisor may not listen at all.
    let res = c.head(&audio).bearer_auth(ADMIN).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let res = c.get(&audio).bearer_auth(SUP).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    let log = get_json(&c, &srv.url("/api/playback-log"), ADMIN).await;
    assert_eq!(log["rows"].as_array().unwrap().len(), 2, "{log}");
    // The recording's own page lists its log.
    let one = get_json(&c, &srv.url("/api/recordings/00000000000000aa"), AUDIT).await;
    assert_eq!(one["playback_log"].as_array().unwrap().len(), 2);
    assert_eq!(one["duration_ms"], 3000);

    // Refusals: still recording 409, expired 410, a stored path leaving the folder 403,
    // a file that is gone 410, an unknown or malformed id 404.
    for (id, want) in [
        ("00000000000000bb", 409),
        ("00000000000000cc", 410),
        ("00000000000000dd", 403),
        ("00000000000000ee", 410),
        ("0000000000000099", 404),
        ("..%2F..%2Fetc%2Fpasswd", 404),
    ] {
        let res = c.get(srv.url(&format!("/api/recordings/{id}/audio"))).bearer_auth(AUDIT).send().await.unwrap();
        assert_eq!(res.status().as_u16(), want, "{id}");
    }
    // None of those refusals were logged as a playback.
    let log = get_json(&c, &srv.url("/api/playback-log"), ADMIN).await;
    assert_eq!(log["rows"].as_array().unwrap().len(), 2);

    // The list, the waveform peaks, and the monthly sample (logged as `sample`).
    // aa, dd and ee added here, and those the replay made.
    let made = site.cli_json(&["recordings", "list", "--status", "complete"]).as_array().unwrap().len();
    assert!(made >= 10, "the replay recorded the dispatch group's calls: {made}");
    let list = get_json(&c, &srv.url("/api/recordings?status=complete&limit=1000"), AUDIT).await;
    assert_eq!(list["recordings"].as_array().unwrap().len(), made);

    // A real recording (sealed with its SHA-256 by the replay) plays; once a byte of its
    // file is changed it is refused, as `callwarden recordings play` refuses it.
    let real = site.cli_json(&["recordings", "list", "--status", "complete"]);
    let real = real.as_array().unwrap().iter().find(|r| r["sha256"].is_string()).unwrap().clone();
    let url = srv.url(&format!("/api/recordings/{}/audio", real["id"].as_str().unwrap()));
    let res = c.get(&url).bearer_auth(AUDIT).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let file = site.recordings.join(real["path"].as_str().unwrap());
    let mut bytes = std::fs::read(&file).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x01;
    std::fs::write(&file, &bytes).unwrap();
    let res = c.get(&url).bearer_auth(AUDIT).header("range", "bytes=0-99").send().await.unwrap();
    assert_eq!(res.status(), StatusCode::CONFLICT);
    assert!(res.text().await.unwrap().contains("changed after it was sealed"));
    // Its waveform is refused too (the peaks would show the altered audio).
    let res = c.get(url.replace("/audio", "/peaks")).bearer_auth(AUDIT).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::CONFLICT);
    // A recording with a file but no stored hash (never sealed: its disk filled) is
    // refused as the command line refuses it, audio and peaks alike.
    site.add_recording("00000000000000ff", "f", 5, "complete", "2026/11/02/ff.wav", 1);
    let conn = rusqlite::Connection::open(&site.db).unwrap();
    conn.execute("UPDATE recordings SET sha256 = NULL WHERE id = '00000000000000ff'", []).unwrap();
    for what in ["audio", "peaks"] {
        let res = c
            .get(srv.url(&format!("/api/recordings/00000000000000ff/{what}")))
            .bearer_auth(AUDIT)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::CONFLICT, "{what}");
        assert!(res.text().await.unwrap().contains("no stored sha256"), "{what}");
    }
    drop(conn);
    let pk = get_json(&c, &srv.url("/api/recordings/00000000000000aa/peaks?n=30"), AUDIT).await;
    assert_eq!(pk["channels"], 2);
    assert_eq!(pk["peaks"][0].as_array().unwrap().len(), 30);
    let max_left = pk["peaks"][0][5][1].as_f64().unwrap();
    assert!((0.2..0.26).contains(&max_left), "8000/32768 ≈ 0.244: {max_left}");
    let s1 = get_json(&c, &srv.url("/api/recordings/sample?month=2026-11&n=1&seed=42"), AUDIT).await;
    let s2 = get_json(&c, &srv.url("/api/recordings/sample?month=2026-11&n=1&seed=42"), AUDIT).await;
    assert_eq!(s1["recordings"], s2["recordings"], "the same seed draws the same sample");
    assert_eq!(s1["recordings"].as_array().unwrap().len(), 1);
    // The page's sample is the command line's: same candidates, seed and draw. One
    // recording of the replay is re-filed as asked for by another group: its call is still
    // dispatch's, so both count it among dispatch's candidates of its month.
    let refiled = real["id"].as_str().unwrap();
    let conn = rusqlite::Connection::open(&site.db).unwrap();
    assert_eq!(conn.execute("UPDATE recordings SET group_name = 'callback' WHERE id = ?", [refiled]).unwrap(), 1);
    let count = |sql: &str, month: &str| -> i64 { conn.query_row(sql, [month], |r| r.get(0)).unwrap() };
    let replay_month: String =
        conn.query_row("SELECT month FROM recordings WHERE id = ?", [refiled], |r| r.get(0)).unwrap();
    let api_ids = |v: &serde_json::Value| -> Vec<String> {
        v["recordings"].as_array().unwrap().iter().map(|r| r["id"].as_str().unwrap().to_string()).collect()
    };
    for month in ["2026-11", replay_month.as_str()] {
        // Candidates hold audio: an empty (0 s) recording is nothing to listen to.
        let own = count(
            "SELECT count(*) FROM recordings WHERE month = ? AND group_name = 'dispatch' \
             AND status != 'empty' AND duration_ms > 0",
            month,
        );
        let refiled_here = i64::from(month == replay_month);
        for seed in ["42", "7"] {
            let web = get_json(
                &c,
                &srv.url(&format!("/api/recordings/sample?month={month}&group=dispatch&n=2&seed={seed}")),
                AUDIT,
            )
            .await;
            let cli =
                site.cli_json(&["recordings", "sample", "2", "--group", "dispatch", "--month", month, "--seed", seed]);
            let mut cli_ids: Vec<String> =
                cli["drawn"].as_array().unwrap().iter().map(|r| r["id"].as_str().unwrap().to_string()).collect();
            cli_ids.sort();
            let mut web_ids = api_ids(&web);
            web_ids.sort();
            assert_eq!(web_ids, cli_ids, "{month} seed {seed}");
            assert_eq!(web["total"], cli["candidates"], "{month} seed {seed}");
            assert_eq!(web["total"].as_i64(), Some(own + refiled_here), "{month}: dispatch's own, and {refiled}");
        }
    }
    assert!(replay_month != "2026-11" && count("SELECT count(*) FROM recordings WHERE month = ?", &replay_month) > 1);
    let empty = "SELECT count(*) FROM recordings WHERE month = ? AND group_name = 'dispatch' \
                 AND (status = 'empty' OR duration_ms = 0)";
    assert!(count(empty, "2026-11") > 0, "the month has empty recordings, which the sample left out");
    drop(conn);
    let log = get_json(&c, &srv.url("/api/playback-log?limit=1"), ADMIN).await;
    assert_eq!(log["rows"][0]["action"], "sample");
    assert!(log["next"].is_string());
    srv.stop().await.unwrap();
}

/// No `[[api.token]]`: local mode. A loopback client naming a loopback host is the admin
/// `local` (the page works without logging in; audio fetches are logged as `local`); a
/// Host that is not this machine's (DNS rebinding) is refused; a change needs
/// X-Requested-With; `serve` refuses a non-loopback listener.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_tokens_only_loopback_is_served() {
    let site = Site::new();
    std::fs::write(&site.config, "[site]\ntimezone = \"Asia/Shanghai\"\nextensions = [\"1000-1099\"]\n").unwrap();
    site.replay(&[&Path::new(PUBLIC).join("gen-sipp-mixed-calls-udp.pcap")]);
    site.add_recording("r-local", "c-x", 1_762_000_000_000_000, "complete", "local/a.wav", 1);
    let srv = Server::start(site.state()).await;
    let c = client();

    let me: Value = c.get(srv.url("/api/whoami")).send().await.unwrap().json().await.unwrap();
    assert_eq!(me["name"], "local");
    assert_eq!(me["login"], false, "local mode: no login, so the page hides Log out");
    assert_eq!(me["role"], "admin");
    let calls: Value = c.get(srv.url("/api/calls")).send().await.unwrap().json().await.unwrap();
    assert_eq!(calls["calls"].as_array().unwrap().len(), 7);
    // Host names that are this machine's are accepted.
    let port = srv.addr.port();
    for host in [format!("localhost:{port}"), format!("[::1]:{port}")] {
        let res = c.get(srv.url("/api/whoami")).header("host", host.clone()).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::OK, "{host}");
    }
    // A page served from elsewhere whose name was rebound to 127.0.0.1.
    let res = c.get(srv.url("/api/calls")).header("host", format!("evil.example:{port}")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    let body: Value = res.json().await.unwrap();
    assert!(body["error"].as_str().unwrap().contains("loopback"), "{body}");
    // A token is no use when none is configured.
    let res = c.get(srv.url("/api/calls")).header("host", "evil.example").bearer_auth("x").send().await.unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    // Changes need the page's header.
    let approval = serde_json::json!({"extension": "1005", "class": "long-distance", "from": "2026-11-01",
        "until": "2026-11-30", "approver": "boss"});
    let res = c.post(srv.url("/api/approvals")).json(&approval).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    let res = c
        .post(srv.url("/api/approvals"))
        .header("x-requested-with", "callwarden")
        .json(&approval)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::CREATED);
    // Audio is logged with the name `local`.
    let res = c.get(srv.url("/api/recordings/r-local/audio")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    res.bytes().await.unwrap();
    let log: Value = c.get(srv.url("/api/playback-log")).send().await.unwrap().json().await.unwrap();
    let rows = log["rows"].as_array().unwrap();
    assert!(rows.iter().any(|r| r["who"] == "local"), "{log}");
    srv.stop().await.unwrap();

    // Not on a loopback address: refused at once.
    let wild = tokio::net::TcpListener::bind("0.0.0.0:0").await.unwrap();
    let e = callwarden::api::serve(wild, site.state(), async {}).await.unwrap_err();
    assert!(e.to_string().contains("no [[api.token]]"), "{e}");
}
