//! Shared harness of the end-to-end suites: the compiled components (from `build.rs`) and
//! [`TestHost`], a real Cairn host on a loopback port over a temporary SQLite data directory,
//! driven over real HTTP.

use std::path::PathBuf;

use anyhow::{Context, Result};
use cairn::{Config, RunningHost};
use serde_json::Value;

include!(concat!(env!("OUT_DIR"), "/components.rs"));

/// The admin token every [`TestHost`] is configured with.
pub const ADMIN_TOKEN: &str = "test-admin-token-0123456789";

/// A host serving on `127.0.0.1:<random port>` with a fresh data directory.
pub struct TestHost {
    host: Option<RunningHost>,
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    /// The configuration it runs with (data and plugin dirs inside `dir`).
    pub config: Config,
    client: reqwest::Client,
    _dir: tempfile::TempDir,
}

/// A response: status and JSON body (`Value::Null` when the body is not JSON).
#[derive(Debug, Clone)]
pub struct Reply {
    /// HTTP status.
    pub status: u16,
    /// `content-type` header.
    pub content_type: String,
    /// Parsed body.
    pub body: Value,
    /// Response headers.
    pub headers: reqwest::header::HeaderMap,
}

impl TestHost {
    /// Starts a host with the given component files installed as plugins.
    pub async fn start(components: &[&str]) -> Result<Self> {
        Self::start_with(components, |_| {}).await
    }

    /// Like [`TestHost::start`], with a chance to adjust the configuration.
    pub async fn start_with(components: &[&str], adjust: impl FnOnce(&mut Config)) -> Result<Self> {
        let dir = tempfile::tempdir()?;
        let plugins = dir.path().join("plugins");
        std::fs::create_dir_all(&plugins)?;
        for component in components {
            let path = PathBuf::from(component);
            let name = path.file_name().context("component file name")?;
            std::fs::copy(&path, plugins.join(name))?;
        }
        let mut config = Config {
            listen: "127.0.0.1:0".parse()?,
            data_dir: dir.path().join("data"),
            plugins_dir: plugins,
            ..Config::default()
        };
        config.admin.token = Some(ADMIN_TOKEN.to_string());
        adjust(&mut config);
        let host = cairn::start(&config).await?;
        let base = format!("http://{}", host.addr());
        let client = reqwest::Client::builder().pool_max_idle_per_host(64).build()?;
        Ok(Self { host: Some(host), base, config, client, _dir: dir })
    }

    /// Stops the host and starts a new one on the same data directory (a new port).
    pub async fn restart(&mut self) -> Result<()> {
        if let Some(host) = self.host.take() {
            host.shutdown().await?;
        }
        let mut config = self.config.clone();
        config.listen = "127.0.0.1:0".parse()?;
        let host = cairn::start(&config).await?;
        self.base = format!("http://{}", host.addr());
        self.host = Some(host);
        Ok(())
    }

    /// The shared HTTP client.
    pub fn client(&self) -> &reqwest::Client {
        &self.client
    }

    /// `POST /v1/domains/{domain}/commands/{command}` with a JSON body.
    pub async fn command(&self, domain: &str, command: &str, body: Value) -> Result<Reply> {
        self.post_raw(&format!("/v1/domains/{domain}/commands/{command}"), body.to_string(), &[]).await
    }

    /// POSTs raw text with extra headers.
    pub async fn post_raw(&self, path: &str, body: String, headers: &[(&str, &str)]) -> Result<Reply> {
        let mut request =
            self.client.post(format!("{}{path}", self.base)).header("content-type", "application/json").body(body);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        Reply::from(request.send().await?).await
    }

    /// Uploads a component to `/admin/v1/plugins` (`query` like `?activate=false`).
    pub async fn deploy(&self, component: &str, query: &str) -> Result<Reply> {
        let bytes = std::fs::read(component)?;
        self.deploy_bytes(bytes, query).await
    }

    /// Uploads raw bytes as a component.
    pub async fn deploy_bytes(&self, bytes: Vec<u8>, query: &str) -> Result<Reply> {
        let request = self
            .client
            .post(format!("{}/admin/v1/plugins{query}", self.base))
            .bearer_auth(ADMIN_TOKEN)
            .header("content-type", "application/wasm")
            .body(bytes);
        Reply::from(request.send().await?).await
    }

    /// POSTs JSON to an admin path with the token.
    pub async fn admin_post(&self, path: &str, body: Value) -> Result<Reply> {
        let request = self.client.post(format!("{}{path}", self.base)).bearer_auth(ADMIN_TOKEN).json(&body);
        Reply::from(request.send().await?).await
    }

    /// GETs an admin path with the token.
    pub async fn admin_get(&self, path: &str) -> Result<Reply> {
        Reply::from(self.client.get(format!("{}{path}", self.base)).bearer_auth(ADMIN_TOKEN).send().await?).await
    }

    /// GETs a path.
    pub async fn get(&self, path: &str) -> Result<Reply> {
        Reply::from(self.client.get(format!("{}{path}", self.base)).send().await?).await
    }

    /// Reads a whole stream (all pages).
    pub async fn stream_events(&self, domain: &str, stream: &str) -> Result<Vec<Value>> {
        let mut events = Vec::new();
        let mut from = 1;
        loop {
            let page = self.get(&format!("/v1/domains/{domain}/streams/{stream}?from={from}&limit=1000")).await?;
            if page.status == 404 && from == 1 {
                return Ok(events);
            }
            anyhow::ensure!(page.status == 200, "reading {stream}: {page:?}");
            events.extend(page.body["events"].as_array().cloned().unwrap_or_default());
            match page.body["next_from"].as_u64() {
                Some(next) => from = next,
                None => return Ok(events),
            }
        }
    }
}

impl Reply {
    async fn from(response: reqwest::Response) -> Result<Self> {
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let content_type = headers.get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
        let text = response.text().await?;
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Ok(Self { status, content_type, body, headers })
    }

    /// Asserts the status, printing the whole reply otherwise.
    #[track_caller]
    pub fn expect(&self, status: u16) -> &Self {
        assert_eq!(self.status, status, "unexpected reply: {self:#?}");
        self
    }

    /// Asserts a problem+json reply with `status` and `code`.
    #[track_caller]
    pub fn expect_problem(&self, status: u16, code: &str) -> &Self {
        self.expect(status);
        assert_eq!(self.content_type, "application/problem+json", "{self:#?}");
        assert_eq!(self.body["code"], code, "{self:#?}");
        assert_eq!(self.body["status"], status, "{self:#?}");
        assert!(self.body["detail"].as_str().is_some_and(|d| !d.is_empty()), "{self:#?}");
        self
    }
}
