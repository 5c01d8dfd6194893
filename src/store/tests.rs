//! Store tests through the real writer thread and reader: migrations on open, upsert
//! idempotence, the violation completed at the end of its call, the flush barrier,
//! write failures (disk full, a lock held by another process), and the queries.

use super::reader::RuleKind;
use super::testdata::{call, unanswered, violation, T0};
use super::*;
use callwarden_core::policy::{Violation, ViolationKind};
use callwarden_core::track::{CallRecord, Direction, EndReason};
use callwarden_core::Ts;
use std::path::PathBuf;

const TZ: &str = "Asia/Shanghai";

fn db() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("test.db");
    (dir, path)
}

/// Write `calls` then `violations` through a fresh writer and close it.
fn write(path: &Path, calls: &[CallRecord], violations: &[Violation]) -> WriteSummary {
    let (mut sink, writer) = open(path, TZ).unwrap();
    for c in calls {
        let c = crate::store::testdata::judged_by_defaults(c.clone());
        sink.take(&Output::Call(CallEvent::Ended(Box::new(c)))).unwrap();
    }
    for v in violations {
        sink.take(&Output::Violation(v.clone())).unwrap();
    }
    drop(sink);
    writer.close().unwrap()
}

fn reader(path: &Path) -> Reader {
    Reader::open(path).unwrap()
}

fn all_calls(path: &Path) -> Vec<CallRow> {
    reader(path).calls(&Filter::default()).unwrap()
}

fn count(path: &Path, table: &str) -> i64 {
    let conn = Connection::open(path).unwrap();
    conn.query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0)).unwrap()
}

#[test]
fn open_twice_keeps_schema_and_data() {
    let (_d, path) = db();
    let s = write(&path, &[call("a", T0, "8001", "13800138000", Direction::Outbound)], &[]);
    assert_eq!((s.calls, s.calls_new), (1, 1));
    let s = write(&path, &[], &[]);
    assert_eq!(s.calls, 0);
    let conn = Connection::open(&path).unwrap();
    assert_eq!(migrations::version(&conn).unwrap(), migrations::latest());
    let mode: String = conn.query_row("PRAGMA journal_mode", [], |r| r.get(0)).unwrap();
    assert_eq!(mode, "wal");
    assert_eq!(all_calls(&path).len(), 1);
}

#[test]
fn upgrade_from_an_empty_v0_file() {
    let (_d, path) = db();
    // An existing, empty SQLite file (user_version 0), as `sqlite3 x.db ''` leaves it.
    Connection::open(&path).unwrap().execute_batch("PRAGMA user_version = 0; VACUUM;").unwrap();
    assert!(Reader::open(&path).is_err(), "a v0 file is not readable as a callwarden database yet");
    write(&path, &[call("a", T0, "8001", "13800138000", Direction::Outbound)], &[]);
    assert_eq!(all_calls(&path).len(), 1);
}

#[test]
fn the_same_calls_twice_are_stored_once() {
    let (_d, path) = db();
    let calls: Vec<CallRecord> = (0..3)
        .map(|i| call(&format!("c{i}"), T0 + i * 60_000_000, "8001", "13800138000", Direction::Outbound))
        .collect();
    let s1 = write(&path, &calls, &[]);
    assert_eq!((s1.calls, s1.calls_new), (3, 3));
    let s2 = write(&path, &calls, &[]);
    assert_eq!((s2.calls, s2.calls_new), (3, 0), "a second replay adds nothing");
    assert_eq!(count(&path, "calls"), 3);
    // The same Call-ID starting at another time is another call.
    let mut again = calls[0].clone();
    again.started_at = Ts(T0 + 3_600_000_000);
    let s3 = write(&path, &[again], &[]);
    assert_eq!(s3.calls_new, 1);
    assert_eq!(count(&path, "calls"), 4);
    // A call written again with new figures is updated in place.
    let mut changed = calls[1].clone();
    changed.end_reason = EndReason::CalleeBye;
    changed.cost_fen = Some(45);
    let s4 = write(&path, &[changed], &[]);
    assert_eq!((s4.calls, s4.calls_new), (1, 0));
    let row = all_calls(&path).into_iter().find(|c| c.call_id == "c1").unwrap();
    assert_eq!((row.end_reason.as_str(), row.cost_fen), ("callee-bye", Some(45)));
}

#[test]
fn a_violation_completed_at_the_end_is_one_row() {
    let (_d, path) = db();
    let c = call("prem", T0, "8003", "16800123", Direction::Outbound);
    let at_invite = violation(&c, "OUT-1", ViolationKind::PremiumRate, "8003", 0, None);
    let at_end = violation(&c, "OUT-1", ViolationKind::PremiumRate, "8003", 49_200, Some(6_500));
    let slow = violation(&c, "ANS-1", ViolationKind::SlowAnswer, "8003", 7_200, None);
    let s = write(&path, std::slice::from_ref(&c), &[at_invite.clone(), slow.clone(), at_end.clone()]);
    assert_eq!(s.violations, 3);
    let r = reader(&path);
    let rows = r.violations(&Filter::default()).unwrap();
    assert_eq!(rows.len(), 2, "{rows:#?}");
    let prem = rows.iter().find(|v| v.rule == "OUT-1").unwrap();
    assert_eq!(prem.fine_fen, Some(6_500));
    assert_eq!(prem.detail, "fine 6500 fen");
    assert_eq!(prem.detected_at, "2026-03-02T07:30:00.000000+08:00", "first detection is kept");
    // A replay raises both again, pending first: nothing is added, the fine stays.
    write(&path, &[c], &[at_invite, at_end.clone(), slow]);
    let rows = reader(&path).violations(&Filter::default()).unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows.iter().find(|v| v.rule == "OUT-1").unwrap().fine_fen, Some(6_500));
    // The same rule for another extension of the call is another offence.
    let mut other = at_end;
    other.extension = "8004".into();
    write(&path, &[], &[other]);
    assert_eq!(count(&path, "violations"), 3);
}

