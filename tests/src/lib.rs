//! Shared harness of the end-to-end suites: the compiled components (from `build.rs`) and
//! [`Host`], a real Cairn host on a loopback port, driven over real HTTP, over a temporary
//! SQLite data directory ([`TestHost`]) or a fresh schema of the PostgreSQL database named by
//! `CAIRN_TEST_POSTGRES_URL` ([`PgTestHost`]).

use std::marker::PhantomData;
use std::path::PathBuf;

use anyhow::{Context, Result};
use cairn::{Config, RunningHost};
use serde_json::Value;

include!(concat!(env!("OUT_DIR"), "/components.rs"));

pub mod native;
mod proxy;
mod served;
pub mod tls;
pub use proxy::TcpProxy;
pub use served::Served;

/// The admin token every [`TestHost`] is configured with.
pub const ADMIN_TOKEN: &str = "test-admin-token-0123456789";

/// The variable naming the PostgreSQL database of the PostgreSQL suites.
pub const POSTGRES_URL_VARIABLE: &str = "CAIRN_TEST_POSTGRES_URL";

/// Where a test host keeps its data.
pub trait Backend: Send + Sync + 'static {
    /// Points a fresh host's configuration at a fresh, empty store.
    fn prepare(config: &mut Config) -> Result<()>;
}

/// The embedded SQLite database in the host's temporary data directory.
pub struct Sqlite;

impl Backend for Sqlite {
    fn prepare(_config: &mut Config) -> Result<()> {
        Ok(())
    }
}

/// A fresh schema of the PostgreSQL database named by [`POSTGRES_URL_VARIABLE`].
pub struct Postgres;

impl Backend for Postgres {
    fn prepare(config: &mut Config) -> Result<()> {
        static CLEANED: std::sync::Once = std::sync::Once::new();
        CLEANED.call_once(|| {
            let cleaning = std::thread::spawn(|| {
                let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
                runtime.block_on(drop_old_schemas())
            });
            if let Ok(Err(e)) = cleaning.join() {
                eprintln!("dropping old test schemas failed: {e:#}");
            }
        });
        config.database.url = Some(postgres_url()?);
        config.database.schema = Some(fresh_schema());
        // A command handler's stream reads go over the network within its deadline: with the
        // whole suite running at once on a 2-core machine, PostgreSQL answers can take longer
        // than the 100 ms default. Tests of the deadline set their own.
        config.limits.deadline_ms = 1000;
        Ok(())
    }
}

/// The URL of the test database.
pub fn postgres_url() -> Result<String> {
    std::env::var(POSTGRES_URL_VARIABLE).with_context(|| format!("{POSTGRES_URL_VARIABLE} is not set"))
}

/// A schema name no test has used: `cairn_e2e_<unix seconds>_<random>` (the time lets a later
/// run drop what old runs left, see [`drop_old_schemas`]).
pub fn fresh_schema() -> String {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_secs();
    format!("cairn_e2e_{now}_{}", &uuid::Uuid::new_v4().simple().to_string()[..16])
}

/// Drops the schemas test runs left more than an hour ago.
pub async fn drop_old_schemas() -> Result<()> {
    use sqlx::Connection;
    let mut conn = sqlx::PgConnection::connect(&postgres_url()?).await?;
    let schemas: Vec<String> =
        sqlx::query_scalar("SELECT nspname FROM pg_namespace WHERE nspname LIKE 'cairn\\_e2e\\_%'")
            .fetch_all(&mut conn)
            .await?;
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_secs();
    for schema in schemas {
        let made: u64 = schema.split('_').nth(2).and_then(|t| t.parse().ok()).unwrap_or(now);
        if made + 3600 < now {
            sqlx::query(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE")).execute(&mut conn).await?;
        }
    }
    Ok(())
}

/// A test host on SQLite.
pub type TestHost = Host<Sqlite>;
/// A test host on PostgreSQL.
pub type PgTestHost = Host<Postgres>;

/// A host serving on `127.0.0.1:<random port>` with a fresh data directory and a fresh store.
pub struct Host<B: Backend> {
    host: Option<RunningHost>,
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    /// The configuration it runs with (data and plugin dirs inside `dir`).
    pub config: Config,
    client: reqwest::Client,
    _dir: tempfile::TempDir,
    _backend: PhantomData<B>,
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

impl<B: Backend> Host<B> {
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
        B::prepare(&mut config)?;
        adjust(&mut config);
        let host = cairn::start(&config).await?;
        let scheme = if config.http.tls.is_some() { "https" } else { "http" };
        let base = format!("{scheme}://{}", host.addr());
        let client = reqwest::Client::builder().pool_max_idle_per_host(64).build()?;
        Ok(Self { host: Some(host), base, config, client, _dir: dir, _backend: PhantomData })
    }

    /// Shuts the host down as a SIGTERM would ([`Host::restart`] starts it again).
    pub async fn stop(&mut self) -> Result<()> {
        if let Some(host) = self.host.take() {
            host.shutdown().await?;
        }
        Ok(())
    }

    /// Stops the host and starts a new one on the same data directory (a new port).
    pub async fn restart(&mut self) -> Result<()> {
        if let Some(host) = self.host.take() {
            host.shutdown().await?;
        }
        let mut config = self.config.clone();
        config.listen = "127.0.0.1:0".parse()?;
        let host = cairn::start(&config).await?;
        let scheme = if config.http.tls.is_some() { "https" } else { "http" };
        self.base = format!("{scheme}://{}", host.addr());
        self.host = Some(host);
        Ok(())
    }

    /// The running host's plugin registry.
    pub fn registry(&self) -> &std::sync::Arc<cairn::registry::Registry> {
        self.host.as_ref().expect("the host is running").registry()
    }

    /// Replaces the HTTP client (one trusting a test CA, for a host serving HTTPS).
    pub fn with_client(mut self, client: reqwest::Client) -> Self {
        self.client = client;
        self
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

    /// Asserts a success: 200 or 201.
    #[track_caller]
    pub fn expect_ok(&self) -> &Self {
        assert!(self.status == 200 || self.status == 201, "unexpected reply: {self:#?}");
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
