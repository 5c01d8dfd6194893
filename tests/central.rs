//! Several sites forwarding to one central PostgreSQL (issue 18), end to end through the
//! built binary and a throwaway cluster (tests/pg_support): two sites' replays arrive
//! under their names, exactly once, with the same rows as each site's own database;
//! PostgreSQL down during a run leaves the rows queued at the site and they arrive when
//! it is back; a `kill -9` in the middle of forwarding neither loses nor doubles a row;
//! two sites with one name, and a central schema newer than the build, are refused.

mod common;
mod hep_support;
mod pg_support;

use pg_support::Pg;
use rusqlite::Connection;
use std::collections::BTreeSet;
use std::fs::File;
use std::io::{Read, Write};
use std::net::{TcpStream, UdpSocket};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_callwarden");

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn fixtures(dir: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(repo().join("tests/fixtures").join(dir))
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "pcap"))
        .collect();
    v.sort();
    v
}

struct Site {
    dir: tempfile::TempDir,
}

impl Site {
    fn new(name: &str, central: &str, extra: &str) -> Site {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("cw.toml"),
            format!(
                "[site]\nname = \"{name}\"\nextensions = [\"1000-2999\", \"8000-8999\"]\n[store]\npath = \"cw.db\"\ncentral = \"{central}\"\n{extra}\n[recordings]\ndir = \"rec\"\n"
            ),
        )
        .unwrap();
        Site { dir }
    }
    fn config(&self) -> PathBuf {
        self.dir.path().join("cw.toml")
    }
    fn replay(&self, files: &[PathBuf]) -> Output {
        Command::new(BIN)
            .args(["replay", "--json", "--no-webhooks", "--config"])
            .arg(self.config())
            .args(files)
            .env("RUST_LOG", "warn")
            .output()
            .unwrap()
    }
    fn db(&self) -> Connection {
        Connection::open(self.dir.path().join("cw.db")).unwrap()
    }
    /// The identities of the site's own rows, table by table.
    fn local_keys(&self) -> Keys {
        let db = self.db();
        let keys = |sql: &str| -> BTreeSet<String> {
            let mut st = db.prepare(sql).unwrap();
            st.query_map([], |r| r.get::<_, String>(0)).unwrap().map(Result::unwrap).collect()
        };
        Keys {
            calls: keys("SELECT call_id || '|' || started_us || '|' || end_reason || '|' || talk_ms FROM calls"),
            violations: keys("SELECT natural_key || '|' || coalesce(fine_fen, -1) FROM violations"),
            recordings: keys("SELECT id || '|' || status || '|' || coalesce(sha256, '') FROM recordings"),
        }
    }
    fn queued(&self) -> i64 {
        self.db().query_row("SELECT count(*) FROM forward_queue", [], |r| r.get(0)).unwrap()
    }
}

#[derive(Debug, PartialEq)]
struct Keys {
    calls: BTreeSet<String>,
    violations: BTreeSet<String>,
    recordings: BTreeSet<String>,
}

/// The identities of site `site`'s rows in the central store, in the same shape.
fn central_keys(pg: &Pg, site: &str) -> Keys {
    let keys = |sql: &str| -> BTreeSet<String> {
        let text = pg.psql(&sql.replace("$SITE", site));
        text.lines().filter(|l| !l.is_empty()).map(str::to_string).collect()
    };
    Keys {
        calls: keys("SELECT call_id || '|' || started_us || '|' || end_reason || '|' || talk_ms FROM calls WHERE site = '$SITE'"),
        violations: keys(
            "SELECT natural_key || '|' || coalesce(fine_fen, -1) FROM violations WHERE site = '$SITE'",
        ),
        recordings: keys(
            "SELECT id || '|' || status || '|' || coalesce(sha256, '') FROM recordings WHERE site = '$SITE'",
        ),
    }
}

fn summary(out: &Output) -> serde_json::Value {
    assert!(out.status.success(), "replay: {}\n{}", out.status, String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)))
}

#[test]
fn two_sites_forward_their_rows_once_each_under_their_names() {
    let pg = Pg::start();
    let a = Site::new("head-office", &pg.url(), "");
    let b = Site::new("branch-2", &pg.url(), "");
    let s = summary(&a.replay(&fixtures("sipp")));
    assert_eq!(s["central"]["backlog_rows"], 0, "{s}");
    assert!(s["central"]["shipped_rows"].as_u64().unwrap_or(0) > 0, "{s}");
    summary(&b.replay(&fixtures("rules")));

    let (la, lb) = (a.local_keys(), b.local_keys());
    assert!(la.calls.len() >= 10 && lb.calls.len() >= 10, "{la:?} {lb:?}");
    assert!(!lb.violations.is_empty(), "the rules captures raise violations");
    assert_eq!(central_keys(&pg, "head-office"), la);
    assert_eq!(central_keys(&pg, "branch-2"), lb);
    let total = pg.count("SELECT count(*) FROM calls");
    assert_eq!(total as usize, la.calls.len() + lb.calls.len(), "the union, nothing else");
    assert_eq!(pg.psql("SELECT name FROM sites ORDER BY name"), "branch-2\nhead-office");
    // A whole row travels: the verdicts and legs the site stored are the central ones.
    let local: String = b
        .db()
        .query_row(
            "SELECT group_concat(call_id || coalesce(ans_rule, '-') || coalesce(cost_fen, -1) || legs, ';') FROM (SELECT * FROM calls ORDER BY call_id, started_us)",
            [],
            |r| r.get(0),
        )
        .unwrap();
    let central = pg.psql(
        "SELECT string_agg(call_id || coalesce(ans_rule, '-') || coalesce(cost_fen, -1) || legs, ';' ORDER BY call_id, started_us) FROM calls WHERE site = 'branch-2'",
    );
    assert_eq!(central, local);

    // The same files again: rows are written over, never doubled; the queue empties.
    summary(&a.replay(&fixtures("sipp")));
    assert_eq!(pg.count("SELECT count(*) FROM calls"), total);
    assert_eq!(central_keys(&pg, "head-office"), la);
    assert_eq!(a.queued(), 0);
}

