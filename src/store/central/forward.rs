//! The forwarder: ships a site's committed rows to the central store. Triggers of
//! migration 0009 queue the rowid of every call, violation, recording and playback-log
//! row written while forwarding is on (`enable`); this thread reads the queue in commit
//! order, a batch at a time, loads the rows' current content and upserts them into
//! PostgreSQL in one transaction keyed by (site, the row's identity), then deletes those
//! queue entries. PostgreSQL down, the WAN down, a wrong password: the queue just grows
//! (on the site's disk, with the rows it points at), the error is logged once per change
//! and retried with doubling pauses up to a minute, and the backlog is shipped in order
//! once it answers again.
//! May use: the SQLite store (its own read-write connection), postgres, `Central`.
//! Invariants: a queue entry is deleted only after PostgreSQL committed its row, so a
//! crash at any point ships a row again rather than never (the upsert makes "again" a
//! no-op); rows are shipped whole and as they are now, so a later update of a row (a
//! fine completed, a recording sealed) reaches the central store too; a site database
//! belongs to one site name and a name to one site database (`sites.instance`).

use super::{migrate, pg_error, Central, CentralSchemaError};
use anyhow::{anyhow, bail, Context};
use postgres::Client;
use rusqlite::types::ValueRef;
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use serde_json::{Map, Value};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The tables forwarded, in the order a batch writes them, with the columns that are a
/// row's identity in the central store (after `site`) and the SQLite columns not shipped.
const TABLES: &[(&str, &[&str], &[&str])] = &[
    ("calls", &["call_id", "started_us"], &["id"]),
    ("violations", &["natural_key"], &[]),
    ("recordings", &["id"], &[]),
    ("playback_log", &["id"], &[]),
];

/// How often an idle forwarder looks at its queue: the most a committed row waits
/// before it leaves for the central store when the link is up.
const IDLE_POLL: Duration = Duration::from_millis(250);
/// The longest pause between attempts while the central store cannot be reached.
const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// Turn forwarding on for the site database at `conn`, as site `site`: the database
/// remembers its site name (a second name is refused: its rows already went out under
/// the first) and gets an instance id of its own; when forwarding was off, every row it
/// already holds is queued, so a site that joins the central store brings its history.
/// Returns the rows queued by this call.
pub fn enable(conn: &mut Connection, site: &str) -> anyhow::Result<u64> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let meta = |k: &str| -> rusqlite::Result<Option<String>> {
        tx.query_row("SELECT value FROM meta WHERE key = ?1", [k], |r| r.get(0)).optional()
    };
    if let Some(was) = meta("site")? {
        if was != site {
            bail!(
                "site.name: this database holds the rows of site {was:?}, which went to the central store under that name; [site] name says {site:?} (give it back its name, or start the new site with a new database)"
            );
        }
    }
    let set = |k: &str, v: &str| {
        tx.execute(
            "INSERT INTO meta (key, value) VALUES (?1, ?2) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            params![k, v],
        )
    };
    set("site", site)?;
    if meta("instance")?.is_none() {
        set("instance", &new_instance_id()?)?;
    }
    let mut queued = 0;
    if meta("forward")?.as_deref() != Some("on") {
        set("forward", "on")?;
        for (table, _, _) in TABLES {
            queued += tx.execute(
                &format!(
                    "INSERT INTO forward_queue (tbl, row_id, queued_us)
                     SELECT '{table}', rowid, CAST((julianday('now') - 2440587.5) * 86400000000 AS INTEGER)
                     FROM {table} ORDER BY rowid"
                ),
                [],
            )? as u64;
        }
    }
    tx.commit()?;
    Ok(queued)
}

/// Turn forwarding off (no central store configured any more): nothing more is queued.
/// What is still queued stays, and is shipped if forwarding is turned on again (which
/// queues every row anyway).
pub fn disable(conn: &Connection) -> anyhow::Result<bool> {
    let n = conn.execute("UPDATE meta SET value = 'off' WHERE key = 'forward' AND value = 'on'", [])?;
    Ok(n > 0)
}

