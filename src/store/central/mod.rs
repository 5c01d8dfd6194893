//! The central store: the company's PostgreSQL that several sites forward to ([store]
//! central), read by `serve --store postgres://...` for one view over all sites. This
//! module owns the connection (URL, password from a file or PGPASSWORD, TLS), the
//! central schema and its numbered migrations (`migrations/`, the same numbers as
//! SQLite's), and the sites table; `forward` ships a site's committed rows here.
//! May use: postgres (sync client), rustls, the SQLite store below it; nothing above.
//! Invariants: a site commits to its own SQLite first and the central store only ever
//! receives committed rows; every central row is keyed by its site and its identity
//! there, so shipping a row twice writes it over; a central schema newer than this build
//! is refused, never written to; passwords are never logged (the URL carries none).

pub mod approvals;
pub mod forward;
pub mod playback;
pub mod read;
pub mod rollup;

use anyhow::{anyhow, bail, Context};
use postgres::config::Host;
use postgres::{Client, Config};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// (version, name, SQL) of the central schema, in order. The central history starts at
/// 9, where SQLite's was when the central store was made; from there a version is the
/// same change in both (a SQLite migration without a central counterpart gets an empty
/// file here, so the numbers stay one history).
pub const MIGRATIONS: &[(i32, &str, &str)] = &[
    (9, "0009_central", include_str!("migrations/0009_central.sql")),
    (10, "0010_approvals", include_str!("migrations/0010_approvals.sql")),
    (11, "0011_recordings_superseded", include_str!("migrations/0011_recordings_superseded.sql")),
    (12, "0012_stats_rollups", include_str!("migrations/0012_stats_rollups.sql")),
    (13, "0013_stats_changes", include_str!("migrations/0013_stats_changes.sql")),
];

/// The central schema version this build writes and reads.
pub fn latest() -> i32 {
    MIGRATIONS.last().map_or(0, |m| m.0)
}

/// Where the central store is and how to log in: from `[store] central*`, with relative
/// paths already resolved against the config's folder.
#[derive(Clone, Debug)]
pub struct Central {
    pub url: String,
    pub password_file: Option<PathBuf>,
    pub ca_file: Option<PathBuf>,
}

impl Central {
    /// The central store of a loaded config, if one is configured.
    pub fn of(store: &callwarden_core::config::Store, config_dir: &Path) -> Option<Central> {
        let url = store.central.trim();
        if url.is_empty() {
            return None;
        }
        let path = |p: &str| (!p.trim().is_empty()).then(|| config_dir.join(p.trim()));
        Some(Central {
            url: url.to_string(),
            password_file: path(&store.central_password_file),
            ca_file: path(&store.central_ca_file),
        })
    }

    /// A URL given on the command line (`serve --store postgres://...`).
    pub fn from_url(url: &str) -> anyhow::Result<Central> {
        callwarden_core::config::central_url_problem(url).map_err(|e| anyhow!("--store: {e}"))?;
        Ok(Central { url: url.to_string(), password_file: None, ca_file: None })
    }

    /// What may be shown of where the store is: host, port and database, never a password.
    pub fn shown(&self) -> String {
        match self.config() {
            Ok(c) => {
                let host = c
                    .get_hosts()
                    .first()
                    .map(|h| match h {
                        Host::Tcp(h) => h.clone(),
                        Host::Unix(p) => p.display().to_string(),
                    })
                    .unwrap_or_else(|| "localhost".into());
                let port = c.get_ports().first().copied().unwrap_or(5432);
                format!("postgres {}@{host}:{port}/{}", c.get_user().unwrap_or("?"), c.get_dbname().unwrap_or("?"))
            }
            Err(_) => "postgres (bad URL)".into(),
        }
    }

