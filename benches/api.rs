//! The API benchmark of issue 7 (run by hand: `cargo bench --bench api [-- --calls N]`;
//! `cargo test --benches` runs it on 2,000 calls as a smoke test).
//! 1. Builds (or reuses) a database of N calls (default 1,000,000) written through the
//!    real store writer: a year (2026) of calls, 300 extensions in 10 groups, classes and
//!    directions mixed, 1 % with a violation, 200 recordings (a 10 s stereo WAV file each). Kept under target/bench-api/.
//! 2. Starts the real server (`callwarden::api::serve`) on 127.0.0.1 and measures, over
//!    HTTP/1.1 keep-alive from this process, each endpoint's latency (p50, p99, max over
//!    `--reps` sequential requests, after warm-up) and throughput with 8 concurrent
//!    clients: /api/stats for a month (by ext, by day), /api/calls first page (no filter,
//!    one extension, a month), a recording's first byte (status + headers + first chunk).
//!    The targets (issue 7): stats for a month and calls' first page < 100 ms, a
//!    recording's first byte < 50 ms. Stats answers are cached, so stats are also asked
//!    for each month once ("first asking"), with the database file in the OS page cache
//!    and with it dropped from the cache before each question (`dd iflag=nocache`), and
//!    asked again after a commit of a call in another month (a site writing today's
//!    calls: the answer must survive the commit).
//!
//! It measures the server with its client on the same 2-core machine, so it is a
//! conservative figure.

use callwarden::api::{self, AppState};
use callwarden::settings::Settings;
use callwarden::store::{self, testdata};
use callwarden_core::policy::ViolationKind;
use callwarden_core::track::{CallEvent, Direction, EndReason};
use callwarden_core::{Dur, Output, Ts};
use std::path::{Path, PathBuf};
use std::time::Instant;

const TOKEN: &str = "bench-token";
/// 2026-01-01T00:00:00+08:00.
const YEAR_START_US: i64 = 1_767_196_800_000_000;
const CLASSES: [&str; 6] = ["mobile", "local", "internal", "long-distance", "toll-free", "international"];