/// A random id for a site database. From the kernel's UUID source rather than a crate:
/// it is read once per database, and this daemon runs on Linux only (libpcap, systemd).
fn new_instance_id() -> anyhow::Result<String> {
    let s = std::fs::read_to_string("/proc/sys/kernel/random/uuid").context("reading a random id")?;
    Ok(s.trim().to_string())
}

/// What the forwarder is doing, for `/metrics`, `/healthz` and the page.
#[derive(Debug, Default)]
pub struct ForwardStatus {
    /// This site's name and where it forwards to (host, port, database; no password).
    pub site: String,
    pub central: String,
    /// Queue entries not yet shipped.
    pub backlog_rows: AtomicU64,
    /// Wall-clock time (µs) the oldest of them was queued; 0 when none.
    pub oldest_queued_us: AtomicI64,
    /// Rows (queue entries) shipped since start.
    pub shipped_rows: AtomicU64,
    pub batches: AtomicU64,
    /// Failed attempts (connect, migrate, ship) since start.
    pub failures: AtomicU64,
    /// The central store answered the last attempt.
    pub up: AtomicBool,
    /// Times the copy of the central approvals changed (the pipeline reloads on a change).
    pub approvals_changes: AtomicU64,
    /// The central store refused this site (its name is another database's, or its
    /// schema is newer than this build): nothing is shipped until that is mended.
    pub refused: AtomicBool,
    last_error: Mutex<String>,
}

impl ForwardStatus {
    pub fn last_error(&self) -> String {
        self.last_error.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }
    fn set_error(&self, e: &str) -> bool {
        let mut last = self.last_error.lock().unwrap_or_else(PoisonError::into_inner);
        let changed = *last != e;
        *last = e.to_string();
        changed
    }
    /// The status as the API and the page show it.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "site": self.site,
            "central": self.central,
            "up": self.up.load(Ordering::Relaxed),
            "refused": self.refused.load(Ordering::Relaxed),
            "backlog_rows": self.backlog_rows.load(Ordering::Relaxed),
            "oldest_age_s": self.oldest_age_s(),
            "shipped_rows": self.shipped_rows.load(Ordering::Relaxed),
            "failures": self.failures.load(Ordering::Relaxed),
            "last_error": self.last_error(),
        })
    }

    /// Seconds since the oldest unshipped row was queued (0 with no backlog).
    pub fn oldest_age_s(&self) -> f64 {
        match self.oldest_queued_us.load(Ordering::Relaxed) {
            0 => 0.0,
            at => (now_us() - at).max(0) as f64 / 1e6,
        }
    }
}

fn now_us() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
}

#[derive(Default)]
struct Control {
    /// Stop as soon as possible.
    stop: bool,
    /// Ship what is queued until the queue is empty or this instant, then stop.
    drain_until: Option<Instant>,
}

/// The forwarder thread and its status.
pub struct Forwarder {
    ctl: Arc<(Mutex<Control>, Condvar)>,
    thread: Option<JoinHandle<()>>,
    status: Arc<ForwardStatus>,
}

/// What a forwarder did, when it stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ForwardSummary {
    pub shipped_rows: u64,
    pub backlog_rows: u64,
}

impl Forwarder {
    /// Start forwarding the rows queued in the database at `db` to `central` as `site`,
    /// and copying the central approvals for it every `approvals_every`. Never waits for
    /// the central store: an unreachable one is the thread's business.
    pub fn start(
        db: &Path,
        central: Central,
        site: String,
        batch: u32,
        approvals_every: Duration,
    ) -> anyhow::Result<Forwarder> {
        let conn = open(db)?;
        let status =
            Arc::new(ForwardStatus { site: site.clone(), central: central.shown(), ..ForwardStatus::default() });
        let ctl = Arc::new((Mutex::new(Control::default()), Condvar::new()));
        let mut worker = Worker {
            conn,
            central,
            site,
            batch: batch.max(1),
            status: status.clone(),
            ctl: ctl.clone(),
            approvals_every,
            approvals_due: Instant::now(),
        };
        worker.refresh_backlog();
        let thread = std::thread::Builder::new()
            .name("forward".into())
            .spawn(move || worker.run())
            .context("starting the forwarder thread")?;
        Ok(Forwarder { ctl, thread: Some(thread), status })
    }