#[test]
fn rows_wait_at_the_site_while_the_central_store_is_down_and_arrive_once() {
    let mut pg = Pg::start();
    let a = Site::new("north", &pg.url(), "");
    let files = fixtures("sipp");
    let (first, rest) = files.split_at(files.len() / 2);
    summary(&a.replay(first));
    let before = central_keys(&pg, "north");
    assert_eq!(before, a.local_keys());

    pg.stop();
    let t = Instant::now();
    let down = a.replay(rest);
    let s = summary(&down);
    assert!(t.elapsed() < Duration::from_secs(20), "a replay does not wait for a central store that is down");
    let stderr = String::from_utf8_lossy(&down.stderr);
    assert!(stderr.contains("not yet in the central store"), "{stderr}");
    // One clear error for the outage, not one per attempt or per row.
    let errors = stderr.lines().filter(|l| l.contains("ERROR") && l.contains("central store")).count();
    assert_eq!(errors, 1, "{stderr}");
    assert!(!stderr.contains("password"), "{stderr}");
    let waiting = s["central"]["backlog_rows"].as_u64().unwrap_or(0);
    assert!(waiting > 0, "{s}");
    assert_eq!(a.queued() as u64, waiting);

    pg.start_again();
    assert_eq!(central_keys(&pg, "north"), before, "nothing arrived while it was down");
    // The next run ships the backlog first (here a replay of a file already stored).
    let s = summary(&a.replay(&first[..1]));
    assert_eq!(s["central"]["backlog_rows"], 0, "{s}");
    assert_eq!(central_keys(&pg, "north"), a.local_keys(), "every row, once");
    assert_eq!(pg.count("SELECT count(*) FROM calls"), a.local_keys().calls.len() as i64);
}

/// A process this test started: killed (by its pid) and reaped if the test ends before
/// it does, a failed assertion included.
struct Proc(Child);

impl std::ops::Deref for Proc {
    type Target = Child;
    fn deref(&self) -> &Child {
        &self.0
    }
}

impl std::ops::DerefMut for Proc {
    fn deref_mut(&mut self) -> &mut Child {
        &mut self.0
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// `callwarden run` with no capture source: it only forwards the site's backlog.
fn start_daemon(site: &Site) -> Proc {
    Proc(
        Command::new(BIN)
            .args(["run", "--config"])
            .arg(site.config())
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(File::create(site.dir.path().join("daemon.log")).unwrap())
            .spawn()
            .unwrap(),
    )
}

#[test]
fn kill_9_in_the_middle_of_forwarding_loses_and_doubles_nothing() {
    let mut pg = Pg::start();
    // One row per batch: the backlog takes hundreds of transactions to ship.
    let a = Site::new("east", &pg.url(), "forward_batch = 1");
    let mut files = fixtures("sipp");
    summary(&a.replay(&files[..1])); // the central schema is made
    pg.stop();
    files.extend(fixtures("rules"));
    files.push(repo().join("tests/fixtures/public/gen-synth-100-calls.pcap"));
    summary(&a.replay(&files));
    let backlog = a.queued();
    assert!(backlog > 200, "{backlog}");
    pg.start_again();

    let mut kills = 0;
    let mut partial = 0;
    for _ in 0..5 {
        if a.queued() == 0 {
            break;
        }
        let before = pg.count("SELECT count(*) FROM calls") + pg.count("SELECT count(*) FROM violations");
        let mut d = start_daemon(&a);
        let t = Instant::now();
        // Kill it as soon as rows have started to arrive.
        loop {
            let now = pg.count("SELECT count(*) FROM calls") + pg.count("SELECT count(*) FROM violations");
            if now > before {
                break;
            }
            assert!(t.elapsed() < Duration::from_secs(20), "nothing forwarded in 20 s");
            std::thread::sleep(Duration::from_millis(5));
        }
        // SAFETY: kill(2) on the pid of the child this test started.
        unsafe { libc::kill(d.id() as i32, libc::SIGKILL) };
        let _ = d.wait();
        kills += 1;
        if a.queued() > 0 {
            partial += 1;
        }
    }
    assert!(kills >= 1 && partial >= 1, "killed {kills} times, {partial} with rows still queued");
    eprintln!("backlog {backlog} rows; killed {kills} times, {partial} with rows still queued");
    // Then let one run finish the backlog.
    let mut d = start_daemon(&a);
    let t = Instant::now();
    while a.queued() > 0 {
        assert!(t.elapsed() < Duration::from_secs(60), "backlog not shipped in 60 s: {}", a.queued());
        std::thread::sleep(Duration::from_millis(50));
    }
    // SAFETY: as above.
    unsafe { libc::kill(d.id() as i32, libc::SIGTERM) };
    let _ = d.wait();
    assert_eq!(central_keys(&pg, "east"), a.local_keys());
    let local_calls = a.local_keys().calls.len() as i64;
    assert_eq!(pg.count("SELECT count(*) FROM calls"), local_calls);
}

#[test]
fn two_sites_with_one_name_and_a_newer_central_schema_are_refused() {
    let pg = Pg::start();
    let a = Site::new("twin", &pg.url(), "");
    let b = Site::new("twin", &pg.url(), "");
    let files = fixtures("sipp");
    summary(&a.replay(&files[..2]));
    let out = b.replay(&files[2..4]);
    let s = summary(&out);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("belongs to another site database"), "{stderr}");
    assert!(s["central"]["backlog_rows"].as_u64().unwrap_or(0) > 0, "{s}");
    // Only a's rows are there under the name.
    assert_eq!(central_keys(&pg, "twin"), a.local_keys());

    // A central store migrated by a newer build: refused, nothing written.
    pg.psql("INSERT INTO callwarden_schema (version, name) VALUES (99, '0099_future')");
    let before = pg.count("SELECT count(*) FROM calls");
    let out = a.replay(&files[4..6]);
    summary(&out);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("schema version 99, newer than this build"), "{stderr}");
    assert_eq!(pg.count("SELECT count(*) FROM calls"), before);