#[test]
fn violations_about_no_call_are_keyed_by_day() {
    let (_d, path) = db();
    let day = |us: i64| Violation {
        rule: "STA-1".into(),
        kind: ViolationKind::BelowTarget,
        call_id: None,
        call_started_at: None,
        call_from_tag: None,
        extension: "8001".into(),
        number: String::new(),
        detected_at: Ts(us),
        fine_fen: Some(100),
        detail: "12 of 80".into(),
    };
    // Two detections on 2026-03-02 (Shanghai), one on the 3rd.
    write(&path, &[], &[day(T0), day(T0 + 3_600_000_000), day(T0 + 86_400_000_000)]);
    let rows = reader(&path).violations(&Filter::default()).unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0].call_id, None);
}

#[test]
fn flush_barrier_returns_after_the_commit() {
    let (_d, path) = db();
    let (mut sink, writer) = open_with(
        &path,
        TZ,
        // Batching bounds far away: only the barrier (or an empty queue) commits.
        StoreOptions { batch_max: 1_000_000, batch_age: std::time::Duration::from_secs(3600), ..Default::default() },
    )
    .unwrap();
    let c = call("prem", T0, "8003", "16800123", Direction::Outbound);
    let v = violation(&c, "OUT-1", ViolationKind::PremiumRate, "8003", 0, None);
    let r = reader(&path);
    for round in 0..20 {
        let mut v = v.clone();
        v.extension = format!("80{round:02}");
        sink.take(&Output::Violation(v)).unwrap();
        sink.flush_barrier().unwrap();
        // Read on another connection, while the writer is still running.
        let seen = r.violations(&Filter::default()).unwrap().len();
        assert_eq!(seen, round + 1);
    }
    drop(sink);
    let s = writer.close().unwrap();
    assert_eq!(s.violations, 20);
}

#[test]
fn a_violation_is_committed_without_waiting_for_the_batch() {
    let (_d, path) = db();
    write(&path, &[], &[]);
    let opts = StoreOptions {
        batch_max: 1_000_000,
        batch_age: std::time::Duration::from_secs(3600),
        busy_timeout: std::time::Duration::from_millis(5),
        retries: 20,
        retry_pause: std::time::Duration::from_millis(10),
        ..Default::default()
    };
    let (mut sink, writer) = open_with(&path, TZ, opts).unwrap();
    let other = Connection::open(&path).unwrap();
    other.execute_batch("BEGIN EXCLUSIVE").unwrap();
    let ended = |i: i64| {
        let c = call(&format!("v{i}"), T0 + i * 1_000_000, "8001", "16800123", Direction::Outbound);
        Output::Call(CallEvent::Ended(Box::new(c)))
    };
    // The writer takes the first call and blocks committing it; the rest queue up behind.
    sink.take(&ended(0)).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(50));
    sink.take(&ended(1)).unwrap();
    sink.take(&ended(2)).unwrap();
    let c = call("v2", T0 + 2_000_000, "8001", "16800123", Direction::Outbound);
    sink.take(&Output::Violation(violation(&c, "OUT-1", ViolationKind::PremiumRate, "8001", 0, None))).unwrap();
    sink.take(&ended(3)).unwrap();
    sink.take(&ended(4)).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(50));
    other.execute_batch("COMMIT").unwrap();
    drop(sink);
    let s = writer.close().unwrap();
    // [v0], then [v1 v2 OUT-1] committed at the violation, then [v3 v4] when drained;
    // batching by size or age alone would have made [v1 .. v4] one transaction.
    assert_eq!((s.transactions, s.calls, s.violations), (3, 5, 1), "{s:?}");
}

#[test]
fn disk_full_is_reported_and_stored_rows_stay_intact() {
    let (_d, path) = db();
    // Create the schema first, then let the writer grow the file by a few pages only.
    write(&path, &[], &[]);
    let pages: u32 = Connection::open(&path).unwrap().query_row("PRAGMA page_count", [], |r| r.get(0)).unwrap();
    let opts = StoreOptions {
        max_page_count: Some(pages + 4),
        retries: 1,
        retry_pause: std::time::Duration::from_millis(1),
        ..Default::default()
    };
    let (mut sink, writer) = open_with(&path, TZ, opts).unwrap();
    for i in 0..200 {
        let mut c = call(&format!("full-{i}"), T0 + i * 1_000_000, "8001", "13800138000", Direction::Outbound);
        c.ladder = (0..20).map(|_| c.ladder[0].clone()).collect();
        sink.take(&Output::Call(CallEvent::Ended(Box::new(c)))).unwrap();
        if i % 50 == 49 {
            let _ = sink.flush_barrier();
        }
    }
    drop(sink);
    let err = writer.close().unwrap_err().to_string();
    assert!(err.contains("could not be written") && err.contains("full"), "{err}");
    let conn = Connection::open(&path).unwrap();
    let ok: String = conn.query_row("PRAGMA integrity_check", [], |r| r.get(0)).unwrap();
    assert_eq!(ok, "ok");
    let stored = count(&path, "calls");
    assert!(stored > 0 && stored < 200, "{stored}");
    // What is stored is whole: every row reads back.
    assert_eq!(all_calls(&path).len() as i64, stored);
}