    pub fn status(&self) -> Arc<ForwardStatus> {
        self.status.clone()
    }

    /// Ship what is queued for at most `drain`, then stop; what is left stays queued for
    /// the next start.
    pub fn close(mut self, drain: Duration) -> ForwardSummary {
        self.signal(|c| c.drain_until = Some(Instant::now() + drain));
        if let Some(t) = self.thread.take() {
            if t.join().is_err() {
                tracing::error!("the forwarder thread panicked; its queue is kept for the next start");
            }
        }
        ForwardSummary {
            shipped_rows: self.status.shipped_rows.load(Ordering::Relaxed),
            backlog_rows: self.status.backlog_rows.load(Ordering::Relaxed),
        }
    }

    fn signal(&self, f: impl FnOnce(&mut Control)) {
        let (m, cv) = &*self.ctl;
        f(&mut m.lock().unwrap_or_else(PoisonError::into_inner));
        cv.notify_all();
    }
}

impl Drop for Forwarder {
    fn drop(&mut self) {
        if let Some(t) = self.thread.take() {
            self.signal(|c| c.stop = true);
            let _ = t.join();
        }
    }
}

/// The site database, for turning forwarding on and for the forwarder's own connection.
pub fn open(db: &Path) -> anyhow::Result<Connection> {
    let conn = Connection::open(db).with_context(|| format!("{}: cannot open the database", db.display()))?;
    // The writer thread holds the write lock while it commits; wait for it.
    conn.busy_timeout(Duration::from_secs(10))?;
    Ok(conn)
}

struct Worker {
    conn: Connection,
    central: Central,
    site: String,
    batch: u32,
    status: Arc<ForwardStatus>,
    ctl: Arc<(Mutex<Control>, Condvar)>,
    approvals_every: Duration,
    approvals_due: Instant,
}

/// Why an attempt failed: `Refused` waits for a person, `Down` for the network.
enum Failure {
    Down(String),
    Refused(String),
}

/// The columns shipped of each table of `TABLES` (those of the site database, all found
/// in the central store).
type Shipped = Vec<Vec<(String, bool)>>;

/// One queue entry.
struct Entry {
    seq: i64,
    table: usize,
    row_id: i64,
}

impl Worker {
    fn run(&mut self) {
        let mut pg: Option<(Client, Shipped)> = None;
        let mut backoff = Duration::from_secs(1);
        loop {
            let (stop, drain_until) = {
                let c = self.ctl.0.lock().unwrap_or_else(PoisonError::into_inner);
                (c.stop, c.drain_until)
            };
            let past_drain = drain_until.is_some_and(|d| Instant::now() >= d);
            if stop || past_drain {
                break;
            }
            if pg.is_none() {
                match self.connect() {
                    Ok(c) => {
                        if !self.status.up.swap(true, Ordering::Relaxed) {
                            tracing::info!(central = %self.central.shown(), site = %self.site, "central store reachable: forwarding");
                        }
                        self.status.refused.store(false, Ordering::Relaxed);
                        self.status.set_error("");
                        backoff = Duration::from_secs(1);
                        pg = Some(c);
                    }
                    Err(f) => {
                        self.failed(f, &mut backoff, drain_until);
                        // Closing: a central store that is down now is not waited for;
                        // the backlog stays queued for the next start.
                        if self.draining() {
                            break;
                        }
                        continue;
                    }
                }
            }
            let Some((client, columns)) = pg.as_mut() else { continue };
            if drain_until.is_none() && Instant::now() >= self.approvals_due {
                self.approvals_due = Instant::now() + self.approvals_every;
                if let Err(f) = self.pull_approvals(client) {
                    pg = None;
                    self.failed(f, &mut backoff, drain_until);
                    continue;
                }
            }
            let entries = match self.next_batch() {
                Ok(e) => e,
                Err(e) => {
                    // The site's own database: the writer will hit the same problem and
                    // say so; keep trying, slowly.
                    tracing::error!(error = %format!("{e:#}"), "forwarder: reading the queue");
                    self.wait(Duration::from_secs(5), None);
                    continue;
                }
            };
            if entries.is_empty() {
                self.refresh_backlog();
                if drain_until.is_some() {
                    break;
                }
                self.wait(IDLE_POLL, None);
                continue;
            }
            match self.ship(client, columns, &entries) {
                Ok(()) => {
                    self.status.batches.fetch_add(1, Ordering::Relaxed);
                    self.status.shipped_rows.fetch_add(entries.len() as u64, Ordering::Relaxed);
                    self.refresh_backlog();
                }
                Err(f) => {
                    pg = None;
                    self.failed(f, &mut backoff, drain_until);
                    if self.draining() {
                        break;
                    }
                }
            }
        }
        self.refresh_backlog();
    }

