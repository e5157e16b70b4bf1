//! [`Served`]: a real `cairn serve` process (the examples launcher) on a loopback port, for the
//! suites that kill hosts or run several of them. With `CAIRN_TEST_HOST_LOGS` set, the processes'
//! logs go to the test's output.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::ADMIN_TOKEN;

/// A `serve-examples` process and a client for it. Killed when dropped.
pub struct Served {
    /// The process.
    pub child: Child,
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    /// A client for it.
    pub client: reqwest::Client,
}

impl Served {
    /// Starts `binary` (the `serve-examples` launcher) with `data` as its data directory and
    /// `env` added to its environment, and waits until `/readyz` answers 200.
    pub async fn start(binary: &str, data: &Path, env: &[(&str, &str)]) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port());
        let port = port.expect("a free port");
        let mut command = Command::new(binary);
        command
            .args(["--data", &data.display().to_string(), "--listen", &format!("127.0.0.1:{port}")])
            .env("CAIRN_ADMIN_TOKEN", ADMIN_TOKEN)
            // The suites poll the admin API every few milliseconds.
            .env("CAIRN_ADMIN__RATE_LIMIT_PER_MINUTE", "1000000")
            .env("CAIRN_ADMIN__RATE_LIMIT_BURST", "100000")
            .stdout(if std::env::var_os("CAIRN_TEST_HOST_LOGS").is_some() { Stdio::inherit() } else { Stdio::null() })
            .stderr(if std::env::var_os("CAIRN_TEST_HOST_LOGS").is_some() { Stdio::inherit() } else { Stdio::null() });
        for (name, value) in env {
            command.env(name, value);
        }
        let child = command.spawn().expect("starting serve-examples");
        let served = Self { child, base: format!("http://127.0.0.1:{port}"), client: reqwest::Client::new() };
        let started = Instant::now();
        while served.client.get(format!("{}/readyz", served.base)).send().await.map_or(true, |r| r.status() != 200) {
            assert!(started.elapsed() < Duration::from_secs(60), "the host did not become ready");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        served
    }

    /// POSTs JSON (with the admin token): status and body.
    pub async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        let request = self.client.post(format!("{}{path}", self.base)).bearer_auth(ADMIN_TOKEN).json(&body);
        let reply = request.send().await.expect("the host answers");
        (reply.status().as_u16(), reply.json().await.unwrap_or(Value::Null))
    }

    /// GETs a path (with the admin token): status and body.
    pub async fn get(&self, path: &str) -> (u16, Value) {
        let reply = self.client.get(format!("{}{path}", self.base)).bearer_auth(ADMIN_TOKEN).send().await;
        let reply = reply.expect("the host answers");
        (reply.status().as_u16(), reply.json().await.unwrap_or(Value::Null))
    }

    /// Every live projection generation of this host (`/admin/v1/projections`).
    pub async fn projections(&self) -> Vec<Value> {
        self.get("/admin/v1/projections").await.1["projections"].as_array().cloned().unwrap_or_default()
    }

    /// Kills the process (SIGKILL) and reaps it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        self.kill();
    }
}
