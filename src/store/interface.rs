//! The store's interface, the seam a second backend (PostgreSQL, for many sites) plugs
//! into: `StoreInput` is what the pipeline writes (engine outputs, queued, committed in
//! order), `Store` is what readers ask (calls, one call, violations, stats, recordings,
//! the playback log). SQLite implements both: `StoreSink` and `Reader`.
//! `report/`, `cli/` and `api/` ask through `Store` only, never through SQL.
//! May use: the store's row and query types, core's `Output`.
//! PostgreSQL (the central store of many sites) implements `Store` too:
//! `central::read::CentralReader`.
//! Invariants: every method takes the one `Filter` (and its one `Cursor`) for lists; an
//! implementation shows times in its `timezone()`; every row carries its `site` and a
//! `Filter::site` for a site the store does not hold selects nothing; a write accepted by `take` is either
//! committed or counted as lost when the writer closes, never dropped silently.

use super::query::{Filter, StatsBy};
use super::reader::{CallDetail, CallRow, Reader, ViolationRow};
use super::recordings::{PlaybackQuery, PlaybackRow, RecordingRow};
use super::stats::StatsRow;
use super::StoreSink;
use callwarden_core::Output;
use jiff::tz::TimeZone;

/// What readers ask of a store.
pub trait Store: Send {
    /// The zone times are shown and dates are judged in.
    fn timezone(&self) -> &TimeZone;
    /// Calls matching `q`, ordered by start (newest first when `q.newest_first`).
    fn calls(&self, q: &Filter) -> anyhow::Result<Vec<CallRow>>;
    /// One call with its SIP timeline and violations: the latest started with this
    /// Call-ID (at `site`, when given: a Call-ID is only unique within a site, so over
    /// several sites the latest of any site unless the site is named).
    fn call(&self, call_id: &str, site: Option<&str>) -> anyhow::Result<Option<CallDetail>>;
    fn violations(&self, q: &Filter) -> anyhow::Result<Vec<ViolationRow>>;
    /// Figures per extension, group, day or month, from stored verdicts only.
    fn stats(&self, by: StatsBy, q: &Filter) -> anyhow::Result<Vec<StatsRow>>;
    fn recordings(&self, q: &Filter) -> anyhow::Result<Vec<RecordingRow>>;
    /// The recording with this id (ids are made from the Call-ID and start, so unique
    /// across sites in practice; over several sites, the latest call's if not).
    fn recording(&self, id: &str) -> anyhow::Result<Option<RecordingRow>>;
    /// The recording of a call (Call-ID + start) at `site` (None: this store's only site,
    /// or any site over several).
    fn recording_of_call(
        &self,
        site: Option<&str>,
        call_id: &str,
        started_us: i64,
    ) -> anyhow::Result<Option<RecordingRow>>;
    fn playback_log(&self, q: &PlaybackQuery) -> anyhow::Result<Vec<PlaybackRow>>;
}

/// What the pipeline writes into a store.
pub trait StoreInput: Send {
    /// Queue what the store keeps of one output (an ended call, a violation); never
    /// waits for a commit, may wait while the queue is full.
    fn take(&mut self, out: &Output) -> anyhow::Result<()>;
    /// Return once everything queued before the call is committed.
    fn flush_barrier(&self) -> anyhow::Result<()>;
    /// Items queued and not yet taken by the writer (`/metrics`).
    fn queue_depth(&self) -> u64;
}

impl Store for Reader {
    fn timezone(&self) -> &TimeZone {
        Reader::timezone(self)
    }
    fn calls(&self, q: &Filter) -> anyhow::Result<Vec<CallRow>> {
        Reader::calls(self, q)
    }
    fn call(&self, call_id: &str, site: Option<&str>) -> anyhow::Result<Option<CallDetail>> {
        if site.is_some_and(|s| Some(s) != self.site.as_deref()) {
            return Ok(None);
        }
        Reader::call(self, call_id)
    }
    fn violations(&self, q: &Filter) -> anyhow::Result<Vec<ViolationRow>> {
        Reader::violations(self, q)
    }
    fn stats(&self, by: StatsBy, q: &Filter) -> anyhow::Result<Vec<StatsRow>> {
        Reader::stats(self, by, q)
    }
    fn recordings(&self, q: &Filter) -> anyhow::Result<Vec<RecordingRow>> {
        Reader::recordings(self, q)
    }
    fn recording(&self, id: &str) -> anyhow::Result<Option<RecordingRow>> {
        Reader::recording(self, id)
    }
    fn recording_of_call(
        &self,
        site: Option<&str>,
        call_id: &str,
        started_us: i64,
    ) -> anyhow::Result<Option<RecordingRow>> {
        if site.is_some_and(|s| Some(s) != self.site.as_deref()) {
            return Ok(None);
        }
        Reader::recording_of_call(self, call_id, started_us)
    }
    fn playback_log(&self, q: &PlaybackQuery) -> anyhow::Result<Vec<PlaybackRow>> {
        Reader::playback_log(self, q)
    }
}

impl StoreInput for StoreSink {
    fn take(&mut self, out: &Output) -> anyhow::Result<()> {
        StoreSink::take(self, out)
    }
    fn flush_barrier(&self) -> anyhow::Result<()> {
        StoreSink::flush_barrier(self)
    }
    fn queue_depth(&self) -> u64 {
        StoreSink::queue_depth(self)
    }
}
