//! Shared by the central-store tests (central_read, central_browser): a throwaway
//! PostgreSQL with the central schema, sites that replayed real captures into their
//! SQLite, their rows copied into the central tables as the forwarder ships them, the CLI
//! asked for JSON over either store, and `callwarden serve --store` started on an
//! ephemeral port. Needs `mod api_support; mod pg_support;` beside it.
#![allow(dead_code, reason = "each test binary uses a part of it")]

use crate::api_support::{Site, PUBLIC};
use crate::pg_support::Pg;
use callwarden::store::central::{self, Central};
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};

/// A central store with the schema the sites make.
pub fn central_store() -> Pg {
    let pg = Pg::start();
    let mut client = Central::from_url(&pg.url()).unwrap().connect().unwrap();
    central::migrate(&mut client).unwrap();
    pg
}

/// A site named `name` that replayed `captures`.
pub fn site(name: &str, captures: &[&str]) -> Site {
    let s = Site::new();
    let text =
        std::fs::read_to_string(&s.config).unwrap().replacen("[site]\n", &format!("[site]\nname = \"{name}\"\n"), 1);
    std::fs::write(&s.config, text).unwrap();
    let files: Vec<std::path::PathBuf> = captures.iter().map(|c| Path::new(PUBLIC).join(c)).collect();
    s.replay(&files.iter().map(|p| p.as_path()).collect::<Vec<_>>());
    s
}

/// Copy every committed row of the site's SQLite into the central tables under `name`,
/// column by column (the central tables have SQLite's column names), as the forwarder
/// ships them.
pub fn copy_site(s: &Site, name: &str, pg: &Pg) {
    let mut client = Central::from_url(&pg.url()).unwrap().connect().unwrap();
    client
        .execute(
            "INSERT INTO sites (name, instance, timezone, first_seen_us, last_seen_us)
             VALUES ($1, $2, 'Asia/Shanghai', 0, 0) ON CONFLICT DO NOTHING",
            &[&name, &format!("instance-{name}")],
        )
        .unwrap();
    let lite = rusqlite::Connection::open(&s.db).unwrap();
    for table in ["calls", "violations", "recordings", "playback_log"] {
        let cols: Vec<(String, String)> = client
            .query(
                "SELECT column_name::text, data_type::text FROM information_schema.columns
                 WHERE table_name = $1 AND column_name NOT IN ('site', 'seq') ORDER BY ordinal_position",
                &[&table],
            )
            .unwrap()
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect();
        let names: Vec<&str> = cols.iter().map(|c| c.0.as_str()).collect();
        let marks: Vec<String> = (2..=cols.len() + 1).map(|i| format!("${i}")).collect();
        let insert = format!("INSERT INTO {table} (site, {}) VALUES ($1, {})", names.join(", "), marks.join(", "));
        let mut stmt = lite.prepare(&format!("SELECT {} FROM {table}", names.join(", "))).unwrap();
        let mut rows = stmt.query([]).unwrap();
        while let Some(r) = rows.next().unwrap() {
            let mut params: Vec<Box<dyn postgres::types::ToSql + Sync>> = vec![Box::new(name.to_string())];
            for (i, (_, ty)) in cols.iter().enumerate() {
                if ty == "bigint" {
                    params.push(Box::new(r.get::<_, Option<i64>>(i).unwrap()));
                } else {
                    params.push(Box::new(r.get::<_, Option<String>>(i).unwrap()));
                }
            }
            let refs: Vec<&(dyn postgres::types::ToSql + Sync)> = params.iter().map(|p| p.as_ref()).collect();
            client.execute(&insert, &refs).unwrap();
        }
    }
}

/// `callwarden <args> --json` over the site's SQLite (`store` None) or the central store.
pub fn json(s: &Site, store: Option<&str>, args: &[&str]) -> Value {
    let mut all: Vec<&str> = args.to_vec();
    all.push("--json");
    if let Some(url) = store {
        all.extend(["--store", url]);
    }
    let out = s.cli(&all);
    assert!(out.status.success(), "{all:?}: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

pub fn len(v: &Value) -> usize {
    v.as_array().map_or(0, Vec::len)
}

/// Start `serve --store URL` on an ephemeral port; its address, or its exit and stderr.
pub fn serve(s: &Site, url: &str) -> Result<(std::process::Child, String), (Option<i32>, String)> {
    let mut child = Command::new(env!("CARGO_BIN_EXE_callwarden"))
        .args(["serve", "--listen", "127.0.0.1:0", "--store", url, "--config"])
        .arg(&s.config)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut said = String::new();
    while let Some(Ok(line)) = lines.next() {
        if let Some(rest) = line.split("http://").nth(1) {
            let addr = rest.trim_end_matches('/').to_string();
            // Keep draining stderr so the server never blocks on a full pipe.
            std::thread::spawn(move || lines.map_while(Result::ok).for_each(|l| eprintln!("serve: {l}")));
            return Ok((child, addr));
        }
        said.push_str(&line);
        said.push('\n');
    }
    let status = child.wait().unwrap();
    Err((status.code(), said))
}