fn arg(name: &str, default: u64) -> u64 {
    let args: Vec<String> = std::env::args().collect();
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn build_db(dir: &Path, n: u64, recordings: &Path) -> anyhow::Result<PathBuf> {
    let db = dir.join(format!("calls-{n}.db"));
    if db.exists() {
        eprintln!("reusing {}", db.display());
        // Migrations added since it was built (e.g. an index) apply on open.
        let (_sink, writer) = store::open(&db, "Asia/Shanghai")?;
        writer.close()?;
        // Built before the recordings had their hash: audio without one is refused now.
        rusqlite::Connection::open(&db)?
            .execute("UPDATE recordings SET sha256 = ?1 WHERE sha256 IS NULL", [sha256_hex(&wav_bytes(10))])?;
        return Ok(db);
    }
    let tmp = dir.join(format!("calls-{n}.db.part"));
    let _ = std::fs::remove_file(&tmp);
    let t = Instant::now();
    let (mut sink, writer) = store::open(&tmp, "Asia/Shanghai")?;
    // Spread over the year: one call every `step` µs.
    let step = (365 * 86_400_000_000_i64) / i64::try_from(n)?.max(1);
    let mut rng: u64 = 0x9E37_79B9_7F4A_7C15;
    for i in 0..n {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let ext = 8000 + (rng % 300);
        let class = CLASSES[usize::try_from((rng >> 20) % 6)?];
        let (callee, direction) = match class {
            "internal" => (format!("{}", 8000 + ((rng >> 30) % 300)), Direction::Internal),
            "long-distance" => (format!("0755{:08}", (rng >> 24) % 100_000_000), Direction::Outbound),
            "international" => (format!("0044{:09}", (rng >> 24) % 1_000_000_000), Direction::Outbound),
            "toll-free" => (format!("400{:07}", (rng >> 24) % 10_000_000), Direction::Outbound),
            _ => (format!("138{:08}", (rng >> 24) % 100_000_000), Direction::Outbound),
        };
        let started = YEAR_START_US + i64::try_from(i)? * step;
        let mut c = testdata::call(&format!("bench-{i}"), started, &ext.to_string(), &callee, direction);
        c.class = Some(class.into());
        c.group = Some(format!("g{}", (ext - 8000) / 30));
        c.rings = u32::try_from((rng >> 40) % 6)?;
        c.talk_ms = i64::try_from((rng >> 44) % 600_000)?;
        if (rng >> 50) % 5 == 0 {
            c = testdata::unanswered(c, EndReason::Cancelled, 487);
        } else {
            c.ended_at = c.answered_at.unwrap_or(Ts(started)) + Dur::from_millis(c.talk_ms);
        }
        let v = ((rng >> 54) % 100 == 0)
            .then(|| testdata::violation(&c, "IN-1", ViolationKind::SlowAnswer, &ext.to_string(), 9000, Some(5000)));
        sink.take(&Output::Call(CallEvent::Ended(Box::new(c))))?;
        if let Some(v) = v {
            sink.take(&Output::Violation(v))?;
        }
        if i % 100_000 == 0 && i > 0 {
            eprintln!("  {i} calls written ({:.0} s)", t.elapsed().as_secs_f64());
        }
    }
    writer.close()?;
    // Recordings: rows as the recorder writes them, each with its own 60 s WAV.
    let conn = rusqlite::Connection::open(&tmp)?;
    let wav = wav_bytes(10);
    let wav_sha256 = sha256_hex(&wav);
    std::fs::create_dir_all(recordings)?;
    let txn = conn.unchecked_transaction()?;
    for r in 0..200_i64 {
        let rel = format!("r{r:05}.wav");
        std::fs::write(recordings.join(&rel), &wav)?;
        let started = YEAR_START_US + r * 150_000_000_000;
        txn.execute(
            "INSERT INTO recordings (id, call_id, call_started_us, caller, callee, dialled, group_name, path, status,
                 sample_rate, channels, frames, duration_ms, bytes, sha256, media_started_us, ended_us, retention_days,
                 day, month)
             VALUES (printf('%016x', ?1), 'bench-rec-' || ?1, ?2, '8001', '13800000000', '13800000000', 'g0', ?3,
                 'complete', 8000, 2, 80000, 10000, ?4, ?5, ?2, ?2 + 10000000, 365, '2026-01-01', '2026-01')",
            rusqlite::params![r, started, rel, wav.len() as i64, wav_sha256],
        )?;
    }
    txn.commit()?;
    drop(conn);
    std::fs::rename(&tmp, &db)?;
    eprintln!("built {} in {:.0} s", db.display(), t.elapsed().as_secs_f64());
    Ok(db)
}

/// The SHA-256 the recorder would have sealed a bench WAV with (the API refuses audio
/// without one).
fn sha256_hex(wav: &[u8]) -> String {
    use sha2::Digest;
    callwarden::sink::recorder::wav::hex(&sha2::Sha256::digest(wav))
}

fn wav_bytes(secs: u32) -> Vec<u8> {
    let spec =
        hound::WavSpec { channels: 2, sample_rate: 8000, bits_per_sample: 16, sample_format: hound::SampleFormat::Int };
    let mut cur = std::io::Cursor::new(Vec::new());
    {
        let mut w = hound::WavWriter::new(&mut cur, spec).unwrap_or_else(|e| panic!("wav: {e}"));
        for i in 0..(8000 * secs) {
            let s = ((f64::from(i) / 8000.0 * 440.0 * std::f64::consts::TAU).sin() * 8000.0) as i16;
            let _ = w.write_sample(s);
            let _ = w.write_sample(s / 2);
        }
        let _ = w.finalize();
    }
    cur.into_inner()
}

struct Figures {
    p50: f64,
    p99: f64,
    max: f64,
    rps: f64,
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted.get(i).copied().unwrap_or(f64::NAN)
}