#[test]
fn a_lock_held_elsewhere_is_waited_out_by_retrying() {
    let (_d, path) = db();
    write(&path, &[], &[]);
    let opts = StoreOptions {
        busy_timeout: std::time::Duration::from_millis(5),
        retries: 8,
        retry_pause: std::time::Duration::from_millis(20),
        ..Default::default()
    };
    let (mut sink, writer) = open_with(&path, TZ, opts).unwrap();
    let other = Connection::open(&path).unwrap();
    other.execute_batch("BEGIN EXCLUSIVE").unwrap();
    let (locked_tx, locked_rx) = std::sync::mpsc::channel();
    let holder = std::thread::spawn(move || {
        locked_tx.send(()).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(300));
        other.execute_batch("COMMIT").unwrap();
    });
    locked_rx.recv().unwrap();
    sink.take(&Output::Call(CallEvent::Ended(Box::new(call("x", T0, "8001", "110", Direction::Outbound))))).unwrap();
    sink.flush_barrier().unwrap();
    holder.join().unwrap();
    drop(sink);
    let s = writer.close().unwrap();
    assert!(s.retries >= 1, "{s:?}");
    assert_eq!((s.calls, s.lost), (1, 0));
    assert_eq!(all_calls(&path).len(), 1);
}

#[test]
fn a_full_queue_blocks_the_sink_and_loses_nothing() {
    let (_d, path) = db();
    write(&path, &[], &[]);
    // A queue of 2 and a writer stuck on a lock for 300 ms: the sink must wait, not drop.
    let opts = StoreOptions {
        queue: 2,
        busy_timeout: std::time::Duration::from_millis(5),
        retries: 10,
        retry_pause: std::time::Duration::from_millis(20),
        ..Default::default()
    };
    let (mut sink, writer) = open_with(&path, TZ, opts).unwrap();
    let other = Connection::open(&path).unwrap();
    other.execute_batch("BEGIN EXCLUSIVE").unwrap();
    let holder = std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_millis(300));
        other.execute_batch("COMMIT").unwrap();
    });
    let started = std::time::Instant::now();
    for i in 0..50 {
        let c = call(&format!("q{i}"), T0 + i * 1_000_000, "8001", "13800138000", Direction::Outbound);
        sink.take(&Output::Call(CallEvent::Ended(Box::new(c)))).unwrap();
    }
    let waited = started.elapsed();
    holder.join().unwrap();
    drop(sink);
    let s = writer.close().unwrap();
    assert!(waited >= std::time::Duration::from_millis(200), "the sink did not block: {waited:?}");
    assert_eq!((s.calls, s.calls_new, s.lost), (50, 50, 0));
    assert_eq!(count(&path, "calls"), 50);
}

#[test]
fn the_sink_reports_a_stopped_writer() {
    let (_d, path) = db();
    let (mut sink, writer) = open(&path, TZ).unwrap();
    writer.close().unwrap();
    let out = Output::Call(CallEvent::Ended(Box::new(call("late", T0, "8001", "110", Direction::Outbound))));
    assert!(sink.take(&out).is_err());
    assert!(sink.flush_barrier().is_err());
}

#[test]
fn reader_errors_name_what_is_wrong() {
    let (dir, path) = db();
    let e = format!("{:#}", Reader::open(&path).err().unwrap());
    assert!(e.contains("no such database"), "{e}");
    let junk = dir.path().join("junk.db");
    std::fs::write(&junk, "this is not sqlite, just some text long enough to have a header........").unwrap();
    let e = format!("{:#}", Reader::open(&junk).err().unwrap());
    assert!(e.contains("not a database"), "{e}");
    let empty = dir.path().join("empty.db");
    Connection::open(&empty).unwrap().execute_batch("CREATE TABLE t (x)").unwrap();
    let e = format!("{:#}", Reader::open(&empty).err().unwrap());
    assert!(e.contains("not a callwarden database"), "{e}");
}

#[test]
fn a_call_at_2330_utc_is_the_next_day_in_shanghai() {
    let (_d, path) = db();
    // T0 = 2026-03-01T23:30Z = 2026-03-02 07:30 +08:00; one a minute before midnight
    // Shanghai time (15:59Z) is still the 1st.
    let early = call("early", T0 - 27_060_000_000, "8001", "13800138000", Direction::Outbound);
    let late = call("late", T0, "8001", "13800138000", Direction::Outbound);
    write(&path, &[early, late], &[]);
    let conn = Connection::open(&path).unwrap();
    let days: Vec<(String, String, String)> = conn
        .prepare("SELECT call_id, day, month FROM calls ORDER BY started_us")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(
        days,
        vec![
            ("early".into(), "2026-03-01".into(), "2026-03".into()),
            ("late".into(), "2026-03-02".into(), "2026-03".into())
        ]
    );
    let r = reader(&path);
    let tz = r.timezone().clone();
    let ids = |from: &str, to: &str| -> Vec<String> {
        let q = Filter {
            from: Some(query::range_start("from", from, &tz).unwrap()),
            to: Some(query::range_end("to", to, &tz).unwrap()),
            ..Default::default()
        };
        r.calls(&q).unwrap().into_iter().map(|c| c.call_id).collect()
    };
    assert_eq!(ids("2026-03-02", "2026-03-02"), vec!["late"]);
    assert_eq!(ids("2026-03-01", "2026-03-01"), vec!["early"]);
    assert_eq!(ids("2026-03-01", "2026-03-02"), vec!["early", "late"]);
    // The same instant named in UTC: the 1st at 23:30Z is inside [23:00Z, 24:00Z).
    assert_eq!(ids("2026-03-01T23:00:00Z", "2026-03-02T00:00:00Z"), vec!["late"]);
    let row = &r.calls(&Filter::default()).unwrap()[1];
    assert_eq!(row.started_at, "2026-03-02T07:30:00.000000+08:00");
    assert_eq!(row.ringing_at.as_deref(), Some("2026-03-02T07:30:00.200000+08:00"));
    // In UTC the same call is on the 1st.
    let utc = Reader::open(&path).unwrap().with_timezone("UTC").unwrap();
    assert_eq!(utc.calls(&Filter::default()).unwrap()[1].started_at, "2026-03-01T23:30:00.000000+00:00");
}