    /// The client config: the URL, then what it leaves out from the standard PG*
    /// variables (PGHOST, PGPORT, PGUSER, PGDATABASE), the password from the file or
    /// PGPASSWORD, and short timeouts (a site must never hang on its WAN).
    pub fn config(&self) -> anyhow::Result<Config> {
        let mut c: Config = self.url.parse().map_err(|e| anyhow!("store.central: not a PostgreSQL URL: {e}"))?;
        let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        if c.get_hosts().is_empty() {
            match env("PGHOST") {
                Some(h) if h.starts_with('/') => c.host_path(h),
                Some(h) => c.host(&h),
                None => c.host("localhost"),
            };
        }
        if c.get_ports().is_empty() {
            if let Some(p) = env("PGPORT").and_then(|p| p.parse().ok()) {
                c.port(p);
            }
        }
        if c.get_user().is_none() {
            let user = env("PGUSER").or_else(|| env("USER")).unwrap_or_else(|| "callwarden".into());
            c.user(&user);
        }
        if c.get_dbname().is_none() {
            if let Some(db) = env("PGDATABASE") {
                c.dbname(&db);
            }
        }
        if let Some(file) = &self.password_file {
            let text = std::fs::read_to_string(file)
                .with_context(|| format!("store.central_password_file: cannot read {}", file.display()))?;
            c.password(text.trim_end_matches(['\r', '\n']));
        } else if let Some(p) = env("PGPASSWORD") {
            c.password(p);
        }
        c.connect_timeout(Duration::from_secs(5));
        c.keepalives_idle(Duration::from_secs(30));
        c.application_name("callwarden");
        Ok(c)
    }

    /// TLS for `sslmode=prefer|require`: the public roots and the CA file, if any.
    pub fn tls(&self) -> anyhow::Result<tokio_postgres_rustls::MakeRustlsConnect> {
        use rustls_pki_types::pem::PemObject;
        let mut roots = rustls::RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() };
        if let Some(file) = &self.ca_file {
            let certs = rustls_pki_types::CertificateDer::pem_file_iter(file)
                .with_context(|| format!("store.central_ca_file: cannot read {}", file.display()))?;
            for cert in certs {
                let cert = cert.with_context(|| format!("store.central_ca_file: {} is not PEM", file.display()))?;
                roots
                    .add(cert)
                    .with_context(|| format!("store.central_ca_file: a certificate in {}", file.display()))?;
            }
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| anyhow!("TLS: {e}"))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(tokio_postgres_rustls::MakeRustlsConnect::new(tls))
    }

    /// One connection.
    pub fn connect(&self) -> anyhow::Result<Client> {
        self.config()?.connect(self.tls()?).map_err(|e| anyhow!("{}: {}", self.shown(), pg_error(&e)))
    }

    /// A pool of connections (the central reader, one per API request at a time).
    pub fn pool(
        &self,
        size: u32,
    ) -> anyhow::Result<
        r2d2_postgres::r2d2::Pool<r2d2_postgres::PostgresConnectionManager<tokio_postgres_rustls::MakeRustlsConnect>>,
    > {
        let manager = r2d2_postgres::PostgresConnectionManager::new(self.config()?, self.tls()?);
        r2d2_postgres::r2d2::Pool::builder()
            .max_size(size.max(1))
            .connection_timeout(Duration::from_secs(5))
            .build(manager)
            .map_err(|e| anyhow!("{}: {e}", self.shown()))
    }
}