    // A site database renamed in the config is refused at start, before anything.
    let renamed = Site { dir: a.dir };
    let cfg = std::fs::read_to_string(renamed.config()).unwrap().replace("name = \"twin\"", "name = \"other\"");
    std::fs::write(renamed.config(), cfg).unwrap();
    let out = renamed.replay(&files[..1]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("holds the rows of site \"twin\""), "{stderr}");
}

fn http_get(addr: &str, path: &str) -> String {
    String::from_utf8_lossy(&http_get_as(addr, path, None)).into_owned()
}

/// GET with a bearer token; the whole answer (head and body) as bytes.
fn http_get_as(addr: &str, path: &str, token: Option<&str>) -> Vec<u8> {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let auth = token.map(|t| format!("Authorization: Bearer {t}\r\n")).unwrap_or_default();
    write!(s, "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{auth}Connection: close\r\n\r\n").unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).unwrap();
    out
}

/// Status and body of an HTTP answer.
fn split_answer(a: &[u8]) -> (u16, Vec<u8>) {
    let at = a.windows(4).position(|w| w == b"\r\n\r\n").unwrap_or(a.len());
    let head = String::from_utf8_lossy(&a[..at]);
    let status = head.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    (status, a.get(at + 4..).unwrap_or_default().to_vec())
}

fn body_json(resp: &str) -> serde_json::Value {
    let body = resp.split("\r\n\r\n").nth(1).unwrap_or("");
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {resp}"))
}

/// The address logged after `key=` on the first log line containing `what`.
fn logged(log: &std::path::Path, what: &str, key: &str) -> Option<String> {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let line = text.lines().find(|l| l.contains(what))?;
    let at = line.find(key)? + key.len();
    line[at..].split_whitespace().next().map(str::to_string)
}