/// A small day of calls for the query and stats tests.
fn sample(path: &Path) {
    let min = 60_000_000;
    let out = call("out-1", T0, "8001", "13800138000", Direction::Outbound);
    let mut prem = call("prem-1", T0 + min, "8003", "16800123", Direction::Outbound);
    prem.class = Some("premium".into());
    prem.cost_fen = Some(300);
    let mut inb = call("in-1", T0 + 2 * min, "02112345678", "8002", Direction::Inbound);
    inb.rings = 4;
    inb.ring_ms = 16_000;
    inb.class = Some("local".into());
    let missed =
        unanswered(call("in-2", T0 + 3 * min, "13900001111", "8002", Direction::Inbound), EndReason::Cancelled, 487);
    let mut int = call("int-1", T0 + 4 * min, "8001", "8002", Direction::Internal);
    int.talk_ms = 200_000;
    let mut other = call("other-1", T0 + 5 * min, "8101", "50_%x", Direction::Outbound);
    other.group = None;
    other.number = "50_%x".into();
    let violations = [
        violation(&prem, "OUT-1", ViolationKind::PremiumRate, "8003", 0, Some(11_000)),
        violation(&inb, "ANS-1", ViolationKind::SlowAnswer, "8002", 16_200, None),
        violation(&int, "DUR-3", ViolationKind::LongCall, "8001", 207_200, None),
    ];
    write(path, &[out, prem, inb, missed, int, other], &violations);
}

#[test]
fn call_filters_and_paging() {
    let (_d, path) = db();
    sample(&path);
    let r = reader(&path);
    let ids = |q: Filter| -> Vec<String> { r.calls(&q).unwrap().into_iter().map(|c| c.call_id).collect() };
    let q = Filter::default;
    assert_eq!(ids(q()), vec!["out-1", "prem-1", "in-1", "in-2", "int-1", "other-1"]);
    assert_eq!(ids(Filter { ext: Some("8002".into()), ..q() }), vec!["in-1", "in-2", "int-1"]);
    assert_eq!(ids(Filter { ext: Some("8001".into()), ..q() }), vec!["out-1", "int-1"]);
    assert_eq!(ids(Filter { ext: Some("02112345678".into()), ..q() }), Vec::<String>::new(), "not ours");
    assert_eq!(ids(Filter { class: Some("premium".into()), ..q() }), vec!["prem-1"]);
    assert_eq!(ids(Filter { rule: Some("OUT-1".into()), ..q() }), vec!["prem-1"]);
    assert_eq!(ids(Filter { rule: Some("slow-answer".into()), ..q() }), vec!["in-1"]);
    assert_eq!(ids(Filter { number: Some("168".into()), ..q() }), vec!["prem-1"]);
    assert_eq!(ids(Filter { number: Some("_%".into()), ..q() }), vec!["other-1"], "LIKE wildcards are literal");
    assert_eq!(ids(Filter { group: Some("dispatch".into()), ..q() }).len(), 5);
    assert_eq!(ids(Filter { direction: Some("inbound".into()), ..q() }), vec!["in-1", "in-2"]);
    // Keyset paging, both ways.
    let page1 = r.calls(&Filter { limit: Some(4), ..q() }).unwrap();
    assert_eq!(page1.len(), 4);
    let after = page1.last().unwrap().cursor();
    assert_eq!(ids(Filter { limit: Some(4), after: Some(after.clone()), ..q() }), vec!["int-1", "other-1"]);
    assert_eq!(ids(Filter { limit: Some(2), newest_first: true, ..q() }), vec!["other-1", "int-1"]);
    assert_eq!(ids(Filter { newest_first: true, after: Some(after), ..q() }), vec!["in-1", "prem-1", "out-1"]);
    // Violations listed with their call.
    let prem = r.calls(&Filter { class: Some("premium".into()), ..q() }).unwrap();
    assert_eq!(prem[0].violations, vec![RuleKind { rule: "OUT-1".into(), kind: "premium-rate".into() }]);
    // One call in full.
    let d = r.call("in-1").unwrap().unwrap();
    assert_eq!(d.call.rings, 4);
    assert_eq!(d.ladder[0]["label"], "INVITE");
    assert_eq!(d.media_caller["packets"], 2100);
    assert_eq!(d.violation_details.len(), 1);
    assert!(r.call("nope").unwrap().is_none());
}

#[test]
fn violation_filters() {
    let (_d, path) = db();
    sample(&path);
    let r = reader(&path);
    let rules = |q: Filter| -> Vec<String> { r.violations(&q).unwrap().into_iter().map(|v| v.rule).collect() };
    let q = Filter::default;
    assert_eq!(rules(q()), vec!["OUT-1", "ANS-1", "DUR-3"]);
    assert_eq!(rules(Filter { ext: Some("8002".into()), ..q() }), vec!["ANS-1"]);
    assert_eq!(rules(Filter { class: Some("premium".into()), ..q() }), vec!["OUT-1"]);
    assert_eq!(rules(Filter { rule: Some("long-call".into()), ..q() }), vec!["DUR-3"]);
    assert_eq!(rules(Filter { number: Some("1680".into()), ..q() }), vec!["OUT-1"]);
    assert_eq!(rules(Filter { group: Some("sales".into()), ..q() }), Vec::<String>::new());
    let first = r.violations(&Filter { limit: Some(1), ..q() }).unwrap();
    assert_eq!(rules(Filter { after: Some(first[0].cursor()), ..q() }), vec!["ANS-1", "DUR-3"]);
    let tz = r.timezone().clone();
    let next_day = Filter { from: Some(query::range_start("from", "2026-03-03", &tz).unwrap()), ..q() };
    assert!(rules(next_day).is_empty());
}