    fn draining(&self) -> bool {
        let c = self.ctl.0.lock().unwrap_or_else(PoisonError::into_inner);
        c.stop || c.drain_until.is_some()
    }

    /// Count, log (once per distinct error) and wait before the next attempt.
    fn failed(&mut self, f: Failure, backoff: &mut Duration, drain_until: Option<Instant>) {
        self.status.failures.fetch_add(1, Ordering::Relaxed);
        self.status.up.store(false, Ordering::Relaxed);
        let (msg, pause) = match f {
            Failure::Down(m) => (m, *backoff),
            Failure::Refused(m) => {
                self.status.refused.store(true, Ordering::Relaxed);
                (m, MAX_BACKOFF)
            }
        };
        if self.status.set_error(&msg) {
            self.refresh_backlog();
            tracing::error!(
                central = %self.central.shown(),
                backlog_rows = self.status.backlog_rows.load(Ordering::Relaxed),
                "central store: {msg}; rows stay queued here and are retried"
            );
        }
        *backoff = (*backoff * 2).min(MAX_BACKOFF);
        if !self.draining() {
            self.wait(pause, drain_until);
        }
    }

    /// Sleep up to `d`, woken by a stop or a drain request (and never past `until`).
    fn wait(&self, d: Duration, until: Option<Instant>) {
        let (m, cv) = &*self.ctl;
        let deadline = Instant::now() + d;
        let deadline = until.map_or(deadline, |u| u.min(deadline));
        let mut c = m.lock().unwrap_or_else(PoisonError::into_inner);
        let seen_drain = c.drain_until;
        while !c.stop && c.drain_until == seen_drain {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            c = cv.wait_timeout(c, deadline - now).map(|(g, _)| g).unwrap_or_else(|e| e.into_inner().0);
        }
    }

