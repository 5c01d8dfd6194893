//! The central playback log: who listened, through the central API, to a recording that
//! stays at its site (`api::site_audio` fetched and checked it). A row of the central
//! `playback_log` with `via = 'central'` and no site-local id; the site's own log also has
//! the fetch, under the name of the token the central API used.
//! May use: postgres. Invariant: written before the audio is served (no unlogged listening).

use super::pg_error;
use anyhow::anyhow;
use postgres::Client;

/// One central playback of recording `recording_id` of `site`.
pub fn log(
    client: &mut Client,
    site: &str,
    at_us: i64,
    who: &str,
    recording_id: &str,
    action: &str,
    detail: &str,
) -> anyhow::Result<()> {
    client
        .execute(
            "INSERT INTO playback_log (site, id, at_us, who, recording_id, action, via, detail)
             VALUES ($1, NULL, $2, $3, $4, $5, 'central', $6)",
            &[&site, &at_us, &who, &recording_id, &action, &detail],
        )
        .map_err(|e| anyhow!("central playback log: {}", pg_error(&e)))?;
    Ok(())
}