#[test]
fn stats_from_the_database() {
    let (_d, path) = db();
    sample(&path);
    let r = reader(&path);
    let rows = r.stats(StatsBy::Ext, &Filter::default()).unwrap();
    let keys: Vec<_> = rows.iter().map(|r| r.key.clone().unwrap_or_default()).collect();
    assert_eq!(keys, vec!["8001", "8002", "8003", "8101"]);
    let e8002 = &rows[1];
    // in-1 (4 rings, answered), in-2 (cancelled), int-1 (answered after 2 rings).
    assert_eq!((e8002.calls, e8002.inbound, e8002.internal, e8002.missed), (3, 2, 1, 1));
    assert_eq!((e8002.answered_incoming, e8002.within_max_rings), (2, 1));
    assert_eq!(e8002.rings_before_answer.as_array(), [0, 0, 1, 0, 1, 0]);
    assert_eq!(e8002.violations.get("ANS-1"), Some(&1));
    assert_eq!(e8002.long_calls, 1, "int-1: 200 s > 180 s internal limit");
    let e8003 = &rows[2];
    assert_eq!((e8003.cost_fen, e8003.violations.get("OUT-1")), (300, Some(&1)));
    let by_day = r.stats(StatsBy::Day, &Filter::default()).unwrap();
    assert_eq!(by_day.len(), 1);
    assert_eq!(by_day[0].key.as_deref(), Some("2026-03-02"));
    assert_eq!(by_day[0].calls, 6);
    assert_eq!(by_day[0].violations.values().sum::<u64>(), 3);
    let by_group = r.stats(StatsBy::Group, &Filter::default()).unwrap();
    assert_eq!(
        by_group.iter().map(|r| (r.key.clone(), r.calls)).collect::<Vec<_>>(),
        vec![(None, 1), (Some("dispatch".into()), 5)]
    );
    let only = r.stats(StatsBy::Ext, &Filter { ext: Some("8001".into()), ..Default::default() }).unwrap();
    assert_eq!(only.len(), 1);
    assert_eq!(only[0].calls, 2);
}

#[test]
fn json_field_names_are_the_documented_ones() {
    let (_d, path) = db();
    sample(&path);
    let r = reader(&path);
    let calls = serde_json::to_value(r.calls(&Filter::default()).unwrap()).unwrap();
    let keys: Vec<&str> = calls[0].as_object().unwrap().keys().map(String::as_str).collect();
    let mut want = vec![
        "site",
        "call_id",
        "caller",
        "callee",
        "dialled",
        "number",
        "direction",
        "class",
        "group",
        "started_at",
        "ringing_at",
        "answered_at",
        "ended_at",
        "rings",
        "ring_ms",
        "talk_ms",
        "answered",
        "end_reason",
        "sip_status",
        "cost_fen",
        "recording",
        "violations",
        "answered_by",
        "transferred_to",
        "wait_ms",
        "link",
        "legs",
    ];
    let mut got = keys.clone();
    got.sort_unstable();
    want.sort_unstable();
    assert_eq!(got, want);
    let v = serde_json::to_value(r.violations(&Filter::default()).unwrap()).unwrap();
    let mut got: Vec<&str> = v[0].as_object().unwrap().keys().map(String::as_str).collect();
    got.sort_unstable();
    let mut want =
        vec!["site", "id", "rule", "kind", "call_id", "extension", "number", "detected_at", "fine_fen", "detail"];
    want.sort_unstable();
    assert_eq!(got, want);
}

/// `Reader::stats` reads only the columns a grouping uses and sums rows as they stream;
/// the answer must be what aggregating every column of every row gives.
#[test]
fn stats_streamed_equal_stats_of_full_rows() {
    let (_d, path) = db();
    sample(&path);
    let r = reader(&path);
    let conn = rusqlite::Connection::open(&path).unwrap();
    type Full = (String, Option<String>, Option<String>, Option<String>, String, String, bool, String, u32, i64);
    type Judged = (bool, bool, bool);
    let full: Vec<(Full, Option<i64>, Judged)> = conn
        .prepare(
            "SELECT direction, caller_ext, callee_ext, group_name, day, month, answered, end_reason, rings, talk_ms,
                    cost_fen, coalesce(within_max_rings, 0), coalesce(long_call, 0), coalesce(effective, 0)
             FROM calls",
        )
        .unwrap()
        .query_map([], |r| {
            Ok((
                (
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                    r.get(6)?,
                    r.get(7)?,
                    r.get(8)?,
                    r.get(9)?,
                ),
                r.get(10)?,
                (r.get(11)?, r.get(12)?, r.get(13)?),
            ))
        })
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let calls: Vec<stats::StatCall<'_>> = full
        .iter()
        .map(|((dir, ce, ee, g, day, month, answered, end, rings, talk), cost, judged)| stats::StatCall {
            direction: dir,
            caller_ext: ce.as_deref(),
            callee_ext: ee.as_deref(),
            group: g.as_deref(),
            day,
            month,
            site: None,
            answered: *answered,
            end_reason: end,
            rings: *rings,
            talk_ms: *talk,
            cost_fen: *cost,
            within_max_rings: judged.0,
            long: judged.1,
            effective: judged.2,
        })
        .collect();
    type FullV = (String, String, Option<String>, String, String);
    let fv: Vec<FullV> = conn
        .prepare(
            "SELECT v.rule, v.extension, c.group_name, v.day, v.month FROM violations v
             LEFT JOIN calls c ON c.call_id = v.call_id AND c.started_us = v.call_started_us",
        )
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let viol: Vec<stats::StatViolation<'_>> = fv
        .iter()
        .map(|(rule, ext, g, day, month)| stats::StatViolation {
            rule,
            extension: ext,
            group: g.as_deref(),
            day,
            month,
            site: None,
        })
        .collect();
    assert_eq!(calls.len(), 6);
    assert_eq!(viol.len(), 3);
    for by in [StatsBy::Ext, StatsBy::Group, StatsBy::Day, StatsBy::Month] {
        let want = stats::aggregate(by, &calls, &viol, None);
        assert!(!want.is_empty());
        assert_eq!(r.stats(by, &Filter::default()).unwrap(), want, "{by:?}");
    }
    let long: u64 = r.stats(StatsBy::Ext, &Filter::default()).unwrap().iter().map(|r| r.long_calls).sum();
    // int-1 (200 s internal, judged long when it ended) counts for 8001 and 8002.
    assert_eq!(long, 2);
}

