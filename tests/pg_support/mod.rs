//! A throwaway PostgreSQL cluster for the central-store tests: Debian's `postgresql`
//! server (installed by scripts/install-test-deps), made with `initdb` in a temp dir,
//! listening only on a Unix socket in that dir (no TCP port, so parallel tests never
//! collide), started with `pg_ctl` and stopped by the postmaster's pid. As root the
//! server runs as the `postgres` user (PostgreSQL refuses to run as root).
#![allow(dead_code, reason = "each test file uses a different part of this module")]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

pub struct Pg {
    _dir: tempfile::TempDir,
    root: PathBuf,
    pub socket_dir: PathBuf,
    pid: Option<i32>,
    password: Option<String>,
}

/// The server's binaries: Debian's newest /usr/lib/postgresql/N/bin, else PATH.
fn bin(name: &str) -> PathBuf {
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|d| d.filter_map(|e| e.ok()).map(|e| e.path().join("bin")).filter(|p| p.join(name).exists()).collect())
        .unwrap_or_default();
    versions.sort();
    versions.pop().map(|p| p.join(name)).unwrap_or_else(|| PathBuf::from(name))
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// `cmd` as the cluster's owner: `runuser -u postgres --` when root.
fn as_owner(program: &Path) -> Command {
    if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(program);
        c
    } else {
        Command::new(program)
    }
}

impl Pg {
    /// A new cluster, started. Panics with what went wrong (a missing server is a broken
    /// test machine, not a reason to skip).
    pub fn start() -> Pg {
        Pg::start_with(None)
    }

    /// A new cluster whose user `postgres` needs `password` (SCRAM), started.
    pub fn start_with_password(password: &str) -> Pg {
        Pg::start_with(Some(password))
    }

    fn start_with(password: Option<&str>) -> Pg {
        let dir = tempfile::Builder::new().prefix("cw-pg").tempdir_in("/tmp").expect("temp dir");
        let root = dir.path().to_path_buf();
        let data = root.join("data");
        if is_root() {
            let st = Command::new("chown").args(["-R", "postgres:postgres"]).arg(&root).status().expect("chown");
            assert!(st.success(), "chown the cluster dir to postgres");
        }
        let mut initdb = as_owner(&bin("initdb"));
        initdb.args(["-D"]).arg(&data).args(["-U", "postgres", "-E", "UTF8", "--locale=C.UTF-8", "-N"]);
        match password {
            None => {
                initdb.arg("--auth=trust");
            }
            Some(pw) => {
                let file = root.join("pwfile");
                std::fs::write(&file, pw).expect("pwfile");
                if is_root() {
                    let st = Command::new("chown").args(["postgres:postgres"]).arg(&file).status().expect("chown");
                    assert!(st.success());
                }
                initdb.arg("--auth=scram-sha-256").arg(format!("--pwfile={}", file.display()));
            }
        }
        let out = initdb.output().expect("run initdb (apt-get install postgresql)");
        assert!(out.status.success(), "initdb: {}", String::from_utf8_lossy(&out.stderr));
        let mut pg =
            Pg { _dir: dir, socket_dir: root.clone(), root, pid: None, password: password.map(str::to_string) };
        pg.start_again();
        pg
    }

    /// A streaming replica of this running cluster (made without a password): a base
    /// backup with `pg_basebackup -R` into a temp dir of its own, started on a socket of
    /// its own. It is read only and follows the primary's writes; stopped by pid as any.
    pub fn replica(&self) -> Pg {
        assert!(self.password.is_none(), "a replica of a passwordless cluster only");
        let dir = tempfile::Builder::new().prefix("cw-pg-replica").tempdir_in("/tmp").expect("temp dir");
        let root = dir.path().to_path_buf();
        if is_root() {
            let st = Command::new("chown").args(["-R", "postgres:postgres"]).arg(&root).status().expect("chown");
            assert!(st.success(), "chown the replica dir to postgres");
        }
        let out = as_owner(&bin("pg_basebackup"))
            .arg("-D")
            .arg(root.join("data"))
            .arg("-h")
            .arg(&self.socket_dir)
            .args(["-U", "postgres", "-R", "-X", "stream", "-c", "fast"])
            .output()
            .expect("run pg_basebackup");
        assert!(out.status.success(), "pg_basebackup: {}", String::from_utf8_lossy(&out.stderr));
        let mut pg = Pg { _dir: dir, socket_dir: root.clone(), root, pid: None, password: None };
        pg.start_again();
        pg
    }

    fn data(&self) -> PathBuf {
        self.root.join("data")
    }

    /// Start the (stopped) cluster and wait until it answers.
    pub fn start_again(&mut self) {
        let sock = self.socket_dir.display().to_string();
        let opts = format!("-c listen_addresses='' -k {sock} -c fsync=off -c max_connections=60");
        let out = as_owner(&bin("pg_ctl"))
            .arg("-D")
            .arg(self.data())
            .args(["-l"])
            .arg(self.root.join("log"))
            .args(["-o", &opts, "-w", "-t", "60", "start"])
            .output()
            .expect("run pg_ctl");
        let log = std::fs::read_to_string(self.root.join("log")).unwrap_or_default();
        assert!(out.status.success(), "pg_ctl start: {}\n{log}", String::from_utf8_lossy(&out.stderr));
        let pidfile = std::fs::read_to_string(self.data().join("postmaster.pid")).expect("postmaster.pid");
        self.pid = pidfile.lines().next().and_then(|l| l.trim().parse().ok());
        assert!(self.pid.is_some(), "no pid in postmaster.pid");
    }

    /// Stop the cluster (fast shutdown: SIGINT to the postmaster we started), wait until
    /// it is gone.
    pub fn stop(&mut self) {
        let Some(pid) = self.pid.take() else { return };
        // SAFETY: kill(2) on the pid of the postmaster this test started.
        unsafe { libc::kill(pid, libc::SIGINT) };
        let t = Instant::now();
        // SAFETY: signal 0 only checks the pid exists.
        while unsafe { libc::kill(pid, 0) } == 0 && t.elapsed() < Duration::from_secs(30) {
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The URL a site or `serve --store` is given: the socket dir as the host.
    pub fn url(&self) -> String {
        let host: String = self
            .socket_dir
            .display()
            .to_string()
            .bytes()
            .map(|b| if b == b'/' { "%2F".to_string() } else { (b as char).to_string() })
            .collect();
        format!("postgres://postgres@{host}/postgres")
    }

    /// One SQL statement through psql; its rows as `a|b` lines.
    pub fn psql(&self, sql: &str) -> String {
        let out = Command::new(bin("psql"))
            .env("PGPASSWORD", self.password.as_deref().unwrap_or(""))
            .arg("-h")
            .arg(&self.socket_dir)
            .args(["-U", "postgres", "-d", "postgres", "-At", "-v", "ON_ERROR_STOP=1", "-c", sql])
            .output()
            .expect("run psql");
        assert!(out.status.success(), "psql {sql}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).trim_end().to_string()
    }

    /// One number from psql.
    pub fn count(&self, sql: &str) -> i64 {
        let text = self.psql(sql);
        text.trim().parse().unwrap_or_else(|_| panic!("{sql}: {text:?} is not a number"))
    }
}

impl Drop for Pg {
    fn drop(&mut self) {
        self.stop();
    }
}
