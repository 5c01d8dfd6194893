//! Where recordings live: `<dir>/YYYY/MM/DD/<id>.wav` by the date of the call's start in
//! the site's zone, the undecodable RTP beside it as `<id>.caller.rtpdump` and
//! `<id>.callee.rtpdump` (one file per direction, as rtpdump keeps one source per file).
//! Paths in the database are relative to the folder, with `/` separators, so the folder
//! can move. Also the walk that lists every file under the folder, for `verify`.

use callwarden_core::track::Leg;
use callwarden_core::Ts;
use jiff::tz::TimeZone;
use std::io;
use std::path::Path;

/// `YYYY/MM/DD` of `ts` in `tz`; `0000/00/00` for an instant jiff cannot represent (a
/// capture stamp beyond year 9999), so such a call is still recorded somewhere.
pub fn day_dir(ts: Ts, tz: &TimeZone) -> String {
    match jiff::Timestamp::from_microsecond(ts.as_micros()) {
        Ok(t) => t.to_zoned_datetime(tz.clone()).date().strftime("%Y/%m/%d").to_string(),
        Err(_) => "0000/00/00".to_string(),
    }
}

/// 'YYYY-MM-DD' and 'YYYY-MM' of `ts` in `tz` (the row's day and month columns, as the
/// store computes them for calls); empty for an instant jiff cannot represent.
pub fn day_month(ts: Ts, tz: &TimeZone) -> (String, String) {
    match jiff::Timestamp::from_microsecond(ts.as_micros()) {
        Ok(t) => {
            let d = t.to_zoned_datetime(tz.clone()).date();
            (d.strftime("%Y-%m-%d").to_string(), d.strftime("%Y-%m").to_string())
        }
        Err(_) => (String::new(), String::new()),
    }
}

/// The WAV of recording `id` (a file-name-safe hex id from the core).
pub fn wav_path(day_dir: &str, id: &str) -> String {
    format!("{day_dir}/{id}.wav")
}

/// The rtpdump file of one direction's undecodable RTP.
pub fn raw_path(day_dir: &str, id: &str, leg: Leg) -> String {
    let who = match leg {
        Leg::CallerToCallee => "caller",
        Leg::CalleeToCaller => "callee",
    };
    format!("{day_dir}/{id}.{who}.rtpdump")
}

/// Every regular file under `dir`, as paths relative to it with `/` separators, sorted.
/// Hidden files at the top (the lock file) are not recordings and are left out.
pub fn walk(dir: &Path) -> io::Result<Vec<String>> {
    let mut out = Vec::new();
    if !dir.exists() {
        return Ok(out);
    }
    let mut stack = vec![(dir.to_path_buf(), String::new())];
    while let Some((abs, rel)) = stack.pop() {
        for entry in std::fs::read_dir(&abs)? {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if rel.is_empty() && name.starts_with('.') {
                continue;
            }
            let rel_child = if rel.is_empty() { name } else { format!("{rel}/{name}") };
            let ft = entry.file_type()?;
            if ft.is_dir() {
                stack.push((entry.path(), rel_child));
            } else {
                out.push(rel_child);
            }
        }
    }
    out.sort();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_follow_the_site_zone() {
        let sh = TimeZone::get("Asia/Shanghai").unwrap();
        // 2026-03-01T23:30Z is already the 2nd in Shanghai.
        let t = Ts(1_772_407_800_000_000);
        assert_eq!(day_dir(t, &sh), "2026/03/02");
        assert_eq!(day_dir(t, &TimeZone::UTC), "2026/03/01");
        assert_eq!(wav_path("2026/03/02", "00ff"), "2026/03/02/00ff.wav");
        assert_eq!(raw_path("2026/03/02", "00ff", Leg::CalleeToCaller), "2026/03/02/00ff.callee.rtpdump");
        assert_eq!(day_dir(Ts::MAX, &sh), "0000/00/00");
        assert_eq!(day_month(t, &sh), ("2026-03-02".to_string(), "2026-03".to_string()));
    }

    #[test]
    fn walk_lists_files_relative_and_skips_the_lock() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("2026/03/02")).unwrap();
        std::fs::write(dir.path().join("2026/03/02/a.wav"), b"x").unwrap();
        std::fs::write(dir.path().join("2026/b.txt"), b"x").unwrap();
        std::fs::write(dir.path().join(".recorder.lock"), b"").unwrap();
        assert_eq!(walk(dir.path()).unwrap(), ["2026/03/02/a.wav", "2026/b.txt"]);
        assert!(walk(&dir.path().join("nope")).unwrap().is_empty());
    }
}