/// A database one index behind (version 3, before 0004's stats index) is read, with the
/// same answers; one without the tables readers need, or from a newer build, is refused.
#[test]
fn older_schema_is_read_and_too_old_or_too_new_refused() {
    let (_d, path) = db();
    sample(&path);
    let want = reader(&path).stats(StatsBy::Ext, &Filter::default()).unwrap();
    let conn = Connection::open(&path).unwrap();
    conn.execute_batch("DROP INDEX calls_stats_cover").unwrap();
    conn.pragma_update(None, "user_version", 3).unwrap();
    let r = reader(&path);
    // Stats need the verdicts stored from 0006 on: an older database is refused with
    // what to do, not judged with today's config.
    let e = format!("{:#}", r.stats(StatsBy::Ext, &Filter::default()).unwrap_err());
    assert!(e.contains("schema version 3") && e.contains("callwarden replay"), "{e}");
    conn.pragma_update(None, "user_version", migrations::latest()).unwrap();
    assert_eq!(reader(&path).stats(StatsBy::Ext, &Filter::default()).unwrap(), want);
    conn.pragma_update(None, "user_version", 3).unwrap();
    assert_eq!(r.calls(&Filter::default()).unwrap().len(), 6);
    drop(r);
    // A database from before 0005 has no legs columns: its calls read as one dialog each.
    let old = tempfile::tempdir().unwrap();
    let old_path = old.path().join("v4.db");
    {
        let mut c = Connection::open(&old_path).unwrap();
        for &(v, _, sql) in migrations::MIGRATIONS.iter().filter(|m| m.0 <= 4) {
            c.execute_batch(sql).unwrap();
            c.pragma_update(None, "user_version", v).unwrap();
        }
        let tx = c.transaction().unwrap();
        tx.execute(
            "INSERT INTO calls (call_id, started_us, caller, callee, dialled, number, direction, ended_us, rings,
                 ring_ms, talk_ms, answered, end_reason, dtmf, media_caller, media_callee, ladder, day, month)
             VALUES ('old-1', 1000000, '8001', '8002', '8002', '8002', 'internal', 2000000, 0, 0, 1000, 1,
                 'caller-bye', '', '{}', '{}', '[]', '1970-01-01', '1970-01')",
            [],
        )
        .unwrap();
        tx.commit().unwrap();
    }
    let rows = reader(&old_path).calls(&Filter::default()).unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!((rows[0].legs.len(), rows[0].link.as_deref(), rows[0].wait_ms), (1, None, 0));
    assert_eq!(rows[0].legs[0].call_id, "old-1");
    conn.pragma_update(None, "user_version", 2).unwrap();
    let e = format!("{:#}", Reader::open(&path).err().unwrap());
    assert!(e.contains("schema version 2") && e.contains("upgrade it"), "{e}");
    conn.pragma_update(None, "user_version", migrations::latest() + 1).unwrap();
    let e = format!("{:#}", Reader::open(&path).err().unwrap());
    assert!(e.contains("use a newer callwarden"), "{e}");
}

/// A range read in time slices on several connections gives the rows one scan gives,
/// whatever the number of slices (the cuts fall between the sample's calls, a minute
/// apart), and `stats` itself slices a range of more than a day.
#[test]
fn stats_in_time_slices_equal_one_scan() {
    let (_d, path) = db();
    sample(&path);
    let r = reader(&path);
    let q = Filter { from: Some(Ts(T0)), to: Some(Ts(T0 + 6 * 60_000_000)), ..Filter::default() };
    for by in [StatsBy::Ext, StatsBy::Group, StatsBy::Day, StatsBy::Month] {
        let one = r.stats_sliced(by, &q, 1).unwrap();
        assert_eq!(one.iter().map(|r| r.calls).max().map(|n| n > 0), Some(true), "{by:?}");
        for slices in [2, 3, 4, 7, 500] {
            assert_eq!(r.stats_sliced(by, &q, slices).unwrap(), one, "{by:?} in {slices} slices");
        }
        let month =
            Filter { from: Some(Ts(T0 - 20 * 86_400_000_000)), to: Some(Ts(T0 + 10 * 86_400_000_000)), ..q.clone() };
        assert_eq!(r.stats(by, &month).unwrap(), one, "{by:?} over a month");
        // FilterParams on the call's record (group, class) need the violations joined to it.
        let premium = Filter { class: Some("premium".into()), group: Some("dispatch".into()), ..q.clone() };
        let rows = r.stats_sliced(by, &premium, 3).unwrap();
        assert_eq!(rows, r.stats_sliced(by, &premium, 1).unwrap(), "{by:?} premium");
        assert_eq!(rows.iter().map(|r| r.violations.get("OUT-1").copied().unwrap_or(0)).sum::<u64>(), 1, "{by:?}");
        let only = Filter { ext: Some("8002".into()), ..q.clone() };
        assert_eq!(r.stats_sliced(by, &only, 3).unwrap(), r.stats_sliced(by, &only, 1).unwrap(), "{by:?} --ext");
    }
}