    /// Connect, bring the central schema up to date, claim the site name, and read the
    /// central columns of each table (the ones shipped must all exist there).
    fn connect(&mut self) -> Result<(Client, Shipped), Failure> {
        let mut client = self.central.connect().map_err(|e| Failure::Down(format!("{e:#}")))?;
        match migrate(&mut client) {
            Ok(_) => {}
            Err(e @ CentralSchemaError::TooNew { .. }) => return Err(Failure::Refused(e.to_string())),
            Err(e) => return Err(Failure::Down(e.to_string())),
        }
        let local = |e: anyhow::Error| Failure::Down(format!("{e:#}"));
        let meta = |k: &str| -> anyhow::Result<String> {
            self.conn
                .query_row("SELECT value FROM meta WHERE key = ?1", [k], |r| r.get::<_, String>(0))
                .optional()?
                .ok_or_else(|| anyhow!("the site database has no {k} (forwarding was not enabled)"))
        };
        let instance = meta("instance").map_err(local)?;
        let tz = meta("timezone").unwrap_or_else(|_| "UTC".into());
        let pg = |e: postgres::Error| Failure::Down(pg_error(&e));
        client
            .execute(
                "INSERT INTO sites (name, instance, timezone, first_seen_us, last_seen_us) VALUES ($1, $2, $3, $4, $4)
                 ON CONFLICT (name) DO NOTHING",
                &[&self.site, &instance, &tz, &now_us()],
            )
            .map_err(pg)?;
        let owner: String =
            client.query_one("SELECT instance FROM sites WHERE name = $1", &[&self.site]).map_err(pg)?.get(0);
        if owner != instance {
            return Err(Failure::Refused(format!(
                "the site name {:?} belongs to another site database (two sites configured with the same [site] name?); this one is not forwarded until it has a name of its own",
                self.site
            )));
        }
        let mut columns = Vec::new();
        for (table, _, skip) in TABLES {
            let local = self.local_columns(table).map_err(local)?;
            let central: Vec<String> = client
                .query(
                    "SELECT column_name FROM information_schema.columns WHERE table_schema = current_schema() AND table_name = $1",
                    &[table],
                )
                .map_err(pg)?
                .iter()
                .map(|r| r.get(0))
                .collect();
            let mut cols = Vec::new();
            for (name, is_int) in local.into_iter().filter(|(n, _)| !skip.contains(&n.as_str())) {
                if !central.contains(&name) {
                    return Err(Failure::Refused(format!(
                        "the central store has no column {table}.{name}: its schema is older than this site's"
                    )));
                }
                cols.push((name, is_int));
            }
            columns.push(cols);
        }
        Ok((client, columns))
    }

    /// Copy the central approvals for this site; count a change so the pipeline reloads.
    fn pull_approvals(&mut self, client: &mut Client) -> Result<(), Failure> {
        let tz = self
            .conn
            .query_row("SELECT value FROM meta WHERE key = 'timezone'", [], |r| r.get::<_, String>(0))
            .unwrap_or_else(|_| "UTC".into());
        match super::approvals::pull(client, &mut self.conn, &self.site, &tz) {
            Ok(0) => Ok(()),
            Ok(n) => {
                tracing::info!(changed = n, "approvals from the central store copied");
                self.status.approvals_changes.fetch_add(1, Ordering::Relaxed);
                Ok(())
            }
            Err(e) => Err(Failure::Down(format!("copying the central approvals: {e:#}"))),
        }
    }

    /// A table's columns in the site database: (name, declared INTEGER).
    fn local_columns(&self, table: &str) -> anyhow::Result<Vec<(String, bool)>> {
        let mut stmt = self.conn.prepare(&format!("PRAGMA table_info({table})"))?;
        let cols = stmt
            .query_map([], |r| Ok((r.get::<_, String>(1)?, r.get::<_, String>(2)?.eq_ignore_ascii_case("INTEGER"))))?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(cols)
    }

