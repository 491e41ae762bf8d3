//! Helpers for tests of the real `sluice` binary: run a subcommand, start
//! `sluice serve` on a free port over a temporary data directory, kill it,
//! and wait on conditions with deadlines.
#![allow(dead_code)]

#[path = "../../../sluice-server/tests/common/shared.rs"]
mod shared;
pub use shared::*;

use serde_json::{Value, json};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

pub fn sluice() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_sluice"));
    for (name, _) in std::env::vars() {
        if name.starts_with("SLUICE_") || name == "RUST_LOG" {
            command.env_remove(name);
        }
    }
    command.env("SLUICE_LOG", "warn").stdin(Stdio::null());
    command
}

/// Runs `sluice ARGS` to completion with stdin `input`.
pub fn run(args: &[&str], envs: &[(&str, &str)], input: Option<&str>) -> Output {
    let mut command = sluice();
    command
        .args(args)
        .envs(envs.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if input.is_some() {
        command.stdin(Stdio::piped());
    }
    let mut child = command.spawn().expect("spawn sluice");
    if let Some(text) = input {
        use std::io::Write;
        let mut stdin = child.stdin.take().expect("stdin");
        stdin.write_all(text.as_bytes()).expect("write stdin");
    }
    child.wait_with_output().expect("sluice output")
}

pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// A port on 127.0.0.1 that was free a moment ago.
pub fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener.local_addr().expect("local addr").port()
}

/// A running `sluice serve`.
pub struct Server {
    pub child: Child,
    pub addr: SocketAddr,
    pub log: PathBuf,
}

impl Server {
    /// Starts `sluice serve --listen 127.0.0.1:<free port> --data-dir DIR
    /// EXTRA...`, waits until `/healthz` answers, and retries on another port
    /// if the chosen one was taken meanwhile. Its stderr goes to
    /// `DIR/../serve-N.log` (returned in panics).
    pub async fn start(data_dir: &Path, extra: &[&str], envs: &[(&str, &str)]) -> Server {
        let http = client();
        let mut last_log = String::new();
        for attempt in 0..5 {
            let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
            let log = data_dir.with_extension(format!("serve-{}-{attempt}.log", addr.port()));
            let log_file = std::fs::File::create(&log).expect("log file");
            let mut child = sluice()
                .env("SLUICE_LOG", "info")
                .envs(envs.iter().copied())
                .arg("serve")
                .arg("--listen")
                .arg(addr.to_string())
                .arg("--data-dir")
                .arg(data_dir)
                .args(extra)
                .stdout(Stdio::null())
                .stderr(log_file)
                .spawn()
                .expect("spawn sluice serve");
            let url = format!("http://{addr}/healthz");
            let deadline = tokio::time::Instant::now() + DEADLINE;
            loop {
                if let Ok(Some(status)) = child.try_wait() {
                    last_log = std::fs::read_to_string(&log).unwrap_or_default();
                    if last_log.contains("cannot listen") {
                        break; // port taken: try another
                    }
                    panic!("sluice serve exited with {status}:\n{last_log}");
                }
                if let Ok(response) = http.get(&url).send().await
                    && response.status().is_success()
                {
                    return Server { child, addr, log };
                }
                if tokio::time::Instant::now() > deadline {
                    let _ = child.kill();
                    panic!(
                        "sluice serve did not answer /healthz within {DEADLINE:?}:\n{}",
                        std::fs::read_to_string(&log).unwrap_or_default()
                    );
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        panic!("could not find a free port for sluice serve:\n{last_log}");
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGKILL: no shutdown code runs.
    pub fn kill9(mut self) {
        self.child.kill().expect("SIGKILL sluice serve");
        self.child.wait().expect("reap sluice serve");
    }

    /// SIGTERM, then wait for a clean exit.
    pub async fn stop(mut self) {
        let status = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status()
            .expect("kill -TERM");
        assert!(status.success());
        let exit = wait_for("sluice serve to exit after SIGTERM", DEADLINE, || {
            let exit = self.child.try_wait().ok().flatten();
            async move { exit }
        })
        .await;
        assert!(exit.success(), "exit status {exit}:\n{}", self.log_text());
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A website Purchase with raw personal data and consent granted.
pub fn raw_event(event_id: &str, pixel: Option<&str>) -> Value {
    let mut event = json!({
        "event_name": "Purchase",
        "event_time": now_secs() - 5,
        "event_id": event_id,
        "action_source": "website",
        "event_source_url": "https://shop.example.com/checkout/done",
        "consent": {"ad_user_data": "granted", "ad_personalization": "granted"},
        "user_data": {
            "em": "  Jane.Doe@Example.COM ",
            "ph": "+1 (650) 555-1212",
            "client_ip_address": "203.0.113.9",
            "client_user_agent": "Mozilla/5.0 (X11; Linux x86_64) e2e"
        },
        "custom_data": {"value": 42.5, "currency": "EUR"}
    });
    if let Some(pixel) = pixel {
        event["pixel_id"] = json!(pixel);
    }
    event
}
