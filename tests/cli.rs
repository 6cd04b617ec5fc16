//! The binary as an operator runs it.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_switchboard");

#[test]
fn check_config_accepts_the_default_and_names_bad_keys() {
    let ok = Command::new(BIN).arg("check-config").env_remove("SWITCHBOARD_CONFIG").output().unwrap();
    assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stderr));

    let mut bad = tempfile::NamedTempFile::new().unwrap();
    writeln!(bad, "[server]\nlisten = \"127.0.0.1:1\"\ndrain_timout = \"5s\"").unwrap();
    let out = Command::new(BIN).arg("check-config").arg(bad.path()).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.trim().lines().count(), 1, "one clear line: {err}");
    assert!(err.contains("server.drain_timout"), "{err}");
    assert!(err.contains(&format!("{} line 3", bad.path().display())), "{err}");

    let out = Command::new(BIN)
        .args(["serve", "--config"])
        .arg(bad.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "serve refuses a bad config too");
}

#[test]
fn serve_prints_address_and_key_then_exits_zero_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(BIN)
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path())
        .env("RUST_LOG", "warn")
        // As `make run` starts it: with the demo departments and agent.
        .env("SWITCHBOARD_AUTH__DEMO_SEED", "true")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let listen_line = lines.next().unwrap().unwrap();
    let addr = listen_line.strip_prefix("switchboard listening on http://").expect(&listen_line).to_string();
    let key_line = lines.next().unwrap().unwrap();
    let key = key_line.strip_prefix("demo API key: ").expect(&key_line).to_string();
    assert!(key.starts_with("sb_"), "{key_line}");
    let pages: Vec<String> = (0..3).map(|_| lines.next().unwrap().unwrap()).collect();
    assert!(pages[0].ends_with(&format!("http://{addr}/#key={key}")), "{pages:?}");
    // The agent console link carries the demo agent's own key, not the tenant's.
    let agent_key = pages[1].split_once(&format!("http://{addr}/agent#key=")).map(|(_, k)| k).expect(&pages[1]);
    assert!(agent_key.starts_with("sb_") && agent_key != key, "{pages:?}");
    assert!(pages[2].ends_with(&format!("http://{addr}/supervisor#key={key}")), "{pages:?}");

    let mut stream = std::net::TcpStream::connect(&addr).unwrap();
    write!(stream, "GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
    let mut reply = String::new();
    std::io::Read::read_to_string(&mut stream, &mut reply).unwrap();
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");

    let started = Instant::now();
    Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(started.elapsed() < Duration::from_secs(15), "exits within the drain timeout");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{status:?}");
}

#[test]
fn apikey_create_prints_a_working_key() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(BIN)
        .args(["apikey", "create", "--tenant", "acme", "--data-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let key = String::from_utf8(out.stdout).unwrap();
    assert!(key.trim().starts_with("sb_") && key.trim().len() > 40, "{key}");
}