/// Calls stored before 0006 are judged once, by the first writer that opens the database
/// with a config, the way stats judged them before (the README's assumptions); a second
/// open changes nothing, and a call the engine judged is never judged again.
#[test]
fn calls_stored_before_verdicts_are_judged_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v5.db");
    {
        let mut c = Connection::open(&path).unwrap();
        for &(v, _, sql) in migrations::MIGRATIONS.iter().filter(|m| m.0 <= 5) {
            c.execute_batch(sql).unwrap();
            c.pragma_update(None, "user_version", v).unwrap();
        }
        let tx = c.transaction().unwrap();
        // (id, group, direction, number, rings, talk_ms)
        for (id, group, dir, number, rings, talk) in [
            ("in-slow", Some("desk"), "inbound", "8002", 2, 20_000),
            ("in-fast", None, "inbound", "8002", 2, 40_000),
            ("out-personal", None, "outbound", "13800001111", 0, 100_000),
            ("int-long", Some("desk"), "internal", "8003", 1, 200_000),
        ] {
            tx.execute(
                "INSERT INTO calls (call_id, started_us, caller, callee, dialled, number, direction, group_name,
                     ended_us, rings, ring_ms, talk_ms, answered, end_reason, dtmf, media_caller, media_callee,
                     ladder, day, month)
                 VALUES (?1, 1000000, '8001', ?3, ?3, ?3, ?2, ?4, 2000000, ?5, 0, ?6, 1, 'caller-bye', '', '{}',
                     '{}', '[]', '1970-01-01', '1970-01')",
                rusqlite::params![id, dir, number, group, rings, talk],
            )
            .unwrap();
        }
        tx.commit().unwrap();
    }
    let cfg = callwarden_core::config::Config::parse(
        "[numbers]\npersonal = [\"138\"]\n[limits]\npersonal_max_talk_s = 60\n\
         [[group]]\nname = \"desk\"\nextensions = [\"8001-8009\"]\nmax_rings = 1\ninternal_max_talk_s = 100\n",
    )
    .unwrap();
    let opts = || StoreOptions { judge_old_calls: Some(std::sync::Arc::new(cfg.clone())), ..Default::default() };
    let (_, w) = crate::store::open_with(&path, TZ, opts()).unwrap();
    w.close().unwrap();
    let conn = Connection::open(&path).unwrap();
    // ans_rule, max_rings, within_max_rings, talk_rule, long_call, effective
    type Verdicts = (Option<String>, Option<u32>, Option<bool>, Option<String>, Option<bool>, Option<bool>);
    let judged = |id: &str| -> Verdicts {
        conn.query_row(
            "SELECT ans_rule, max_rings, within_max_rings, talk_rule, long_call, effective FROM calls WHERE call_id = ?1",
            [id],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?)),
        )
        .unwrap()
    };
    let s = |x: &str| Some(x.to_string());
    assert_eq!(judged("in-slow"), (s("ANS-2"), Some(1), Some(false), s("DUR-1"), Some(false), Some(false)));
    assert_eq!(judged("in-fast"), (s("ANS-1"), Some(3), Some(true), s("DUR-1"), Some(false), Some(true)));
    assert_eq!(judged("out-personal"), (None, None, None, s("DUR-2"), Some(true), Some(true)));
    assert_eq!(judged("int-long"), (s("ANS-2"), Some(1), Some(true), s("DUR-3"), Some(true), Some(true)));
    assert!(!crate::store::backfill::pending(&conn).unwrap());
    // Judged once: the config changes, the verdicts stay.
    conn.execute("UPDATE calls SET talk_ms = 1 WHERE call_id = 'int-long'", []).unwrap();
    let (_, w) = crate::store::open_with(&path, TZ, opts()).unwrap();
    w.close().unwrap();
    assert_eq!(judged("int-long").4, Some(true));
    let rows = reader(&path).stats(StatsBy::Month, &Filter::default()).unwrap();
    assert_eq!((rows[0].answered_incoming, rows[0].within_max_rings, rows[0].long_calls), (3, 2, 2));
}

#[test]
fn durability_sets_how_often_the_log_is_synced() {
    let dir = tempfile::tempdir().unwrap();
    for (mode, want) in [(Durability::Full, 2), (Durability::Normal, 1)] {
        let conn = Connection::open(dir.path().join("d.db")).unwrap();
        configure(&conn, &StoreOptions { durability: mode, ..Default::default() }).unwrap();
        let got: i64 = conn.query_row("PRAGMA synchronous", [], |r| r.get(0)).unwrap();
        assert_eq!(got, want, "{mode:?}");
    }
}

