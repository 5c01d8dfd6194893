//! The central store's read side on a real throwaway PostgreSQL (tests/pg_support): sites
//! fill their SQLite by replaying real captures with the built binary, their committed
//! rows are copied into the central schema as a site forwards them (`copy_site`, until
//! the forwarder ships them itself), and then the same questions are asked of both:
//! `calls`, `stats`, `violations`, `recordings` with `--db` and with `--store
//! postgres://...` give the same JSON for the same rows; over two sites the central store
//! gives their union and each site's part; paging through rows that tie on time and key
//! at two sites neither skips nor repeats one; `serve --store` answers the API over all
//! sites with the same tokens, and refuses a central schema newer than it knows.

mod api_support;
mod central_support;
mod pg_support;

use api_support::*;
use callwarden::store::central::read::CentralReader;
use callwarden::store::central::Central;
use callwarden::store::recordings::{PlaybackCursor, PlaybackQuery};
use callwarden::store::stats::TALK_BOUNDS_MS;
use callwarden::store::{Filter, Store};
use central_support::*;
use pg_support::Pg;
use serde_json::Value;
use std::path::Path;
use std::process::Command;

/// A recording and two playback-log lines at the site, on its first answered call.
fn add_recording_and_log(s: &Site) {
    let lite = rusqlite::Connection::open(&s.db).unwrap();
    let (call_id, started): (String, i64) = lite
        .query_row(
            "SELECT call_id, started_us FROM calls c WHERE answered = 1 AND NOT EXISTS (SELECT 1 FROM recordings r
             WHERE r.call_id = c.call_id AND r.call_started_us = c.started_us) ORDER BY started_us LIMIT 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    drop(lite);
    s.add_recording("0123456789abcdef", &call_id, started, "complete", "2026/11/02/0123456789abcdef.wav", 1);
    let lite = rusqlite::Connection::open(&s.db).unwrap();
    for (at, who) in [(1_790_000_000_000_000_i64, "audit-1"), (1_790_000_100_000_000, "audit-2")] {
        lite.execute(
            "INSERT INTO playback_log (at_us, who, recording_id, action, via, detail)
             VALUES (?1, ?2, '0123456789abcdef', 'stream', 'api', 'full')",
            rusqlite::params![at, who],
        )
        .unwrap();
    }
}

/// Central stats over whole days come from the rollups: every count is the site's own, and
/// talk p50/p90 are estimated (marked `estimated`) within the histogram bucket of the
/// site's exact value. Other selections are read call by call: the same answer exactly.
#[track_caller]
fn assert_same_stats(central: &Value, lite: &Value, what: &str) {
    let bucket = |v: &Value| {
        let ms = v.as_i64().unwrap_or_else(|| panic!("{what}: a percentile {v}"));
        TALK_BOUNDS_MS.partition_point(|&b| b <= ms)
    };
    let (mut c, mut l) = (central.clone(), lite.clone());
    let (cr, lr) = (c.as_array_mut().unwrap(), l.as_array_mut().unwrap());
    assert_eq!(cr.len(), lr.len(), "{what}: {central} vs {lite}");
    for (c, l) in cr.iter_mut().zip(lr.iter_mut()) {
        if c["talk_ms"]["estimated"] != true {
            continue;
        }
        for p in ["p50", "p90"] {
            if l["talk_ms"][p].is_null() {
                assert!(c["talk_ms"][p].is_null(), "{what}: {c}");
            } else {
                assert_eq!(bucket(&c["talk_ms"][p]), bucket(&l["talk_ms"][p]), "{what} {p}: {c} vs {l}");
            }
            c["talk_ms"].as_object_mut().unwrap().remove(p);
            l["talk_ms"].as_object_mut().unwrap().remove(p);
        }
        c["talk_ms"].as_object_mut().unwrap().remove("estimated");
    }
    assert_eq!(c, l, "{what}");
}

