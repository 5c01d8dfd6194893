//! The live pipeline thread: frames from the capture threads and control messages in,
//! timers fed from the system clock when idle, counters published every `PUBLISH_EVERY`.
//! The loop is `Driver`'s, as in replay; only where time comes from differs.
//! May use: `capture` (frames), `metrics`, `store` (queue depth, approvals via
//! `feed_approvals`), `reload` (results). Invariants: this thread is the only reader of the
//! system clock for packet time, and it feeds the engine a time `IDLE_MARGIN` behind the
//! clock so frames still on their way (in the kernel buffer or the channel) are not
//! overtaken by a timer; frames are fed in the order they arrive; nothing is fed after
//! `finish`; no frame is taken as later than the wall clock (plus `engine::MAX_AHEAD`).

use super::{feed_approvals, Driver};
use crate::capture::live::OwnedFrame;
use crate::metrics::{MetricsHandle, Snapshot};
use crate::reload::ReloadResult;
use crate::store::central::forward::ForwardStatus;
use crate::store::StoreInput;
use callwarden_core::track::EndReason;
use callwarden_core::{Dur, Ts};
use crossbeam_channel::{select, Receiver};
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime};

/// Frames that may wait between the capture threads and the pipeline (~1 s at 50,000
/// packets/s); more and the newest is dropped and counted.
pub const FRAME_QUEUE: usize = 65_536;

/// Timers fire when the clock has passed their due time by this much, so a frame stamped
/// before the due time but still on its way is fed first, as a replay would.
pub const IDLE_MARGIN: Dur = Dur::from_millis(250);

/// How often the pipeline publishes its counters (and proves it is alive).
pub const PUBLISH_EVERY: Duration = Duration::from_millis(250);

/// Messages to the pipeline thread other than frames.
pub enum Ctl {
    Reload(ReloadResult),
    /// The approvals table changed (API, or SIGHUP after `callwarden approve`): re-read it.
    Approvals,
    Stop,
}

/// The system clock as packet time.
pub fn wall_clock() -> Ts {
    match SystemTime::now().duration_since(SystemTime::UNIX_EPOCH) {
        Ok(d) => Ts(i64::try_from(d.as_micros()).unwrap_or(i64::MAX)),
        Err(_) => Ts::EPOCH,
    }
}

/// What the pipeline thread needs besides the driver.
pub struct LiveIo {
    pub frames: Receiver<OwnedFrame>,
    pub ctl: Receiver<Ctl>,
    pub metrics: MetricsHandle,
    /// For the store's queue depth.
    pub store: Option<Box<dyn StoreInput>>,
    /// The database, to re-read the stored approvals on a config reload.
    pub db: Option<std::path::PathBuf>,
    /// The forwarder, whose copy of the central approvals changing means a reload.
    pub forward: Option<std::sync::Arc<ForwardStatus>>,
}

/// The pipeline thread's loop: frames and control messages in, timers on idle, counters
/// out every `PUBLISH_EVERY`. Returns the driver after `finish(Shutdown)` when told to stop
/// (or when the control channel is gone).
pub fn run(mut driver: Driver, io: LiveIo, clock: &dyn Fn() -> Ts) -> Driver {
    let mut frames = io.frames;
    let mut reloads = (0u64, 0u64);
    let mut lag = 0i64;
    let mut last_publish = std::time::Instant::now();
    let mut trim = Trim::default();
    let approvals_changes = || io.forward.as_ref().map_or(0, |f| f.approvals_changes.load(Ordering::Relaxed));
    let mut approvals_seen = approvals_changes();
    loop {
        let now = clock();
        let wait = match driver.engine().poll_timeout() {
            Some(due) => {
                let left = due.saturating_add(IDLE_MARGIN).0.saturating_sub(now.0);
                Duration::from_micros(u64::try_from(left).unwrap_or(0)).min(PUBLISH_EVERY)
            }
            None => PUBLISH_EVERY,
        };
        let mut stop = false;
        select! {
            recv(frames) -> f => match f {
                Ok(f) => {
                    lag = lag.max(now.0.saturating_sub(f.ts.0));
                    feed_live(&mut driver, &f, clock());
                }
                // Every source has gone (or there never was one): only control remains.
                Err(_) => frames = crossbeam_channel::never(),
            },
            recv(io.ctl) -> c => match c {
                Ok(Ctl::Reload(Ok(cfg))) => match driver.engine_mut().set_config(&cfg) {
                    Ok(()) => {
                        reloads.0 += 1;
                        // Approvals added with `callwarden approve` since the start apply
                        // from here on (a read of one small table, on a rare event).
                        reload_approvals(&mut driver, io.db.as_deref());
                    }
                    Err(e) => {
                        reloads.1 += 1;
                        tracing::error!(error = %e, "the new config was not applied; keeping the running one");
                    }
                },
                Ok(Ctl::Reload(Err(_))) => reloads.1 += 1,
                Ok(Ctl::Approvals) => reload_approvals(&mut driver, io.db.as_deref()),
                Ok(Ctl::Stop) | Err(_) => stop = true,
            },
            default(wait) => driver.idle(clock().saturating_sub(IDLE_MARGIN)),
        }
        if stop {
            // The sources were stopped before `Stop` was sent: whatever they queued is
            // in the channel now, and is fed before the calls are ended.
            while let Ok(f) = frames.try_recv() {
                feed_live(&mut driver, &f, clock());
            }
            break;
        }
        if last_publish.elapsed() >= PUBLISH_EVERY {
            last_publish = std::time::Instant::now();
            publish(&driver, &io.metrics, io.store.as_deref(), frames.len(), lag, reloads);
            lag = 0;
            let _ = trim.after(driver.engine().tracked_calls());
            // The forwarder copied changed central approvals into the database.
            let changes = approvals_changes();
            if changes != approvals_seen {
                approvals_seen = changes;
                reload_approvals(&mut driver, io.db.as_deref());
            }
        }
    }
    driver.finish(EndReason::Shutdown);
    publish(&driver, &io.metrics, io.store.as_deref(), 0, lag, reloads);
    driver
}