/// A PostgreSQL error as one line, with the server's message when there is one (the
/// client's Display says only "db error").
pub fn pg_error(e: &postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{}: {}", db.severity(), db.message()),
        None => {
            let mut s = e.to_string();
            let mut src = std::error::Error::source(e);
            while let Some(inner) = src {
                s.push_str(": ");
                s.push_str(&inner.to_string());
                src = inner.source();
            }
            s
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CentralSchemaError {
    #[error(
        "the central store is at schema version {found}, newer than this build knows ({known}): upgrade this site's callwarden"
    )]
    TooNew { found: i32, known: i32 },
    #[error("central migration {name} failed: {msg}")]
    Failed { name: &'static str, msg: String },
    #[error("central store: {0}")]
    Pg(String),
}

/// The central store's schema version (0: empty database).
pub fn version(client: &mut Client) -> Result<i32, CentralSchemaError> {
    let pg = |e: postgres::Error| CentralSchemaError::Pg(pg_error(&e));
    let exists: bool = client.query_one("SELECT to_regclass('callwarden_schema') IS NOT NULL", &[]).map_err(pg)?.get(0);
    if !exists {
        return Ok(0);
    }
    let v: Option<i32> = client.query_one("SELECT max(version) FROM callwarden_schema", &[]).map_err(pg)?.get(0);
    Ok(v.unwrap_or(0))
}

/// Bring the central schema up to `latest()`; refuse one newer than this build. Each
/// migration runs in one transaction under an advisory lock, so sites starting together
/// migrate once. Returns the version found.
pub fn migrate(client: &mut Client) -> Result<i32, CentralSchemaError> {
    let pg = |e: postgres::Error| CentralSchemaError::Pg(pg_error(&e));
    let found = version(client)?;
    if found > latest() {
        return Err(CentralSchemaError::TooNew { found, known: latest() });
    }
    for &(v, name, sql) in MIGRATIONS.iter().filter(|m| m.0 > found) {
        let mut tx = client.transaction().map_err(pg)?;
        // One key for every callwarden migration: held until this transaction ends.
        tx.execute("SELECT pg_advisory_xact_lock(7140221)", &[]).map_err(pg)?;
        tx.batch_execute(
            "CREATE TABLE IF NOT EXISTS callwarden_schema (version INTEGER PRIMARY KEY, name TEXT NOT NULL,
                 applied_at TIMESTAMPTZ NOT NULL DEFAULT now())",
        )
        .map_err(pg)?;
        let now: Option<i32> = tx.query_one("SELECT max(version) FROM callwarden_schema", &[]).map_err(pg)?.get(0);
        let now = now.unwrap_or(0);
        if now > latest() {
            return Err(CentralSchemaError::TooNew { found: now, known: latest() });
        }
        if now >= v {
            continue; // another site migrated meanwhile
        }
        tx.batch_execute(sql).map_err(|e| CentralSchemaError::Failed { name, msg: pg_error(&e) })?;
        tx.execute("INSERT INTO callwarden_schema (version, name) VALUES ($1, $2)", &[&v, &name]).map_err(pg)?;
        tx.commit().map_err(pg)?;
        tracing::info!(version = v, name, "central store migrated");
    }
    Ok(found)
}

/// Check the central store's schema is one this build reads (for `serve --store`, which
/// does not migrate: a reader never changes a schema under the sites writing to it).
pub fn check_readable(client: &mut Client) -> anyhow::Result<()> {
    match version(client)? {
        0 => bail!("the central store has no callwarden schema yet: start a site with [store] central first"),
        v if v > latest() => Err(CentralSchemaError::TooNew { found: v, known: latest() }.into()),
        // Older: tables this build reads (the stats rollups, 0012) are not there yet, and a
        // reader does not add them; the sites do, when one running this build connects.
        v if v < latest() => bail!(
            "the central store is at schema version {v}, older than this build reads ({}): start a site daemon of \
             this version with [store] central first (it migrates the central store)",
            latest()
        ),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn central_versions_follow_sqlite_history() {
        let sqlite = super::super::migrations::latest() as i32;
        assert_eq!(latest(), sqlite, "a SQLite migration needs its central counterpart (an empty file if none)");
        for w in MIGRATIONS.windows(2) {
            assert_eq!(w[1].0, w[0].0 + 1, "{}", w[1].1);
        }
    }

    #[test]
    fn a_password_never_shows() {
        let c = Central::from_url("postgres://alice@db.example:5433/calls").unwrap();
        assert_eq!(c.shown(), "postgres alice@db.example:5433/calls");
        assert!(Central::from_url("postgres://alice:secret@db.example/calls").is_err());
        assert!(Central::from_url("mysql://db.example/calls").is_err());
    }
}