#[test]
fn the_central_store_answers_as_the_site_does() {
    let pg = central_store();
    let hq = site("hq", &["gen-sipp-mixed-calls-udp.pcap"]);
    add_recording_and_log(&hq);
    copy_site(&hq, "hq", &pg);
    let url = pg.url();
    let questions: &[&[&str]] = &[
        &["calls"],
        &["calls", "--ext", "1003"],
        &["calls", "--rule", "OUT-1"],
        &["calls", "--number", "168"],
        &["calls", "--site", "hq"],
        &["calls", "--limit", "3"],
        &["violations"],
        &["violations", "--site", "hq"],
        &["stats"],
        &["stats", "--by", "group"],
        &["stats", "--by", "day"],
        &["stats", "--by", "month"],
        &["stats", "--by", "site"],
        &["stats", "--ext", "1003"],
        &["stats", "--site", "hq", "--by", "day"],
        // Whole days (the rollups) and a range cut inside a day (the calls, exactly).
        &["stats", "--by", "day", "--from", "2000-01-01", "--to", "2099-12-31"],
        &["stats", "--by", "group", "--from", "2000-01-01T00:00:01Z"],
        &["stats", "--rule", "OUT-1"],
        &["recordings", "list"],
        &["recordings", "log"],
        &["recordings", "log", "--site", "hq"],
    ];
    let mut estimated = 0;
    for q in questions {
        let lite = json(&hq, None, q);
        let central = json(&hq, Some(&url), q);
        if q[0] == "stats" {
            let rows = central.as_array().unwrap();
            let est = rows.iter().filter(|r| r["talk_ms"]["estimated"] == true).count();
            let cut = q.iter().any(|a| a.contains('T') || a.starts_with("OUT"));
            assert!(cut == (est == 0) || rows.iter().all(|r| r["answered"] == 0), "{q:?}: {central}");
            estimated += est;
            assert_same_stats(&central, &lite, &format!("{q:?}"));
        } else {
            assert_eq!(central, lite, "{q:?}");
        }
    }
    assert!(estimated > 0, "the rollups answered");
    let calls = json(&hq, None, &["calls"]);
    assert_eq!(len(&calls), 7);
    assert!(calls.as_array().unwrap().iter().all(|c| c["site"] == "hq"), "every row names its site");
    assert!(len(&json(&hq, None, &["violations"])) > 0, "the capture has a premium-rate call");
    assert!(len(&json(&hq, None, &["recordings", "list"])) >= 2, "the dispatch calls' and the one added");
    assert_eq!(len(&json(&hq, None, &["recordings", "log"])), 2);
    let by_site = json(&hq, None, &["stats", "--by", "site"]);
    assert_eq!(by_site[0]["key"], "hq");
    assert_eq!(by_site[0]["calls"], 7);
    // Another site's rows: none here, none there.
    for q in [
        &["calls", "--site", "branch"][..],
        &["violations", "--site", "branch"],
        &["stats", "--site", "branch"],
        &["recordings", "log", "--site", "branch"],
    ] {
        assert_eq!(json(&hq, None, q), serde_json::json!([]), "{q:?}");
        assert_eq!(json(&hq, Some(&url), q), serde_json::json!([]), "{q:?}");
    }
    // A site without a name: null, and no site's rows are its.
    let text = std::fs::read_to_string(&hq.config).unwrap().replacen("name = \"hq\"\n", "", 1);
    std::fs::write(&hq.config, text).unwrap();
    assert_eq!(json(&hq, None, &["calls"])[0]["site"], Value::Null);
    assert_eq!(json(&hq, None, &["calls", "--site", "hq"]), serde_json::json!([]));
    // --store is for reading only.
    let out = hq.cli(&["replay", "--store", &url, "/dev/null"]);
    assert_eq!(out.status.code(), Some(2), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn two_sites_union_and_per_site() {
    let pg = central_store();
    let hq = site("hq", &["gen-sipp-mixed-calls-udp.pcap"]);
    let branch = site("branch", &["gen-synth-100-calls.pcap"]);
    add_recording_and_log(&hq);
    add_recording_and_log(&branch);
    copy_site(&hq, "hq", &pg);
    copy_site(&branch, "branch", &pg);
    let url = pg.url();
    let all = json(&hq, Some(&url), &["calls"]);
    let (h, b) = (json(&hq, None, &["calls"]), json(&branch, None, &["calls"]));
    assert_eq!(len(&all), len(&h) + len(&b));
    assert_eq!(len(&h), 7);
    let starts: Vec<&str> = all.as_array().unwrap().iter().map(|c| c["started_at"].as_str().unwrap()).collect();
    assert!(starts.windows(2).all(|w| w[0] <= w[1]), "one list by start over both sites");
    assert_eq!(json(&hq, Some(&url), &["calls", "--site", "branch"]), b, "a site's part is its own answer");
    assert_eq!(json(&hq, Some(&url), &["calls", "--site", "hq"]), h);
    assert_eq!(json(&hq, Some(&url), &["violations", "--site", "hq"]), json(&hq, None, &["violations"]));
    // Stats per site: each site's row is what the site says of itself.
    let by_site = json(&hq, Some(&url), &["stats", "--by", "site"]);
    assert_eq!(len(&by_site), 2);
    assert_same_stats(
        &serde_json::json!([by_site[0]]),
        &json(&branch, None, &["stats", "--by", "site"]),
        "branch sorts first",
    );
    assert_same_stats(&serde_json::json!([by_site[1]]), &json(&hq, None, &["stats", "--by", "site"]), "hq");
    // Across sites: the figures of both sets of calls together.
    let day = json(&hq, Some(&url), &["stats", "--by", "month"]);
    let sum = |v: &Value| v.as_array().unwrap().iter().map(|r| r["calls"].as_u64().unwrap()).sum::<u64>();
    assert_eq!(sum(&day), (len(&h) + len(&b)) as u64);
    let per_site = json(&hq, Some(&url), &["stats", "--by", "month", "--site", "branch"]);
    assert_same_stats(&per_site, &json(&branch, None, &["stats", "--by", "month"]), "branch by month");

    // The playback log: a site's lines are its own log; together, both.
    let (hl, bl) = (json(&hq, None, &["recordings", "log"]), json(&branch, None, &["recordings", "log"]));
    assert_eq!((len(&hl), len(&bl)), (2, 2));
    assert_eq!(json(&hq, Some(&url), &["recordings", "log", "--site", "branch"]), bl);
    assert_eq!(json(&hq, Some(&url), &["recordings", "log", "--site", "hq"]), hl);
    assert_eq!(len(&json(&hq, Some(&url), &["recordings", "log"])), 4);
    assert_eq!(json(&hq, Some(&url), &["recordings", "log", "--site", "elsewhere"]), serde_json::json!([]));

    // The call-back report (STA-3), in every month with calls: a site's part is the
    // site's own report, and the union's figures are the sum of both sites'.
    let mut months: Vec<String> =
        all.as_array().unwrap().iter().map(|c| c["started_at"].as_str().unwrap()[..7].to_string()).collect();
    months.dedup();
    let mut made_anywhere = 0;
    for month in &months {
        let args = ["callbacks", "--month", month.as_str()];
        let (hm, bm) = (json(&hq, None, &args), json(&branch, None, &args));
        assert_eq!(json(&hq, Some(&url), &[&args[..], &["--site", "hq"]].concat()), hm, "{month}");
        assert_eq!(json(&hq, Some(&url), &[&args[..], &["--site", "branch"]].concat()), bm, "{month}");
        let union = json(&hq, Some(&url), &args);
        let groups = union["groups"].as_array().unwrap();
        assert_eq!(groups.len(), 1, "the config's one group: {union}");
        for (i, g) in groups.iter().enumerate() {
            for k in ["made", "answered", "effective"] {
                let n = |v: &Value| v["groups"][i][k].as_u64().unwrap();
                assert_eq!(g[k].as_u64().unwrap(), n(&hm) + n(&bm), "{month} {k}: {union}");
            }
            made_anywhere += g["made"].as_u64().unwrap();
        }
    }
    assert!(made_anywhere > 0, "the captures have outbound calls of the dispatch group");
}

/// The same rows at two sites tie on (start, Call-ID): pages of any size walk them all,
/// each once, both ways; a call's detail takes its site.
#[test]
fn paging_over_sites_that_tie() {
    let pg = central_store();
    let hq = site("hq", &["gen-sipp-mixed-calls-udp.pcap"]);
    add_recording_and_log(&hq);
    copy_site(&hq, "a", &pg);
    copy_site(&hq, "b", &pg);
    let r = CentralReader::open(&Central::from_url(&pg.url()).unwrap(), "Asia/Shanghai").unwrap();
    let whole = r.calls(&Filter::default()).unwrap();
    assert_eq!(whole.len(), 14);
    let key = |c: &callwarden::store::CallRow| (c.site.clone().unwrap(), c.call_id.clone(), c.started_us);
    for newest_first in [false, true] {
        for size in [1, 2, 3, 5] {
            let mut seen = Vec::new();
            let mut q = Filter { limit: Some(size), newest_first, ..Filter::default() };
            loop {
                let page = r.calls(&q).unwrap();
                seen.extend(page.iter().map(key));
                match page.last() {
                    Some(last) if page.len() == size => q.after = Some(last.cursor().to_string().parse().unwrap()),
                    _ => break,
                }
            }
            let mut want: Vec<_> = whole.iter().map(key).collect();
            if newest_first {
                want.reverse();
            }
            assert_eq!(seen, want, "pages of {size}, newest first {newest_first}");
        }
    }
    let vs = r.violations(&Filter::default()).unwrap();
    assert!(vs.len() >= 2 && vs.len() % 2 == 0);
    let mut seen = Vec::new();
    let mut q = Filter { limit: Some(1), ..Filter::default() };
    while let Some(v) = r.violations(&q).unwrap().pop() {
        seen.push((v.site.clone(), v.id));
        q.after = Some(v.cursor());
    }
    assert_eq!(seen, vs.iter().map(|v| (v.site.clone(), v.id)).collect::<Vec<_>>());
    let recs = r.recordings(&Filter::default()).unwrap();
    assert!(recs.len() >= 4 && recs.len() % 2 == 0);
    assert_eq!((recs[0].site.as_deref(), recs[1].site.as_deref()), (Some("a"), Some("b")), "a tie, by site");
    let mut seen = Vec::new();
    let mut q = Filter { limit: Some(1), ..Filter::default() };
    while let Some(rec) = r.recordings(&q).unwrap().pop() {
        seen.push((rec.site.clone(), rec.id.clone()));
        q.after = Some(rec.cursor());
    }
    assert_eq!(seen, recs.iter().map(|r| (r.site.clone(), r.id.clone())).collect::<Vec<_>>());
    // The playback log, newest first as the API pages it: both sites' lines tie on time
    // and id, and lines logged through the central API (no site id) tie with them too.
    let tie = 1_790_000_100_000_000_i64;
    let mut conn = r.conn().unwrap();
    for who in ["central-1", "central-2"] {
        callwarden::store::central::playback::log(&mut conn, "a", tie, who, "0123456789abcdef", "stream", "").unwrap();
    }
    drop(conn);
    let newest = PlaybackQuery { newest_first: true, ..PlaybackQuery::default() };
    let log_all = r.playback_log(&newest).unwrap();
    assert_eq!(log_all.len(), 6, "two lines at each site, two through the central API");
    let line = |l: &callwarden::store::recordings::PlaybackRow| (l.site.clone(), l.id, l.who.clone(), l.at_us);
    for size in [1, 2, 3, 4] {
        let mut seen = Vec::new();
        let mut q = PlaybackQuery { limit: Some(size), ..newest.clone() };
        loop {
            let page = r.playback_log(&q).unwrap();
            seen.extend(page.iter().map(line));
            match page.last() {
                Some(last) if page.len() == size => {
                    // The cursor as the API hands it out and takes it back.
                    q.before = Some(PlaybackCursor::parse("after", &last.cursor.to_string()).unwrap());
                }
                _ => break,
            }
        }
        assert_eq!(seen, log_all.iter().map(line).collect::<Vec<_>>(), "pages of {size}");
    }
    assert!(log_all.windows(2).all(|w| w[0].at_us >= w[1].at_us), "newest first");
    // A site's cursor is not one of the central log's.
    let q = PlaybackQuery { before: Some(PlaybackCursor::Id(2)), ..newest };
    assert!(r.playback_log(&q).is_err());
    // A Call-ID at two sites: the named site's call, with that site's violations.
    let id = &whole[0].call_id;
    for s in ["a", "b"] {
        let d = r.call(id, Some(s)).unwrap().unwrap();
        assert_eq!(d.call.site.as_deref(), Some(s));
        assert!(d.violation_details.iter().all(|v| v.site.as_deref() == Some(s)));
    }
    assert!(r.call(id, Some("c")).unwrap().is_none());
    assert!(r.call(id, None).unwrap().is_some());
    let rec = &recs[0];
    let of_b = r.recording_of_call(Some("b"), &rec.call_id, rec.call_started_us).unwrap().unwrap();
    assert_eq!(of_b.site.as_deref(), Some("b"));
    assert_eq!(r.sites().unwrap(), ["a", "b"]);
}

/// End to end with the forwarder: two sites replay different captures with `[store]
/// central` set, their rows ship themselves, and the central store answers as each site
/// does for its part, and with the union over both.
#[test]
fn forwarded_sites_read_centrally() {
    let pg = Pg::start();
    let url = pg.url();
    let forwarding = |name: &str, capture: &str| {
        let s = Site::new();
        let text = std::fs::read_to_string(&s.config).unwrap().replacen(
            "[site]\n",
            &format!("[site]\nname = \"{name}\"\n"),
            1,
        ) + &format!("\n[store]\ncentral = \"{url}\"\n");
        std::fs::write(&s.config, text).unwrap();
        s.replay(&[&Path::new(PUBLIC).join(capture)]);
        s
    };
    let hq = forwarding("hq", "gen-sipp-mixed-calls-udp.pcap");
    let branch = forwarding("branch", "gen-kamailio-proxy-calls-udp-with-hep3.pcap");
    assert!(pg.count("SELECT count(*) FROM calls") > 7, "both sites shipped their calls");
    for (s, name) in [(&hq, "hq"), (&branch, "branch")] {
        for q in [&["calls"][..], &["violations"], &["stats"], &["stats", "--by", "site"], &["recordings", "list"]] {
            let site_q = [q, &["--site", name][..]].concat();
            let what = format!("{name} {q:?}");
            if q[0] == "stats" {
                assert_same_stats(&json(s, Some(&url), &site_q), &json(s, None, q), &what);
            } else {
                assert_eq!(json(s, Some(&url), &site_q), json(s, None, q), "{what}");
            }
        }
    }
    let all = json(&hq, Some(&url), &["calls"]);
    assert_eq!(len(&all), len(&json(&hq, None, &["calls"])) + len(&json(&branch, None, &["calls"])));
    let by_site = json(&hq, Some(&url), &["stats", "--by", "site"]);
    assert_same_stats(&serde_json::json!([by_site[0]]), &json(&branch, None, &["stats", "--by", "site"]), "branch");
    assert_same_stats(&serde_json::json!([by_site[1]]), &json(&hq, None, &["stats", "--by", "site"]), "hq");
}

#[test]
fn serve_reads_the_central_store_and_refuses_a_newer_schema() {
    let pg = central_store();
    let hq = site("hq", &["gen-sipp-mixed-calls-udp.pcap"]);
    let branch = site("branch", &["gen-synth-100-calls.pcap"]);
    copy_site(&hq, "hq", &pg);
    copy_site(&branch, "branch", &pg);
    let url = pg.url();
    let (mut child, addr) = serve(&hq, &url).expect("serve --store starts");
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    rt.block_on(ask_the_central_api(&addr));
    assert!(Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap().success());
    assert!(child.wait().unwrap().success());

    // A central schema from a newer build: refused, saying so, by serve and the CLI.
    pg.psql("INSERT INTO callwarden_schema (version, name) VALUES (99, '0099_future')");
    let (code, said) = match serve(&hq, &url) {
        Err(refused) => refused,
        Ok((mut child, addr)) => {
            let _ = child.kill();
            let _ = child.wait();
            panic!("serve started over a newer central schema, on {addr}");
        }
    };
    assert_eq!(code, Some(1), "{said}");
    assert!(said.contains("schema version 99, newer than this build knows"), "{said}");
    let out = hq.cli(&["calls", "--store", &url]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("newer than this build knows"));
    // ... and nothing was migrated or written by the readers.
    assert_eq!(pg.count("SELECT max(version) FROM callwarden_schema"), 99);
}

/// A read replica (`[store] central_read`), here a real streaming replica of the
/// throwaway cluster: `--store` with `central`'s URL reads the replica (the readers'
/// connections are in recovery, the playback log's is the primary's), so with the primary
/// stopped the read commands and `serve --store` still answer, from the replica's copy of
/// the rows; without `central_read` the same commands fail.
#[test]
fn a_read_replica_answers_the_queries() {
    let mut pg = central_store();
    let hq = site("hq", &["gen-sipp-mixed-calls-udp.pcap"]);
    copy_site(&hq, "hq", &pg);
    let replica = pg.replica();
    let t = std::time::Instant::now();
    while replica.count("SELECT count(*) FROM calls") != 7 {
        assert!(t.elapsed() < std::time::Duration::from_secs(30), "the replica did not catch up");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let url = pg.url();
    let plain = std::fs::read_to_string(&hq.config).unwrap();
    let store = format!("\n[store]\ncentral = \"{url}\"\n");
    let with_replica = format!("{plain}{store}central_read = \"{}\"\n", replica.url());
    std::fs::write(&hq.config, &with_replica).unwrap();

    let settings = hq.settings();
    let r = CentralReader::for_store(&url, &settings.config.store, &settings.base_dir, "Asia/Shanghai").unwrap();
    let recovery = "SELECT pg_is_in_recovery()";
    assert!(r.conn().unwrap().query_one(recovery, &[]).unwrap().get::<_, bool>(0), "reads go to the replica");
    let primary = r.write_conn().unwrap().query_one(recovery, &[]).unwrap().get::<_, bool>(0);
    assert!(!primary, "the playback log goes to the primary");
    drop(r);
    let own = [json(&hq, None, &["calls"]), json(&hq, None, &["stats", "--by", "site"])];
    assert_eq!(len(&own[0]), 7);
    pg.stop();
    assert_eq!(json(&hq, Some(&url), &["calls"]), own[0]);
    assert_same_stats(&json(&hq, Some(&url), &["stats", "--by", "site"]), &own[1], "stats from the replica");
    let (mut child, addr) = serve(&hq, &url).expect("serve --store reads the replica");
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let page = rt.block_on(async { get_json(&client(), &format!("http://{addr}/api/calls?limit=1000"), SUP).await });
    assert_eq!(page["calls"], own[0].as_array().unwrap().iter().rev().cloned().collect::<Value>(), "newest first");
    assert!(Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap().success());
    assert!(child.wait().unwrap().success());
    // Without the replica the primary is asked, and it is down.
    std::fs::write(&hq.config, format!("{plain}{store}")).unwrap();
    let out = hq.cli(&["calls", "--store", &url]);
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stderr));
}

/// The API of `serve --store` over hq (7 calls) and branch (100).
async fn ask_the_central_api(addr: &str) {
    let c = client();
    let base = format!("http://{addr}");
    let res = c.get(format!("{base}/api/calls")).send().await.unwrap();
    assert_eq!(res.status(), 401, "the same tokens guard it");
    let page = get_json(&c, &format!("{base}/api/calls?limit=1000"), SUP).await;
    assert_eq!(page["calls"].as_array().unwrap().len(), 107);
    let branch_only = get_json(&c, &format!("{base}/api/calls?limit=1000&site=branch"), SUP).await;
    assert_eq!(branch_only["calls"].as_array().unwrap().len(), 100);
    assert!(branch_only["calls"].as_array().unwrap().iter().all(|c| c["site"] == "branch"));
    // The CSV export names each row's site; with `site=` only that site's rows.
    for (q, want) in [("", [("branch", 100), ("hq", 7)].as_slice()), ("&site=hq", &[("hq", 7)])] {
        let res = c.get(format!("{base}/api/calls?format=csv{q}")).bearer_auth(SUP).send().await.unwrap();
        assert_eq!(res.status(), 200);
        let text = res.text().await.unwrap();
        let mut r = csv::Reader::from_reader(text.as_bytes());
        let col = r.headers().unwrap().iter().position(|h| h == "site").expect("a site column");
        let mut per_site = std::collections::BTreeMap::new();
        for rec in r.records() {
            *per_site.entry(rec.unwrap()[col].to_string()).or_insert(0) += 1;
        }
        let want: std::collections::BTreeMap<String, i32> = want.iter().map(|(s, n)| (s.to_string(), *n)).collect();
        assert_eq!(per_site, want, "calls CSV{q}");
    }
    // The call-back report: `site=` gives that site's figures, none the union's.
    let month = branch_only["calls"][0]["started_at"].as_str().unwrap()[..7].to_string();
    let cb = |q: &str| format!("{base}/api/callbacks?month={month}{q}");
    let all_cb = get_json(&c, &cb(""), SUP).await;
    let hq_cb = get_json(&c, &cb("&site=hq"), SUP).await;
    let branch_cb = get_json(&c, &cb("&site=branch"), SUP).await;
    let made = |v: &Value| v["groups"][0]["made"].as_u64().unwrap();
    assert_eq!(made(&all_cb), made(&hq_cb) + made(&branch_cb), "{all_cb} {hq_cb} {branch_cb}");
    assert!(made(&branch_cb) > 0, "{branch_cb}");
    assert_eq!(made(&get_json(&c, &cb("&site=elsewhere"), SUP).await), 0);
    // Pages of 40 over both sites: every call once.
    let mut seen = std::collections::HashSet::new();
    let mut next: Option<String> = None;
    loop {
        let mut u = format!("{base}/api/calls?limit=40");
        if let Some(n) = &next {
            u.push_str(&format!("&after={}", urlencode(n)));
        }
        let p = get_json(&c, &u, SUP).await;
        for call in p["calls"].as_array().unwrap() {
            assert!(seen.insert((
                call["site"].to_string(),
                call["call_id"].to_string(),
                call["started_at"].to_string()
            )));
        }
        match p["next"].as_str() {
            Some(n) => next = Some(n.to_string()),
            None => break,
        }
    }
    assert_eq!(seen.len(), 107);
    let stats = get_json(&c, &format!("{base}/api/stats?by=site"), SUP).await;
    let keys: Vec<&str> = stats["rows"].as_array().unwrap().iter().map(|r| r["key"].as_str().unwrap()).collect();
    assert_eq!(keys, ["branch", "hq"]);
    assert_eq!(stats["rows"][1]["calls"], 7);
    let sites = get_json(&c, &format!("{base}/api/sites"), SUP).await;
    assert_eq!(sites["sites"], serde_json::json!(["branch", "hq"]));
    let first = &branch_only["calls"][0];
    let id = first["call_id"].as_str().unwrap();
    let detail = get_json(&c, &format!("{base}/api/calls/{}?site=branch", urlencode(id)), SUP).await;
    assert_eq!((detail["site"].as_str(), detail["call_id"].as_str()), (Some("branch"), Some(id)));
    let res = c.get(format!("{base}/api/calls/{}?site=hq", urlencode(id))).bearer_auth(SUP).send().await.unwrap();
    assert_eq!(res.status(), 404, "not a call of hq");
    let res = c.get(format!("{base}/api/approvals")).bearer_auth(ADMIN).send().await.unwrap();
    assert_eq!(res.status(), 501, "approvals are kept at the sites");
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// Stats latency over N calls in PostgreSQL (`CW_STATS_N`, default 1,000,000), made with
/// generate_series over two sites (a call every 2 s, 100 extensions, a violation per 50
/// calls; the rollups filled by their triggers as the rows go in): `cargo test --test central_read stats_latency -- --ignored --nocapture`.
#[test]
#[ignore = "a measurement, minutes long: run by hand"]
fn stats_latency() {
    let n: i64 = std::env::var("CW_STATS_N").ok().and_then(|v| v.parse().ok()).unwrap_or(1_000_000);
    let pg = central_store();
    pg.psql("INSERT INTO sites VALUES ('s1', 'i1', 'Asia/Shanghai', 0, 0), ('s2', 'i2', 'Asia/Shanghai', 0, 0)");
    let t = std::time::Instant::now();
    pg.psql(&format!(
        "INSERT INTO calls (site, call_id, started_us, caller, callee, dialled, number, direction, class, group_name,
             caller_ext, callee_ext, ringing_us, answered_us, ended_us, rings, ring_ms, talk_ms, answered, end_reason,
             sip_status, cost_fen, dtmf, media_caller, media_callee, ladder, day, month, legs, within_max_rings,
             long_call, effective)
         SELECT CASE WHEN g % 2 = 0 THEN 's1' ELSE 's2' END, 'c' || g, s, '80' || lpad((g % 100)::text, 2, '0'),
             '138' || g, '0138' || g, '138' || g,
             CASE g % 3 WHEN 0 THEN 'inbound' WHEN 1 THEN 'outbound' ELSE 'internal' END, 'mobile',
             CASE WHEN g % 5 = 0 THEN NULL ELSE 'g' || (g % 4) END,
             CASE WHEN g % 3 = 0 THEN NULL ELSE '80' || lpad((g % 100)::text, 2, '0') END,
             CASE WHEN g % 3 = 1 THEN NULL ELSE '81' || lpad((g % 50)::text, 2, '0') END,
             s + 200000, s + 7200000, s + 50000000, g % 7, 7000, (g * 7919) % 600000, (g % 4 <> 0)::int,
             CASE WHEN g % 4 = 0 THEN 'cancelled' ELSE 'caller-bye' END, 200, g % 30, '', '{{}}', '{{}}', '[]',
             to_char(to_timestamp(s / 1000000.0) AT TIME ZONE 'Asia/Shanghai', 'YYYY-MM-DD'),
             to_char(to_timestamp(s / 1000000.0) AT TIME ZONE 'Asia/Shanghai', 'YYYY-MM'), '[]',
             (g % 7 <= 3)::int, (g % 11 = 0)::int, (g % 3 <> 0)::int
         FROM (SELECT g, 1772407800000000 + g * 2000000::bigint AS s FROM generate_series(1::bigint, {n}) g) x"
    ));
    pg.psql(
        "INSERT INTO violations (site, id, natural_key, rule, kind, call_id, call_started_us, extension, number,
             detected_us, fine_fen, detail, day, month)
         SELECT site, row_number() OVER (), call_id || '/ANS-1', 'ANS-1', 'slow-answer', call_id, started_us,
             coalesce(callee_ext, caller_ext, ''), number, started_us + 1000, NULL, '', day, month
         FROM calls WHERE call_id LIKE '%00' OR call_id LIKE '%50'",
    );
    pg.psql("VACUUM ANALYZE");
    eprintln!("filled {n} calls in {:?}", t.elapsed());
    // The floor of a scan: PostgreSQL summing every call itself, no rows sent.
    let t = std::time::Instant::now();
    pg.psql("SELECT site, count(*), sum(talk_ms), sum(answered) FROM calls GROUP BY site");
    eprintln!("psql: every call summed by site inside PostgreSQL in {:?}", t.elapsed());
    let t = std::time::Instant::now();
    pg.psql(
        "SELECT percentile_disc(ARRAY[0.5, 0.9]) WITHIN GROUP (ORDER BY talk_ms) FROM calls WHERE answered = 1
         GROUP BY caller_ext",
    );
    eprintln!("psql: talk p50/p90 per extension inside PostgreSQL in {:?}", t.elapsed());
    let r = CentralReader::open(&Central::from_url(&pg.url()).unwrap(), "Asia/Shanghai").unwrap();
    let tz = r.timezone().clone();
    let month = callwarden::store::query::month_range("month", "2026-03", &tz).unwrap();
    let questions = [
        ("all, by ext", callwarden::store::StatsBy::Ext, Filter::default()),
        ("all, by day", callwarden::store::StatsBy::Day, Filter::default()),
        ("all, by site", callwarden::store::StatsBy::Site, Filter::default()),
        ("all, by group", callwarden::store::StatsBy::Group, Filter::default()),
        ("all, by month", callwarden::store::StatsBy::Month, Filter::default()),
        (
            "one month, by group",
            callwarden::store::StatsBy::Group,
            Filter { from: Some(month.0), to: Some(month.1), ..Filter::default() },
        ),
        (
            "one month, one group, by ext",
            callwarden::store::StatsBy::Ext,
            Filter { from: Some(month.0), to: Some(month.1), group: Some("g1".into()), ..Filter::default() },
        ),
        (
            "one site, one day cut at 08:00 (the calls read, not the rollups), by ext",
            callwarden::store::StatsBy::Ext,
            Filter {
                site: Some("s1".into()),
                from: Some(callwarden::store::query::range_start("from", "2026-03-05T08:00:00+08:00", &tz).unwrap()),
                to: Some(callwarden::store::query::range_end("to", "2026-03-05", &tz).unwrap()),
                ..Filter::default()
            },
        ),
        (
            "one site, one day, by ext",
            callwarden::store::StatsBy::Ext,
            Filter {
                site: Some("s1".into()),
                from: Some(callwarden::store::query::range_start("from", "2026-03-05", &tz).unwrap()),
                to: Some(callwarden::store::query::range_end("to", "2026-03-05", &tz).unwrap()),
                ..Filter::default()
            },
        ),
    ];
    for (what, by, q) in questions {
        let mut times = Vec::new();
        let mut calls = 0;
        for _ in 0..3 {
            let t = std::time::Instant::now();
            let rows = r.stats(by, &q).unwrap();
            times.push(t.elapsed());
            calls = rows.iter().map(|r| r.calls).sum::<u64>();
        }
        times.sort();
        eprintln!("stats {what}: {calls} call-rows, median {:?} (min {:?}, max {:?})", times[1], times[0], times[2]);
    }
}