/// One request's latency in ms: to the whole body, or to its first chunk.
async fn one(c: &reqwest::Client, url: &str, first_byte: bool) -> anyhow::Result<f64> {
    let t = Instant::now();
    let mut res = c.get(url).bearer_auth(TOKEN).send().await?;
    anyhow::ensure!(res.status().is_success(), "{url}: {}", res.status());
    if first_byte {
        let _ = res.chunk().await?;
        let ms = t.elapsed().as_secs_f64() * 1000.0;
        drop(res); // the rest is not wanted
        return Ok(ms);
    }
    let _ = res.bytes().await?;
    Ok(t.elapsed().as_secs_f64() * 1000.0)
}

/// A table line of latencies asked once each (no throughput column).
fn print_once(name: &str, lat: &mut [f64], what: &str) {
    lat.sort_by(f64::total_cmp);
    println!(
        "{name:<28} {:>9.2} {:>9.2} {:>9.2} {:>10}  {what}",
        pct(lat, 0.5),
        pct(lat, 0.99),
        lat.last().copied().unwrap_or(f64::NAN),
        "-"
    );
}

/// Sequential latency over `reps`, then 8 concurrent clients for `reps` requests in all.
async fn measure(c: &reqwest::Client, url: &str, reps: usize, first_byte: bool) -> anyhow::Result<Figures> {
    for _ in 0..3 {
        one(c, url, first_byte).await?;
    }
    let mut lat = Vec::with_capacity(reps);
    for _ in 0..reps {
        lat.push(one(c, url, first_byte).await?);
    }
    lat.sort_by(f64::total_cmp);
    let t = Instant::now();
    let mut tasks = Vec::new();
    for k in 0..8 {
        let (c, url) = (c.clone(), url.to_string());
        let n = reps / 8 + usize::from(k < reps % 8);
        tasks.push(tokio::spawn(async move {
            for _ in 0..n {
                one(&c, &url, first_byte).await?;
            }
            anyhow::Ok(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    let rps = reps as f64 / t.elapsed().as_secs_f64();
    Ok(Figures { p50: pct(&lat, 0.5), p99: pct(&lat, 0.99), max: lat.last().copied().unwrap_or(f64::NAN), rps })
}

/// Ask the kernel to drop the database's pages from its page cache (GNU dd: `iflag=nocache
/// count=0` advises DONTNEED for the whole file), so the next read comes from the disk.
fn drop_page_cache(db: &Path) -> anyhow::Result<()> {
    for f in [db.to_path_buf(), db.with_extension("db-wal")] {
        if f.exists() {
            let st = std::process::Command::new("dd")
                .arg(format!("if={}", f.display()))
                .args(["iflag=nocache", "count=0", "status=none"])
                .status()?;
            anyhow::ensure!(st.success(), "dd nocache {}: {st}", f.display());
        }
    }
    Ok(())
}

fn main() -> anyhow::Result<()> {
    // `cargo bench` passes --bench; under `cargo test --benches` (or --all-targets) this
    // runs as a quick smoke test on a small database instead.
    let benching = std::env::args().any(|a| a == "--bench");
    let n = arg("--calls", if benching { 1_000_000 } else { 2_000 });
    let reps = usize::try_from(arg("--reps", if benching { 200 } else { 10 }))?;
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench-api");
    std::fs::create_dir_all(&dir)?;
    let recordings = dir.join(format!("recordings-{n}"));
    let db = build_db(&dir, n, &recordings)?;
    let cfg = dir.join("bench.toml");
    std::fs::write(
        &cfg,
        format!(
            "[site]\ntimezone = \"Asia/Shanghai\"\nextensions = [\"8000-8299\"]\n[recordings]\ndir = \"recordings-{n}\"\n\
             [[api.token]]\nname = \"bench\"\ntoken = \"{TOKEN}\"\nrole = \"auditor\"\n"
        ),
    )?;
    let settings = Settings::load(Some(&cfg), Some(&db))?;
    let state = AppState::new(db.clone(), &settings)?;
    let stats_state = state.clone();
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(api::serve(listener, state, async move {
            let _ = rx.await;
        }));
        let c = reqwest::Client::builder().no_proxy().build()?;
        let base = format!("http://{addr}");
        let cases: [(&str, String, bool, f64); 7] = [
            ("stats month by ext", format!("{base}/api/stats?month=2026-06"), false, 100.0),
            ("stats month by day", format!("{base}/api/stats?month=2026-06&by=day"), false, 100.0),
            ("calls first page", format!("{base}/api/calls"), false, 100.0),
            ("calls first page, one ext", format!("{base}/api/calls?ext=8123"), false, 100.0),
            ("calls first page, a month", format!("{base}/api/calls?month=2026-06"), false, 100.0),
            ("violations first page", format!("{base}/api/violations"), false, 100.0),
            ("recording first byte", format!("{base}/api/recordings/0000000000000064/audio"), true, 50.0),
        ];
        println!("database: {} calls ({})", n, db.display());
        println!("{:<28} {:>9} {:>9} {:>9} {:>10}  target", "endpoint", "p50 ms", "p99 ms", "max ms", "req/s (8)");
        // The stats cache answers repeated questions; a question asked for the first time
        // aggregates the month: each month of the year once, by ext and by day. Twice:
        // with the database file in the OS page cache (read through once first), and with
        // it dropped from the page cache before each question (the month's index pages
        // then come from the disk; what a server whose cache went to other work sees).
        for (cache, drop_cache) in [("file cached", false), ("file not cached", true)] {
            if !drop_cache {
                std::io::copy(&mut std::fs::File::open(&db)?, &mut std::io::sink())?;
            }
            for by in ["ext", "day"] {
                stats_state.set_config(&settings)?; // empties the stats cache
                let mut lat = Vec::new();
                for m in 1..=12 {
                    if drop_cache {
                        drop_page_cache(&db)?;
                    }
                    lat.push(one(&c, &format!("{base}/api/stats?month=2026-{m:02}&by={by}"), false).await?);
                }
                let over = if cache == "file cached" {
                    if lat.iter().all(|&ms| ms < 100.0) {
                        "max < 100 ms: ok"
                    } else {
                        "max < 100 ms: OVER"
                    }
                } else {
                    "(disk reads)"
                };
                print_once(&format!("stats by {by}, {cache}"), &mut lat, &format!("first asking, 12 months, {over}"));
            }
        }
        // While the site writes: a call of December is committed (another connection, as
        // the daemon's writer) before each question about one of the first six months,
        // each already asked once. The commit falls outside the month asked, so the answer
        // comes from the cache (migration 0013's change log says what changed); before,
        // every commit emptied the cache and each of these was a first asking.
        stats_state.set_config(&settings)?;
        for m in 1..=6 {
            one(&c, &format!("{base}/api/stats?month=2026-{m:02}"), false).await?;
        }
        let december = YEAR_START_US + 340 * 86_400_000_000;
        let mut lat = Vec::new();
        for i in 0..60_i64 {
            let (mut sink, writer) = store::open(&db, "Asia/Shanghai")?;
            let call = testdata::call(
                &format!("bench-live-{i}"),
                december + i * 1_000_000,
                "8001",
                "13800000000",
                Direction::Outbound,
            );
            sink.take(&Output::Call(CallEvent::Ended(Box::new(call))))?;
            writer.close()?;
            lat.push(one(&c, &format!("{base}/api/stats?month=2026-{:02}", 1 + i % 6), false).await?);
        }
        print_once("stats by ext, site writing", &mut lat, "asked again after a commit in another month, 60 times");
        for (name, url, fb, target) in cases {
            let f = measure(&c, &url, reps, fb).await?;
            let ok = if f.p99 < target { "ok" } else { "OVER" };
            println!(
                "{name:<28} {:>9.2} {:>9.2} {:>9.2} {:>10.0}  p99 < {target} ms: {ok}",
                f.p50, f.p99, f.max, f.rps
            );
        }
        let _ = tx.send(());
        server.await??;
        anyhow::Ok(())
    })
}