#[test]
fn a_live_site_stores_through_a_central_outage_and_catches_up() {
    let mut pg = Pg::start();
    let a = Site::new("live", &pg.url(), "");
    let cfg = std::fs::read_to_string(a.config()).unwrap()
        + "[capture]\nhep_listen = \"127.0.0.1:0\"\n[api]\nlisten = \"127.0.0.1:0\"\n";
    std::fs::write(a.config(), cfg).unwrap();
    let mut d = start_daemon(&a);
    let log = a.dir.path().join("daemon.log");
    let t = Instant::now();
    let (hep, http) = loop {
        if let (Some(h), Some(w)) =
            (logged(&log, "receiving HEP", "listen="), logged(&log, "serving /metrics", "listen="))
        {
            break (h, w);
        }
        assert!(
            t.elapsed() < Duration::from_secs(15),
            "not ready:\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
    let datagrams = hep_support::hep_datagrams();
    let send = |ps: &[Vec<u8>]| {
        for p in ps {
            let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap();
            let mut p = p.clone();
            hep_support::restamp(&mut p, now.as_secs() as u32, now.subsec_micros());
            tx.send_to(&p, &hep).unwrap();
            std::thread::sleep(Duration::from_millis(2));
        }
    };
    // Connected first (the schema made, the site registered)...
    let t = Instant::now();
    while body_json(&http_get(&http, "/api/central"))["up"] != true {
        assert!(t.elapsed() < Duration::from_secs(15), "never connected to the central store");
        std::thread::sleep(Duration::from_millis(100));
    }
    // ...then the central store goes away while calls come in: the site goes on storing
    // them, and says so.
    pg.stop();
    send(&datagrams);
    let t = Instant::now();
    loop {
        let s = body_json(&http_get(&http, "/api/central"));
        if s["up"] == false && s["backlog_rows"].as_u64().unwrap_or(0) > 0 {
            assert_eq!(s["configured"], true);
            assert_eq!(s["site"], "live");
            assert!(!s["last_error"].as_str().unwrap_or("").is_empty(), "{s}");
            break;
        }
        assert!(t.elapsed() < Duration::from_secs(20), "no backlog shown: {s}");
        std::thread::sleep(Duration::from_millis(200));
    }
    let m = http_get(&http, "/metrics");
    assert!(m.contains("callwarden_forward_up 0"), "{m}");
    let backlog_line = m.lines().find(|l| l.starts_with("callwarden_forward_backlog_rows ")).unwrap_or("");
    assert!(!backlog_line.ends_with(" 0"), "{backlog_line}");
    assert!(!a.local_keys().calls.is_empty(), "calls stored locally during the outage");

    // Back: the backlog leaves in order and the site's rows are all there, once.
    pg.start_again();
    let t = Instant::now();
    loop {
        let s = body_json(&http_get(&http, "/api/central"));
        if s["up"] == true && s["backlog_rows"] == 0 {
            break;
        }
        assert!(t.elapsed() < Duration::from_secs(90), "backlog not shipped after the outage: {s}");
        std::thread::sleep(Duration::from_millis(200));
    }
    // SAFETY: kill(2) on the pid of the child this test started.
    unsafe { libc::kill(d.id() as i32, libc::SIGTERM) };
    let st = d.wait().unwrap();
    assert!(st.success(), "{}", std::fs::read_to_string(&log).unwrap_or_default());
    assert_eq!(central_keys(&pg, "live"), a.local_keys());
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    let errors = text.lines().filter(|l| l.contains("ERROR") && l.contains("central store")).count();
    assert!((1..=3).contains(&errors), "one error per change of state, not per retry ({errors}):\n{text}");
}

/// A site with the rule fixtures' groups (8020 may not dial long distance: OUT-2).
fn rules_site(name: &str, central: &str) -> Site {
    let dir = tempfile::tempdir().unwrap();
    let site = common::SITE.replacen("[site]\n", &format!("[site]\nname = \"{name}\"\n"), 1);
    std::fs::write(
        dir.path().join("cw.toml"),
        format!("{site}\n[store]\npath = \"cw.db\"\ncentral = \"{central}\"\napprovals_pull_s = 1\n[recordings]\ndir = \"rec\"\n"),
    )
    .unwrap();
    Site { dir }
}

fn out_2_of_8020(site: &Site) -> i64 {
    site.db()
        .query_row("SELECT count(*) FROM violations WHERE rule = 'OUT-2' AND extension = '8020'", [], |r| r.get(0))
        .unwrap()
}

#[test]
fn an_approval_made_centrally_reaches_its_site_and_survives_an_outage() {
    let mut pg = Pg::start();
    let outbound = vec![repo().join("tests/fixtures/rules/outbound.pcap")];
    let inbound = vec![repo().join("tests/fixtures/rules/inbound.pcap")];
    // Both sites known centrally (their first replay registers them).
    let a = rules_site("approved", &pg.url());
    let b = rules_site("not-approved", &pg.url());
    summary(&a.replay(&inbound));
    summary(&b.replay(&inbound));
    // Central approvals (`approve --store`): 8020 may dial long distance, at site
    // "approved" only; and one for every site that is revoked before anyone replays.
    let approve = |args: &[&str]| {
        let out = Command::new(BIN)
            .arg("approve")
            .args(args)
            .args(["--store", &pg.url(), "--config"])
            .arg(a.config())
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let range = ["--from", "2020-01-01", "--until", "2030-12-31", "--approver", "head office"];
    let (code, said, err) =
        approve(&[&["8020", "long-distance"][..], &range, &["--note", "matter 7", "--site", "approved"]].concat());
    assert_eq!(code, Some(0), "{err}");
    assert!(said.contains("at approved"), "{said}");
    let (code, said, _) = approve(&[&["8002", "long-distance"][..], &range].concat());
    assert_eq!(code, Some(0));
    assert!(said.contains("at every site"), "{said}");
    let id_8002 = said.split_whitespace().nth(2).unwrap_or("").trim_end_matches(':').to_string();
    assert_eq!(approve(&["--revoke", &id_8002]).0, Some(0));
    assert_eq!(approve(&["--revoke", &id_8002]).0, Some(1), "revoked already");
    let (code, _, err) = approve(&[&["8020", "premium"][..], &range].concat());
    assert_eq!(code, Some(2), "premium can never be approved: {err}");
    let (_, listed, _) = approve(&["--list", "--json"]);
    let listed: serde_json::Value = serde_json::from_str(&listed).unwrap();
    assert_eq!(listed.as_array().map(Vec::len), Some(1), "{listed}");
    assert_eq!((&listed[0]["site"], &listed[0]["extension"]), (&"approved".into(), &"8020".into()));
    summary(&a.replay(&outbound));
    summary(&b.replay(&outbound));
    assert_eq!(out_2_of_8020(&a), 0, "the central approval covered 8020 at its site");
    assert_eq!(out_2_of_8020(&b), 1, "not at the other site");
    let flagged_8002 = |s: &Site| -> i64 {
        s.db()
            .query_row("SELECT count(*) FROM violations WHERE rule = 'OUT-2' AND extension = '8002'", [], |r| r.get(0))
            .unwrap()
    };
    assert_eq!((flagged_8002(&a), flagged_8002(&b)), (1, 1), "a revoked approval covers nothing");
    // The site's copy, as `approve --list` shows it.
    let list = Command::new(BIN).args(["approve", "--list", "--json", "--config"]).arg(a.config()).output().unwrap();
    let list: serde_json::Value = serde_json::from_slice(&list.stdout).unwrap();
    assert_eq!(list.as_array().map(Vec::len), Some(1), "{list}");
    assert_eq!((&list[0]["extension"], &list[0]["approver"]), (&"8020".into(), &"head office".into()));
    // The dispatch phones are recorded: their recordings' rows (hash and status) are
    // central too, the files stay at the site.
    let keys = a.local_keys();
    assert!(!keys.recordings.is_empty());
    assert_eq!(central_keys(&pg, "approved"), keys);

    // The central store goes away: the site judges the same calls again (their records
    // cleared here) with its last copy of the approvals.
    pg.stop();
    let fresh = a.db().execute("DELETE FROM violations", []).unwrap();
    assert!(fresh > 0);
    a.db().execute("DELETE FROM calls", []).unwrap();
    let out = a.replay(&outbound);
    summary(&out);
    assert_eq!(out_2_of_8020(&a), 0, "judged with the last copy while the central store is down");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("judging with the last copy"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_wrong_password_is_one_clear_error_and_the_rows_wait() {
    let pg = Pg::start_with_password("right horse battery");
    let wrong = "wrong-secret-7";
    let a = Site::new("pw", &pg.url(), "central_password_file = \"central.pass\"");
    std::fs::write(a.dir.path().join("central.pass"), format!("{wrong}\n")).unwrap();
    let files = fixtures("sipp");
    let out = a.replay(&files[..3]);
    let s = summary(&out);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("password authentication failed"), "{stderr}");
    assert!(!stderr.contains(wrong), "the password is never logged: {stderr}");
    assert!(s["central"]["backlog_rows"].as_u64().unwrap_or(0) > 0, "{s}");
    assert!(!a.local_keys().calls.is_empty(), "stored locally all the same");

    // The right password (from the file; PGPASSWORD would do too): the backlog goes.
    std::fs::write(a.dir.path().join("central.pass"), "right horse battery\n").unwrap();
    let s = summary(&a.replay(&files[3..4]));
    assert_eq!(s["central"]["backlog_rows"], 0, "{s}");
    assert_eq!(central_keys(&pg, "pw"), a.local_keys());
}

/// `callwarden serve --store URL` with `config` on an ephemeral port, its log in `log`:
/// the process and the address it serves on.
fn start_serve(url: &str, config: &std::path::Path, log: &std::path::Path) -> (Proc, String) {
    let serve = Proc(
        Command::new(BIN)
            .args(["serve", "--listen", "127.0.0.1:0", "--store", url, "--config"])
            .arg(config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(File::create(log).unwrap())
            .spawn()
            .unwrap(),
    );
    let t = Instant::now();
    loop {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        if let Some(rest) = text.split("http://").nth(1) {
            return (serve, rest.split_whitespace().next().unwrap_or("").trim_end_matches('/').to_string());
        }
        assert!(t.elapsed() < Duration::from_secs(15), "serve not ready: {text}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_recording_is_played_centrally_from_its_site_checked_and_logged() {
    use sha2::{Digest, Sha256};
    let pg = Pg::start();
    // A site whose dispatch phones are recorded, with an API and an auditor token for
    // the central API.
    let site = rules_site("rec-site", &pg.url());
    let text = std::fs::read_to_string(site.config()).unwrap()
        + "[api]\nlisten = \"127.0.0.1:0\"\n[[api.token]]\nname = \"central-hq\"\ntoken = \"site-secret\"\nrole = \"auditor\"\n";
    std::fs::write(site.config(), text).unwrap();
    summary(&site.replay(&[repo().join("tests/fixtures/rules/outbound.pcap")]));
    let (id, sha, path): (String, String, String) = site
        .db()
        .query_row("SELECT id, sha256, path FROM recordings WHERE status = 'complete' ORDER BY id LIMIT 1", [], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })
        .unwrap();
    let mut d = start_daemon(&site);
    let log = site.dir.path().join("daemon.log");
    let t = Instant::now();
    let site_http = loop {
        if let Some(a) = logged(&log, "serving /metrics", "listen=") {
            break a;
        }
        assert!(t.elapsed() < Duration::from_secs(15), "site not ready");
        std::thread::sleep(Duration::from_millis(50));
    };

    // The central serve: its own auditor, and the site's API with the site's token.
    let hq = tempfile::tempdir().unwrap();
    std::fs::write(hq.path().join("site.token"), "site-secret\n").unwrap();
    std::fs::write(
        hq.path().join("hq.toml"),
        format!(
            "[api]\n[[api.token]]\nname = \"auditor-li\"\ntoken = \"hq-secret\"\nrole = \"auditor\"\n[[api.site]]\nname = \"rec-site\"\nurl = \"http://{site_http}\"\ntoken_file = \"site.token\"\n"
        ),
    )
    .unwrap();
    let (mut serve, central) = start_serve(&pg.url(), &hq.path().join("hq.toml"), &hq.path().join("serve.log"));
    let audio = format!("/api/recordings/{id}/audio");

    // Played centrally: the site's file, byte for byte, its hash the stored one.
    let (status, body) = split_answer(&http_get_as(&central, &audio, Some("hq-secret")));
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let file = std::fs::read(site.dir.path().join("rec").join(&path)).unwrap();
    assert_eq!(body, file);
    let got: String = Sha256::digest(&body).iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(got, sha);
    // Logged centrally (who listened) and at the site (the central API's token).
    assert_eq!(
        pg.psql(&format!("SELECT site || '|' || who || '|' || via FROM playback_log WHERE recording_id = '{id}'")),
        "rec-site|auditor-li|central"
    );
    let site_log: String = site
        .db()
        .query_row("SELECT group_concat(who) FROM playback_log WHERE recording_id = ?1", [&id], |r| r.get(0))
        .unwrap();
    assert_eq!(site_log, "central-hq");

    // Its waveform, asked of the site: the site's own answer, and no playback logged
    // (no audio left the site).
    let peaks = format!("/api/recordings/{id}/peaks?n=50");
    let (status, body) = split_answer(&http_get_as(&central, &peaks, Some("hq-secret")));
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let (_, at_site) = split_answer(&http_get_as(&site_http, &peaks, Some("site-secret")));
    let central_peaks: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(central_peaks, serde_json::from_slice::<serde_json::Value>(&at_site).unwrap());
    assert_eq!(central_peaks["peaks"][0].as_array().map(Vec::len), Some(50), "{central_peaks}");
    assert_eq!(pg.count(&format!("SELECT count(*) FROM playback_log WHERE recording_id = '{id}'")), 1);

    // The file altered at the site: not served (the site refuses it, and the central
    // hash check would too).
    let mut bad = file.clone();
    let last = bad.len() - 1;
    bad[last] ^= 0x55;
    std::fs::write(site.dir.path().join("rec").join(&path), &bad).unwrap();
    let (status, body) = split_answer(&http_get_as(&central, &audio, Some("hq-secret")));
    assert!(status == 502 || status == 409, "{status} {}", String::from_utf8_lossy(&body));
    let (status, body) = split_answer(&http_get_as(&central, &peaks, Some("hq-secret")));
    assert_eq!(status, 502, "the site refuses the altered file's peaks: {}", String::from_utf8_lossy(&body));
    std::fs::write(site.dir.path().join("rec").join(&path), &file).unwrap();

    // The site down: the central API says which site cannot be reached.
    // SAFETY: kill(2) on the pid of the child this test started.
    unsafe { libc::kill(d.id() as i32, libc::SIGTERM) };
    let _ = d.wait();
    let (status, body) = split_answer(&http_get_as(&central, &audio, Some("hq-secret")));
    assert_eq!(status, 502);
    let msg = String::from_utf8_lossy(&body);
    assert!(msg.contains("rec-site") && msg.contains("cannot be reached"), "{msg}");
    // SAFETY: as above.
    unsafe { libc::kill(serve.id() as i32, libc::SIGTERM) };
    let _ = serve.wait();

    // The site's recordings folder mounted at the centre instead ([[api.site]] dir): played
    // with the site down, checked against the same hash; altered, refused.
    std::fs::write(
        hq.path().join("hq-dir.toml"),
        format!(
            "[api]\n[[api.token]]\nname = \"auditor-li\"\ntoken = \"hq-secret\"\nrole = \"auditor\"\n[[api.site]]\nname = \"rec-site\"\ndir = \"{}\"\n",
            site.dir.path().join("rec").display()
        ),
    )
    .unwrap();
    let (mut serve, central) = start_serve(&pg.url(), &hq.path().join("hq-dir.toml"), &hq.path().join("serve-dir.log"));
    let (status, body) = split_answer(&http_get_as(&central, &audio, Some("hq-secret")));
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    assert_eq!(body, file);
    let (status, body) = split_answer(&http_get_as(&central, &peaks, Some("hq-secret")));
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    assert_eq!(serde_json::from_slice::<serde_json::Value>(&body).unwrap(), central_peaks, "the site's own peaks");
    std::fs::write(site.dir.path().join("rec").join(&path), &bad).unwrap();
    let (status, body) = split_answer(&http_get_as(&central, &audio, Some("hq-secret")));
    assert_eq!(status, 409, "{}", String::from_utf8_lossy(&body));
    // SAFETY: kill(2) on the pid of the child this test started.
    unsafe { libc::kill(serve.id() as i32, libc::SIGTERM) };
    let _ = serve.wait();
}

/// What `stats_rollup` and `violation_rollup` must hold: the same sums made afresh from
/// the rows (as stats::Aggregator counts a call: the call itself under ext '', and each of
/// our extensions on it with its role), compared column by column. The mismatching keys.
const ROLLUP_MISMATCHES: &str = "
WITH parts AS (
    SELECT c.*, '' AS xt, TRUE AS called, TRUE AS pays FROM calls c
    UNION ALL SELECT c.*, c.caller_ext, c.callee_ext IS NOT DISTINCT FROM c.caller_ext, TRUE
        FROM calls c WHERE c.caller_ext IS NOT NULL
    UNION ALL SELECT c.*, c.callee_ext, TRUE, FALSE
        FROM calls c WHERE c.callee_ext IS NOT NULL AND c.callee_ext IS DISTINCT FROM c.caller_ext
), expect AS (
    SELECT site, day, coalesce(group_name, '') AS gk, direction, coalesce(class, '') AS ck, xt,
        count(*) AS calls,
        count(*) FILTER (WHERE direction = 'inbound') AS inbound,
        count(*) FILTER (WHERE direction = 'outbound') AS outbound,
        count(*) FILTER (WHERE direction = 'internal') AS internal,
        count(*) FILTER (WHERE answered <> 0) AS answered,
        count(*) FILTER (WHERE direction IN ('inbound', 'internal') AND called AND answered = 0
            AND end_reason IN ('cancelled', 'busy', 'rejected', 'no-answer', 'timeout')) AS missed,
        count(*) FILTER (WHERE direction IN ('inbound', 'internal') AND called AND answered <> 0) AS ai,
        count(*) FILTER (WHERE direction IN ('inbound', 'internal') AND called AND answered <> 0
            AND coalesce(within_max_rings, 0) <> 0) AS within,
        array_agg(least(rings, 5) ORDER BY least(rings, 5))
            FILTER (WHERE direction IN ('inbound', 'internal') AND called AND answered <> 0) AS rings,
        count(*) FILTER (WHERE answered <> 0 AND coalesce(effective, 0) <> 0) AS effective,
        count(*) FILTER (WHERE answered <> 0 AND coalesce(long_call, 0) <> 0) AS long_calls,
        coalesce(sum(cost_fen) FILTER (WHERE pays), 0) AS cost,
        coalesce(sum(talk_ms) FILTER (WHERE answered <> 0), 0) AS talk_sum,
        max(talk_ms) FILTER (WHERE answered <> 0) AS talk_max,
        array_agg(bucket ORDER BY bucket) FILTER (WHERE answered <> 0) AS buckets
    FROM (SELECT *, width_bucket(talk_ms, ARRAY[1000,2000,3000,5000,7000,10000,15000,20000,30000,45000,60000,
            90000,120000,150000,180000,240000,300000,420000,600000,900000,1200000,1800000,2700000,3600000,
            5400000,7200000,10800000]::bigint[]) AS bucket FROM parts) p
    GROUP BY 1, 2, 3, 4, 5, 6
), have AS (
    SELECT r.*,
        (SELECT array_agg(least(k - 1, 5) ORDER BY k) FROM unnest(ARRAY[r0, r1, r2, r3, r4, r5]) WITH ORDINALITY
            AS u(n, k), generate_series(1, n) WHERE n > 0) AS rings_list,
        (SELECT array_agg(k - 1 ORDER BY k) FROM unnest(ARRAY[h0, h1, h2, h3, h4, h5, h6, h7, h8, h9, h10, h11,
            h12, h13, h14, h15, h16, h17, h18, h19, h20, h21, h22, h23, h24, h25, h26, h27]) WITH ORDINALITY
            AS u(n, k), generate_series(1, n) WHERE n > 0) AS bucket_list
    FROM stats_rollup r WHERE calls <> 0
)
SELECT coalesce(e.site || e.day || e.gk || e.direction || e.ck || '/' || e.xt,
                h.site || h.day || h.group_key || h.direction || h.class_key || '/' || h.ext)
FROM expect e FULL JOIN have h
    ON (e.site, e.day, e.gk, e.direction, e.ck, e.xt) = (h.site, h.day, h.group_key, h.direction, h.class_key, h.ext)
WHERE e.calls IS NULL OR h.calls IS NULL
   OR (e.calls, e.inbound, e.outbound, e.internal, e.answered, e.missed, e.ai, e.within, e.effective,
       e.long_calls, e.cost, e.answered, e.talk_sum, e.talk_max)
      IS DISTINCT FROM (h.calls, h.inbound, h.outbound, h.internal, h.answered, h.missed, h.answered_incoming,
       h.within_max_rings, h.effective, h.long_calls, h.cost_fen, h.talk_n, h.talk_sum, h.talk_max)
   OR coalesce(e.rings, '{}') IS DISTINCT FROM coalesce(h.rings_list::bigint[], '{}')
   OR coalesce(e.buckets, '{}') IS DISTINCT FROM coalesce(h.bucket_list::int[], '{}')
UNION ALL
SELECT 'violation ' || coalesce(e.site || e.day || e.rule || e.extension || '/' || e.group_key || '/' || e.class_key,
    h.site || h.day || h.rule || h.extension || '/' || h.group_key || '/' || h.class_key)
FROM (SELECT v.site, v.day, v.rule, v.extension, coalesce(c.group_name, '') AS group_key,
        coalesce(c.class, '') AS class_key, count(*) AS n
      FROM violations v LEFT JOIN calls c
        ON c.site = v.site AND c.call_id = v.call_id AND c.started_us = v.call_started_us
      GROUP BY 1, 2, 3, 4, 5, 6) e
FULL JOIN (SELECT * FROM violation_rollup WHERE n <> 0) h USING (site, day, rule, extension, group_key, class_key)
WHERE e.n IS DISTINCT FROM h.n";

/// The stats rollups (central migration 0012) stay exactly the sums of the rows through
/// inserts, the forwarder's upserts that change a call, updates that take a rollup row's
/// longest talk away, and deletes; and they start from the rows already there when the
/// migration runs on a store that has some.
#[test]
fn stats_rollups_stay_the_sums_of_the_rows() {
    let pg = Pg::start();
    // A store at 0011 with rows in it: 0012's backfill counts them.
    let mut client = callwarden::store::central::Central::from_url(&pg.url()).unwrap().connect().unwrap();
    client
        .batch_execute("CREATE TABLE callwarden_schema (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())")
        .unwrap();
    for (v, name, sql) in callwarden::store::central::MIGRATIONS.iter().filter(|m| m.0 <= 11) {
        client.batch_execute(sql).unwrap();
        client.execute("INSERT INTO callwarden_schema (version, name) VALUES ($1, $2)", &[v, name]).unwrap();
    }
    pg.psql("INSERT INTO sites VALUES ('s1', 'i1', 'Asia/Shanghai', 0, 0), ('s2', 'i2', 'Asia/Shanghai', 0, 0)");
    // 3,000 calls over six days and two sites: every direction, group or none, class or
    // none, one or both ends ours (some calling themselves), talk from 0 to over 3 h,
    // answered or not with each end reason, rings 0..9, costs and verdicts varied.
    let insert = |from: i64, to: i64| {
        format!(
            "INSERT INTO calls (site, call_id, started_us, caller, callee, dialled, number, direction, class, group_name,
                 caller_ext, callee_ext, ended_us, rings, ring_ms, talk_ms, answered, end_reason, cost_fen, dtmf,
                 media_caller, media_callee, ladder, day, month, within_max_rings, long_call, effective)
             SELECT CASE WHEN g % 2 = 0 THEN 's1' ELSE 's2' END, 'c' || g, 1772407800000000 + g * 170000000::bigint,
                 'a', 'b', 'd', 'n',
                 (ARRAY['inbound', 'outbound', 'internal', 'transit'])[g % 4 + 1],
                 CASE WHEN g % 6 = 0 THEN NULL ELSE 'k' || (g % 3) END,
                 CASE WHEN g % 5 = 0 THEN NULL ELSE 'g' || (g % 4) END,
                 CASE WHEN g % 3 = 0 THEN NULL ELSE '80' || (g % 9) END,
                 CASE WHEN g % 7 = 1 THEN NULL WHEN g % 13 = 0 THEN '80' || (g % 9) ELSE '81' || (g % 5) END,
                 0, g % 10, 0, ((g * 7919) % 900000) * (1 + (g % 17 = 0)::int * 20), (g % 4 <> 0)::int,
                 (ARRAY['cancelled', 'caller-bye', 'busy', 'timeout', 'rejected', 'no-answer', 'error'])[g % 7 + 1],
                 CASE WHEN g % 8 = 0 THEN NULL ELSE g % 50 END, '', '{{}}', '{{}}', '[]',
                 to_char(to_timestamp((1772407800000000 + g * 170000000::bigint) / 1000000.0) AT TIME ZONE 'Asia/Shanghai', 'YYYY-MM-DD'),
                 to_char(to_timestamp((1772407800000000 + g * 170000000::bigint) / 1000000.0) AT TIME ZONE 'Asia/Shanghai', 'YYYY-MM'),
                 CASE WHEN g % 9 = 0 THEN NULL ELSE (g % 7 <= 3)::int END, (g % 11 = 0)::int, (g % 3 <> 0)::int
             FROM generate_series({from}::bigint, {to}) g
             ON CONFLICT (site, call_id, started_us) DO UPDATE SET talk_ms = excluded.talk_ms + 1, answered = 1,
                 rings = excluded.rings + 1, direction = 'internal', cost_fen = NULL"
        )
    };
    pg.psql(&insert(1, 1500));
    let violations = "INSERT INTO violations (site, id, natural_key, rule, kind, call_id, call_started_us, extension,
             number, detected_us, detail, day, month)
         SELECT site, row_number() OVER (), call_id || '/' || rule, rule, 'k', call_id, started_us,
             coalesce(caller_ext, callee_ext, ''), number, started_us, '', day, month
         FROM calls, (VALUES ('OUT-1'), ('ANS-1')) r(rule) WHERE call_id LIKE '%3' OR call_id LIKE '%7'
         ON CONFLICT DO NOTHING";
    pg.psql(violations);
    // A reader of this build refuses the older store (its rollups are not there yet) and
    // says how to move on; it never migrates.
    let central = callwarden::store::central::Central::from_url(&pg.url()).unwrap();
    let refused = callwarden::store::central::read::CentralReader::open(&central, "Asia/Shanghai").err().unwrap();
    assert!(format!("{refused:#}").contains("schema version 11, older than this build reads"), "{refused:#}");
    let mut client = central.connect().unwrap();
    assert_eq!(callwarden::store::central::migrate(&mut client).unwrap(), 11, "was at 0011");
    let mismatches = |when: &str| {
        let m = pg.psql(ROLLUP_MISMATCHES);
        if !m.is_empty() {
            let dbg = ROLLUP_MISMATCHES.split("UNION ALL\nSELECT 'violation").next().unwrap_or("").replace(
                "SELECT coalesce(e.site || e.day",
                "SELECT e::text || ' HAVE ' || h::text, coalesce(e.site || e.day",
            );
            eprintln!("{}", pg.psql(&dbg).lines().take(3).collect::<Vec<_>>().join("\n"));
        }
        assert!(m.is_empty(), "{when}: rollup rows that are not the sums of the rows:\n{m}");
    };
    mismatches("backfilled");
    assert!(pg.count("SELECT count(*) FROM stats_rollup WHERE ext <> ''") > 50);
    assert_eq!(pg.count("SELECT sum(calls) FROM stats_rollup WHERE ext = ''"), 1500);

    // Violations found before their calls arrive (at the INVITE): counted under no group
    // until the call comes, then under the call's.
    pg.psql(
        "INSERT INTO violations (site, id, natural_key, rule, kind, call_id, call_started_us, extension, number,
             detected_us, detail, day, month)
         SELECT CASE WHEN g % 2 = 0 THEN 's1' ELSE 's2' END, 100000 + g, 'early' || g, 'OUT-9', 'k', 'c' || g,
             1772407800000000 + g * 170000000::bigint, '8001', 'n', 0, '',
             to_char(to_timestamp((1772407800000000 + g * 170000000::bigint) / 1000000.0) AT TIME ZONE 'Asia/Shanghai', 'YYYY-MM-DD'),
             '2026-03'
         FROM generate_series(2001::bigint, 2400) g",
    );
    mismatches("violations before their calls");
    // New rows through the triggers; the second half overlaps the first (upserts that
    // change what stats counts of a call).
    pg.psql(&insert(1001, 3000));
    pg.psql(violations);
    mismatches("inserted and upserted");
    assert_eq!(pg.count("SELECT sum(calls) FROM stats_rollup WHERE ext = ''"), 3000);
    // Shorter talk for each rollup row's longest call: the longest is counted again.
    pg.psql(
        "UPDATE calls c SET talk_ms = c.talk_ms / 3 FROM (SELECT site, day, max(talk_ms) AS m FROM calls
             WHERE answered <> 0 GROUP BY 1, 2) x WHERE c.site = x.site AND c.day = x.day AND c.talk_ms = x.m",
    );
    mismatches("longest talk shortened");
    // Moved to another group, day and extension; unanswered; the same values written again.
    pg.psql("UPDATE calls SET group_name = 'moved', day = '2026-04-01', month = '2026-04', callee_ext = '8999' WHERE started_us % 11 = 0");
    pg.psql("UPDATE calls SET answered = 0, end_reason = 'busy' WHERE talk_ms % 5 = 0");
    pg.psql("UPDATE calls SET dtmf = '1' WHERE talk_ms % 3 = 0");
    pg.psql("UPDATE violations SET rule = 'OUT-2' WHERE id % 4 = 0");
    pg.psql("UPDATE calls SET class = NULL WHERE call_id LIKE '%3'");
    mismatches("updated");
    pg.psql("DELETE FROM calls WHERE started_us % 7 = 0");
    pg.psql("DELETE FROM violations WHERE id % 5 = 0");
    mismatches("deleted");
    let left = pg.count("SELECT count(*) FROM calls");
    assert!(left < 3000 && left > 2000);
    assert_eq!(pg.count("SELECT sum(calls) FROM stats_rollup WHERE ext = ''"), left);
}
