//! Evidence is what was decided at the time: the verdicts stats count (the limits applied,
//! personal-number matches, rule ids) are stored with each call when it ends, so editing
//! the config afterwards never changes a past figure — while the same capture judged
//! under the new config does give other figures (so the first half could fail).

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_callwarden")
}

fn pcap() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/public/gen-sipp-mixed-calls-udp.pcap")
}

/// The site's config with `limits` and one group's own settings; the database and
/// recordings in `dir`.
fn config(dir: &Path, db: &str, limits: &str, group: &str) -> PathBuf {
    let path = dir.join(format!("{db}.toml"));
    let text = format!(
        "[site]\nextensions = [\"1000-2999\"]\n[store]\npath = \"{db}.db\"\n[recordings]\ndir = \"rec\"\n\
         [limits]\n{limits}\n[[group]]\nname = \"desk\"\nextensions = [\"2001-2009\"]\n{group}\n"
    );
    std::fs::write(&path, text).expect("config");
    path
}

fn run(cfg: &Path, args: &[&str]) -> Value {
    let out = Command::new(bin()).args(args).arg("--config").arg(cfg).output().expect("run callwarden");
    assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{args:?}: {e}"))
}

fn figures(cfg: &Path) -> Vec<Value> {
    ["ext", "group", "day"].iter().map(|by| run(cfg, &["stats", "--by", by, "--json"])).collect()
}

#[test]
fn editing_the_config_never_changes_a_past_figure() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let then = config(tmp.path(), "site", "max_talk_s = 180\neffective_min_talk_s = 30", "");
    let summary = run(&then, &["replay", "--json", "--quiet", pcap().to_str().expect("utf-8 path")]);
    assert_eq!(summary["calls"], 7);
    let before = figures(&then);
    let answered: u64 = before[0].as_array().expect("rows").iter().filter_map(|r| r["answered"].as_u64()).sum();
    assert!(answered > 0, "the capture has answered calls: {}", before[0]);

    // The same database read under a config that would judge every call differently: a
    // group limit of 0 rings, 1 s talk limits, every number personal, 1 s effective.
    let now = config(
        tmp.path(),
        "site",
        "max_rings = 1\nmax_talk_s = 1\ninternal_max_talk_s = 1\npersonal_max_talk_s = 1\neffective_min_talk_s = 1",
        "max_rings = 0\nmax_talk_s = 1\neffective_min_talk_s = 1",
    );
    assert_eq!(figures(&now), before, "stats read what was decided when the calls ended");

    // The same capture judged under that config is judged differently: the figures above
    // would have changed had stats judged again.
    let fresh = config(
        tmp.path(),
        "fresh",
        "max_rings = 1\nmax_talk_s = 1\ninternal_max_talk_s = 1\npersonal_max_talk_s = 1\neffective_min_talk_s = 1",
        "max_rings = 0\nmax_talk_s = 1\neffective_min_talk_s = 1",
    );
    run(&fresh, &["replay", "--json", "--quiet", pcap().to_str().expect("utf-8 path")]);
    let judged_now = figures(&fresh);
    assert_ne!(judged_now[0], before[0], "a 1 s limit makes the answered calls long");
    let long =
        |rows: &Value| rows.as_array().expect("rows").iter().filter_map(|r| r["long_calls"].as_u64()).sum::<u64>();
    assert!(long(&judged_now[0]) > long(&before[0]), "{} vs {}", judged_now[0], before[0]);
}