/// Issue 16: a call is its Call-ID, its first From tag and its start within a second.
#[test]
fn same_call_id_other_from_tag_is_another_call_and_clock_jitter_is_not() {
    let (_d, path) = db();
    let a = call("shared@pbx", T0, "8001", "13800138000", Direction::Outbound);
    // Another caller (or a B2BUA's onward leg) under the same Call-ID, 5 ms later.
    let mut b = call("shared@pbx", T0 + 5_000, "8002", "13900139000", Direction::Outbound);
    b.from_tag = "other-caller".into();
    let vb = violation(&b, "OUT-1", ViolationKind::PremiumRate, "8002", 0, None);
    let s = write(&path, &[a.clone(), b.clone()], &[vb]);
    assert_eq!((s.calls, s.calls_new), (2, 2));
    assert_eq!(count(&path, "calls"), 2, "same Call-ID, other From tag: two records");
    // The same two calls seen through other clocks (a HEP copy, a tcpdump): one row each.
    let mut a2 = a.clone();
    a2.started_at = Ts(T0 + 7_123);
    a2.end_reason = EndReason::CalleeBye;
    let mut b2 = b.clone();
    b2.started_at = Ts(T0 - 2_345);
    let s = write(&path, &[a2, b2], &[]);
    assert_eq!((s.calls, s.calls_new), (2, 0));
    let rows = all_calls(&path);
    assert_eq!(rows.len(), 2, "clock jitter is the same call");
    let by_caller = |c: &str| rows.iter().find(|r| r.caller == c).unwrap();
    assert_eq!((by_caller("8001").started_us, by_caller("8001").end_reason.as_str()), (T0, "callee-bye"));
    assert_eq!(by_caller("8002").started_us, T0 + 5_000, "b keeps its own start");
    // b's violation is b's, not a's (a started nearer to nothing: it has none).
    assert_eq!(by_caller("8001").violations.len(), 0);
    assert_eq!(by_caller("8002").violations.len(), 1);
    // Two tags in the very same microsecond stay two rows.
    let mut c = a.clone();
    c.from_tag = "third".into();
    write(&path, &[c], &[]);
    assert_eq!(count(&path, "calls"), 3);
    let mut c2 = a.clone();
    c2.from_tag = "third".into();
    c2.started_at = Ts(T0 + 300);
    assert_eq!(write(&path, &[c2], &[]).calls_new, 0, "and the moved one is found again");
    assert_eq!(count(&path, "calls"), 3);
}

/// Rows stored before migration 0007 have no From tag: they match any tag, and the
/// replay that completes them fills it in.
#[test]
fn a_row_without_from_tag_matches_any_tag() {
    let (_d, path) = db();
    let a = call("old@pbx", T0, "8001", "13800138000", Direction::Outbound);
    write(&path, std::slice::from_ref(&a), &[]);
    Connection::open(&path).unwrap().execute("UPDATE calls SET from_tag = NULL", []).unwrap();
    let mut again = a.clone();
    again.started_at = Ts(T0 + 40);
    assert_eq!(write(&path, &[again], &[]).calls_new, 0);
    assert_eq!(count(&path, "calls"), 1);
    let conn = Connection::open(&path).unwrap();
    let tag: Option<String> = conn.query_row("SELECT from_tag FROM calls", [], |r| r.get(0)).unwrap();
    assert_eq!(tag.as_deref(), Some("caller-tag"));
}

/// A site's own database names its rows with the configured site, answers a filter for
/// another site with nothing, groups stats by site in one row, and pages with cursors
/// that carry the site.
#[test]
fn rows_carry_the_configured_site() {
    let (_d, path) = db();
    sample(&path);
    let r = reader(&path).with_site("hq");
    let all = r.calls(&Filter::default()).unwrap();
    assert!(!all.is_empty() && all.iter().all(|c| c.site.as_deref() == Some("hq")));
    let hq = Filter { site: Some("hq".into()), ..Default::default() };
    let other = Filter { site: Some("branch".into()), ..Default::default() };
    assert_eq!(r.calls(&hq).unwrap(), all);
    assert!(r.calls(&other).unwrap().is_empty());
    assert!(r.violations(&other).unwrap().is_empty());
    assert!(!r.violations(&hq).unwrap().is_empty());
    assert!(r.stats(StatsBy::Ext, &other).unwrap().is_empty());
    assert!(r.recordings(&other).unwrap().is_empty());
    let by_site = r.stats(StatsBy::Site, &Filter::default()).unwrap();
    assert_eq!(by_site.len(), 1);
    assert_eq!((by_site[0].key.as_deref(), by_site[0].calls), (Some("hq"), all.len() as u64));
    let day = r.stats(StatsBy::Day, &Filter::default()).unwrap();
    assert_eq!(
        by_site[0].violations,
        day.iter().fold(Default::default(), |mut m: std::collections::BTreeMap<_, _>, d| {
            d.violations.iter().for_each(|(k, v)| *m.entry(k.clone()).or_insert(0) += v);
            m
        })
    );
    let first = r.calls(&Filter { limit: Some(1), ..Default::default() }).unwrap();
    let cursor: super::Cursor = first[0].cursor().to_string().parse().unwrap();
    assert_eq!(cursor.site.as_deref(), Some("hq"));
    let rest = r.calls(&Filter { after: Some(cursor), ..Default::default() }).unwrap();
    assert_eq!(rest, all[1..]);
    // Without a name: null, and no named site's rows are here.
    let unnamed = reader(&path).with_site(" ");
    assert!(unnamed.calls(&Filter::default()).unwrap().iter().all(|c| c.site.is_none()));
    assert!(unnamed.calls(&hq).unwrap().is_empty());
    assert_eq!(unnamed.stats(StatsBy::Site, &Filter::default()).unwrap()[0].key, None);
}
