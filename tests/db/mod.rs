//! Test databases: a fresh SQLite file, or a fresh database on a real PostgreSQL server.
//!
//! `make test` starts one PostgreSQL cluster for the run and exports its URL as
//! `TEST_POSTGRES_URL`; each test creates its own database in it. Run without
//! that variable (a bare `cargo test`), a test starts a private cluster of its own instead, so
//! the PostgreSQL tests never silently skip.

#![allow(dead_code)]

use std::path::PathBuf;
use std::process::Command;

use sqlx::Connection;
use switchboard::config::Config;

pub enum Backend {
    Sqlite,
    Postgres,
}

/// A database for one test; keeps its files and any private cluster alive while held.
pub struct TestDb {
    pub url: Option<String>,
    pub data_dir: tempfile::TempDir,
    pub cluster: Option<PgCluster>,
}

impl TestDb {
    pub async fn new(backend: Backend) -> Self {
        let data_dir = tempfile::tempdir().expect("temp dir");
        match backend {
            Backend::Sqlite => Self { url: None, data_dir, cluster: None },
            Backend::Postgres => {
                let (server_url, cluster) = match std::env::var("TEST_POSTGRES_URL") {
                    Ok(url) => (url, None),
                    Err(_) => {
                        let c = PgCluster::start();
                        (c.url(), Some(c))
                    }
                };
                let url = create_database(&server_url).await;
                Self { url: Some(url), data_dir, cluster }
            }
        }
    }

    /// The embedded default configuration pointed at this database, listening on a free port.
    pub fn config(&self) -> Config {
        let mut cfg = Config::load_with_env(None, Vec::new()).expect("embedded config loads");
        cfg.server.listen = "127.0.0.1:0".parse().expect("valid address");
        cfg.server.data_dir = self.data_dir.path().to_path_buf();
        cfg.server.drain_timeout = std::time::Duration::from_secs(2);
        cfg.database.url = self.url.clone();
        cfg
    }
}

async fn create_database(server_url: &str) -> String {
    let name = format!("t_{}", uuid::Uuid::new_v4().simple());
    let mut conn = sqlx::PgConnection::connect(server_url).await.expect("connect to test PostgreSQL");
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut conn)
        .await
        .expect("create test database");
    let base = server_url.rsplit_once('/').map_or(server_url, |(b, _)| b);
    format!("{base}/{name}")
}

/// A private PostgreSQL cluster on a free loopback port, stopped and deleted on drop.
pub struct PgCluster {
    dir: tempfile::TempDir,
    bindir: PathBuf,
    port: u16,
}

impl PgCluster {
    pub fn start() -> Self {
        let bindir = std::fs::read_dir("/usr/lib/postgresql")
            .ok()
            .and_then(|d| d.filter_map(|e| e.ok()).map(|e| e.path().join("bin")).filter(|p| p.join("initdb").exists()).max())
            .expect("PostgreSQL server binaries under /usr/lib/postgresql (apt-get install postgresql)");
        let dir = tempfile::tempdir().expect("temp dir");
        let port = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("free port").port();
        let cluster = Self { dir, bindir, port };
        if is_root() {
            run(Command::new("chown").arg("postgres:").arg(cluster.dir.path()));
        }
        run(cluster.pg("initdb").arg("-D").arg(cluster.data()).args(["-A", "trust", "-U", "postgres"]));
        cluster.start_again();
        cluster
    }

    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    pub fn stop(&self) {
        run(self.pg("pg_ctl").arg("-D").arg(self.data()).args(["-m", "fast", "-w", "stop"]));
    }

    pub fn start_again(&self) {
        let opts = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
            self.port,
            self.dir.path().display()
        );
        run(self
            .pg("pg_ctl")
            .arg("-D")
            .arg(self.data())
            .arg("-l")
            .arg(self.dir.path().join("log"))
            .args(["-w", "-o", &opts, "start"]));
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn pg(&self, tool: &str) -> Command {
        let bin = self.bindir.join(tool);
        if is_root() {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(bin);
            c
        } else {
            Command::new(bin)
        }
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        let _ = self
            .pg("pg_ctl")
            .arg("-D")
            .arg(self.data())
            .args(["-m", "immediate", "stop"])
            .output();
    }
}

fn is_root() -> bool {
    Command::new("id").arg("-u").output().map(|o| o.stdout.starts_with(b"0")).unwrap_or(false)
}

fn run(cmd: &mut Command) {
    let out = cmd.output().unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