    fn next_batch(&self) -> anyhow::Result<Vec<Entry>> {
        let mut stmt = self.conn.prepare_cached("SELECT seq, tbl, row_id FROM forward_queue ORDER BY seq LIMIT ?1")?;
        let rows =
            stmt.query_map([self.batch], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?, r.get::<_, i64>(2)?)))?;
        let mut out = Vec::new();
        for row in rows {
            let (seq, tbl, row_id) = row?;
            // A table this build does not forward (a queue written by a newer build):
            // skipped here, deleted with the batch.
            let table = TABLES.iter().position(|t| t.0 == tbl).unwrap_or(usize::MAX);
            out.push(Entry { seq, table, row_id });
        }
        Ok(out)
    }

    /// Upsert the rows of `entries` in one PostgreSQL transaction, then delete the
    /// entries from the queue.
    fn ship(&mut self, client: &mut Client, columns: &[Vec<(String, bool)>], entries: &[Entry]) -> Result<(), Failure> {
        let local = |e: anyhow::Error| Failure::Down(format!("the site database: {e:#}"));
        let t0 = Instant::now();
        let mut payloads = Vec::new();
        for (t, (table, keys, _)) in TABLES.iter().enumerate() {
            let mut ids: Vec<i64> = entries.iter().filter(|e| e.table == t).map(|e| e.row_id).collect();
            if ids.is_empty() {
                continue;
            }
            ids.sort_unstable();
            ids.dedup();
            let rows = self.load(table, &columns[t], &ids).map_err(local)?;
            if !rows.is_empty() {
                payloads.push((table, keys, &columns[t], Value::Array(rows).to_string()));
            }
        }
        let pg = |e: postgres::Error| Failure::Down(pg_error(&e));
        let t1 = Instant::now();
        let mut tx = client.transaction().map_err(pg)?;
        for (table, keys, cols, json) in &payloads {
            let names: Vec<&str> = cols.iter().map(|(n, _)| n.as_str()).collect();
            let list = names.join(", ");
            let updates: Vec<String> =
                names.iter().filter(|n| !keys.contains(n)).map(|n| format!("{n} = EXCLUDED.{n}")).collect();
            let sql = format!(
                "INSERT INTO {table} (site, {list}) SELECT $2, {list} FROM jsonb_populate_recordset(NULL::{table}, $1::text::jsonb)
                 ON CONFLICT (site, {}) DO UPDATE SET {}",
                keys.join(", "),
                updates.join(", ")
            );
            tx.execute(&sql, &[json, &self.site]).map_err(|e| Failure::Down(format!("{table}: {}", pg_error(&e))))?;
        }
        tx.execute("UPDATE sites SET last_seen_us = $2 WHERE name = $1", &[&self.site, &now_us()]).map_err(pg)?;
        tx.commit().map_err(pg)?;
        // Committed centrally: only now may the queue forget them. A crash here ships
        // them again next time, which the upserts absorb.
        let t2 = Instant::now();
        let last = entries.iter().map(|e| e.seq).max().unwrap_or(0);
        self.conn
            .execute("DELETE FROM forward_queue WHERE seq <= ?1", [last])
            .map_err(|e| local(anyhow!(e).context("deleting shipped entries")))?;
        tracing::debug!(
            entries = entries.len(),
            load_ms = (t1 - t0).as_millis() as u64,
            central_ms = (t2 - t1).as_millis() as u64,
            dequeue_ms = t2.elapsed().as_millis() as u64,
            "batch forwarded"
        );
        Ok(())
    }

    /// The current content of rows `ids` of `table`, as JSON objects of the shipped
    /// columns. A NUL in text (which PostgreSQL's text cannot hold) becomes U+FFFD.
    fn load(&self, table: &str, cols: &[(String, bool)], ids: &[i64]) -> anyhow::Result<Vec<Value>> {
        let list = cols.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>().join(", ");
        let sql = format!("SELECT {list} FROM {table} WHERE rowid IN (SELECT value FROM json_each(?1)) ORDER BY rowid");
        let mut stmt = self.conn.prepare_cached(&sql)?;
        let ids_json = Value::from(ids.to_vec()).to_string();
        let mut rows = stmt.query([ids_json])?;
        let mut out = Vec::new();
        while let Some(r) = rows.next()? {
            let mut obj = Map::new();
            for (i, (name, _)) in cols.iter().enumerate() {
                let v = match r.get_ref(i)? {
                    ValueRef::Null => Value::Null,
                    ValueRef::Integer(n) => Value::from(n),
                    ValueRef::Real(f) => Value::from(f),
                    ValueRef::Text(t) => Value::from(String::from_utf8_lossy(t).replace('\0', "\u{fffd}")),
                    ValueRef::Blob(_) => bail!("{table}.{name}: a blob (not forwarded)"),
                };
                obj.insert(name.clone(), v);
            }
            out.push(Value::Object(obj));
        }
        Ok(out)
    }

    /// Read the queue's size and oldest entry into the status.
    fn refresh_backlog(&mut self) {
        let r = self.conn.query_row("SELECT count(*), coalesce(min(queued_us), 0) FROM forward_queue", [], |r| {
            Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?))
        });
        if let Ok((n, oldest)) = r {
            self.status.backlog_rows.store(u64::try_from(n).unwrap_or(0), Ordering::Relaxed);
            self.status.oldest_queued_us.store(oldest, Ordering::Relaxed);
        }
    }
}