/// Memory back to the system after a flood: after a peak of `TRIM_FROM` tracked calls or
/// more, glibc's heap is trimmed each time the tracked calls fall to a quarter of the last
/// level (free memory of its arenas is returned; without it the RSS of a 100,000-INVITE
/// flood stayed at its peak after every call had timed out), down to the last of them.
/// Tracked calls, not calls in progress: a call that ended lingers 32 s more, and the
/// memory of a flood comes free only when it goes. Measured with scripts/flood-invite.
#[derive(Default)]
struct Trim {
    peak: usize,
    /// A flood was seen and not yet followed down to (nearly) nothing.
    armed: bool,
}

const TRIM_FROM: usize = 5_000;

impl Trim {
    /// Returns whether it trimmed (for the test).
    fn after(&mut self, tracked: usize) -> bool {
        self.peak = self.peak.max(tracked);
        self.armed |= self.peak >= TRIM_FROM;
        let due = self.armed && tracked <= self.peak / 4;
        if due {
            self.peak = tracked;
            self.armed = tracked >= 16;
            #[cfg(all(target_os = "linux", target_env = "gnu"))]
            // SAFETY: malloc_trim only walks and releases the allocator's free memory; it
            // takes the allocator's own locks and touches no memory we own.
            unsafe {
                libc::malloc_trim(0);
            }
        }
        due
    }
}

/// Fix glibc's mmap and trim thresholds at their defaults (128 KiB). Left alone, glibc
/// raises both each time a large block is freed (up to 32 MiB and 64 MiB): after a flood
/// has freed the tracker's tables, a thread arena then keeps up to 64 MiB of free memory
/// at its top, which `malloc_trim` does not release for arenas other than the main one
/// (measured with scripts/flood-invite: ~30 MB of free memory kept). With the thresholds
/// fixed, large blocks are mmapped and given back when freed, and arena tops are trimmed
/// as they are freed. Costs an mmap/munmap per large buffer, which the daemon rarely makes.
pub fn fix_malloc_thresholds() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets the allocator's parameters; called before other threads.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 128 * 1024);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 128 * 1024);
    }
}

/// Give the engine the approvals stored in `db` again; on failure it keeps those it has.
fn reload_approvals(driver: &mut Driver, db: Option<&std::path::Path>) {
    if let Some(db) = db {
        if let Err(e) = feed_approvals(driver.engine_mut(), db) {
            tracing::error!(error = %e, "cannot reload the stored approvals; keeping the ones loaded");
        }
    }
}

/// Feed a live frame with the wall clock as its horizon: no frame is believed to come from
/// further ahead than `MAX_AHEAD` past now (a HEP agent's stamp is checked against the
/// frame's, so this bounds both).
fn feed_live(driver: &mut Driver, f: &OwnedFrame, wall: Ts) {
    driver.engine_mut().set_horizon(Some(wall.saturating_add(callwarden_core::engine::MAX_AHEAD)));
    driver.feed(f.as_frame());
}

fn publish(
    d: &Driver,
    m: &MetricsHandle,
    store: Option<&dyn StoreInput>,
    queue: usize,
    lag_us: i64,
    reloads: (u64, u64),
) {
    let e = d.engine();
    m.publish(Snapshot {
        counters: e.counters().clone(),
        active_calls: e.active_calls(),
        active_recordings: e.active_recordings(),
        store_queue: store.map_or(0, |s| s.queue_depth()),
        capture_queue: queue,
        lag_seconds: lag_us.max(0) as f64 / 1e6,
        reloads_ok: reloads.0,
        reloads_failed: reloads.1,
        sink_errors: d.sink_errors,
        link: e.track_stats().link,
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A flood of 100,000 calls is followed down to its last calls (the memory of the
    /// lingering ones comes free late), then nothing more is trimmed; normal traffic below
    /// `TRIM_FROM` never trims.
    #[test]
    fn trims_follow_a_flood_down_to_nothing() {
        let mut t = Trim::default();
        assert!(!(0..4000).step_by(100).any(|n| t.after(n)) && !t.after(0), "no flood, no trim");
        let mut t = Trim::default();
        assert!(!t.after(100_000) && !t.after(40_000));
        let trimmed: Vec<usize> = [25_000, 20_000, 6_000, 1_500, 1_000, 300, 60, 20, 10, 3, 0, 0, 0]
            .into_iter()
            .filter(|&n| t.after(n))
            .collect();
        assert_eq!(trimmed, [25_000, 6_000, 1_500, 300, 60, 10]);
        assert!(!t.after(0) && !t.after(3000) && !t.after(0));
    }
}
