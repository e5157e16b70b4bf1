//! Admin commands against a running host: `cairn deploy FILE.wasm [--no-activate]`,
//! `cairn versions DOMAIN`, `cairn activate DOMAIN VERSION`, `cairn rollback DOMAIN [--to V]`,
//! `cairn status`. Tables for people by default, `--json` for scripts. [`execute`] returns the
//! text instead of printing it, so tests can check it.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde_json::Value;

/// Where the host is and how to authenticate.
#[derive(Debug, Clone, clap::Args)]
pub struct Connection {
    /// The host's base URL.
    #[arg(long, env = "CAIRN_SERVER", default_value = "http://127.0.0.1:8080", global = true)]
    pub server: String,
    /// The admin token.
    #[arg(long, env = "CAIRN_ADMIN_TOKEN", hide_env_values = true, global = true)]
    pub token: Option<String>,
    /// Print the API's JSON instead of tables.
    #[arg(long, global = true)]
    pub json: bool,
    /// A PEM file of CA certificates to trust for an `https://` server (a private CA), on top
    /// of the web PKI roots.
    #[arg(long, env = "CAIRN_CA_FILE", global = true)]
    pub ca_file: Option<PathBuf>,
}

/// The admin subcommands (each takes the [`Connection`] flags).
#[allow(missing_docs)] // clap reads `///` as help text; the flattened connection has its own
#[derive(Debug, Clone, clap::Subcommand)]
pub enum AdminCommand {
    /// Upload a plugin component; it is validated, shadow-replayed and (unless --no-activate) activated.
    Deploy {
        /// The `.wasm` component.
        file: PathBuf,
        /// Store it without activating it.
        #[arg(long)]
        no_activate: bool,
        #[command(flatten)]
        connection: Connection,
    },
    /// A domain's stored versions and its activation history.
    Versions {
        /// The domain.
        domain: String,
        #[command(flatten)]
        connection: Connection,
    },
    /// Make a stored version (semantic version or digest) the active one.
    Activate {
        /// The domain.
        domain: String,
        /// Semantic version or digest.
        version: String,
        #[command(flatten)]
        connection: Connection,
    },
    /// Return to the previously active version (or to --to VERSION).
    Rollback {
        /// The domain.
        domain: String,
        /// A specific version instead of the previous one.
        #[arg(long)]
        to: Option<String>,
        #[command(flatten)]
        connection: Connection,
    },
    /// Every domain with its active version.
    Status {
        #[command(flatten)]
        connection: Connection,
    },
}

/// Runs one admin command and returns what it prints.
pub async fn execute(command: AdminCommand) -> Result<String> {
    match command {
        AdminCommand::Deploy { file, no_activate, connection } => {
            let bytes = std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
            let path = if no_activate { "/admin/v1/plugins?activate=false" } else { "/admin/v1/plugins" };
            let progress = spinner(
                &format!("uploading {} ({} KiB), compiling, replaying", file.display(), bytes.len() / 1024),
                connection.json,
            );
            let reply = send(&connection, reqwest::Method::POST, path, Body::Wasm(bytes)).await;
            progress.finish_and_clear();
            let reply = reply?;
            render(&connection, &reply, deploy_table)
        }
        AdminCommand::Versions { domain, connection } => {
            let reply =
                send(&connection, reqwest::Method::GET, &format!("/admin/v1/domains/{domain}/versions"), Body::None)
                    .await?;
            render(&connection, &reply, versions_table)
        }
        AdminCommand::Activate { domain, version, connection } => {
            let progress = spinner(&format!("replaying {domain} through {version}, then activating"), connection.json);
            let body = serde_json::json!({ "version": version });
            let reply = send(
                &connection,
                reqwest::Method::POST,
                &format!("/admin/v1/domains/{domain}/activate"),
                Body::Json(body),
            )
            .await;
            progress.finish_and_clear();
            render(&connection, &reply?, |v| switched(&domain, v))
        }
        AdminCommand::Rollback { domain, to, connection } => {
            let body = serde_json::json!({ "version": to });
            let reply = send(
                &connection,
                reqwest::Method::POST,
                &format!("/admin/v1/domains/{domain}/rollback"),
                Body::Json(body),
            )
            .await?;
            render(&connection, &reply, |v| switched(&domain, v))
        }
        AdminCommand::Status { connection } => {
            let reply = send(&connection, reqwest::Method::GET, "/admin/v1/domains", Body::None).await?;
            render(&connection, &reply, status_table)
        }
    }
}

enum Body {
    None,
    Json(Value),
    Wasm(Vec<u8>),
}

async fn send(connection: &Connection, method: reqwest::Method, path: &str, body: Body) -> Result<Value> {
    let url = format!("{}{path}", connection.server.trim_end_matches('/'));
    let mut client = reqwest::Client::builder().use_rustls_tls();
    if let Some(path) = &connection.ca_file {
        let pem = crate::config::read_certificates(path, "--ca-file")?;
        for certificate in reqwest::Certificate::from_pem_bundle(&pem)? {
            client = client.add_root_certificate(certificate);
        }
    }
    let client = client.build().context("building the HTTP client")?;
    let mut request = client.request(method, &url).timeout(Duration::from_secs(300));
    if let Some(token) = &connection.token {
        request = request.bearer_auth(token);
    }
    request = match body {
        Body::None => request,
        Body::Json(value) => request.json(&value),
        Body::Wasm(bytes) => request.header("content-type", "application/wasm").body(bytes),
    };
    let response = request.send().await.map_err(|e| match crate::capabilities::gateway::tls_failure(&e) {
        Some(cause) => anyhow::anyhow!("cannot reach {url}: TLS failed: {cause}"),
        None => anyhow::Error::new(e).context(format!("cannot reach {url}")),
    })?;
    let status = response.status();
    let value: Value = response.json().await.unwrap_or(Value::Null);
    if !status.is_success() {
        let detail = value["detail"].as_str().unwrap_or("no detail");
        let code = value["code"].as_str().unwrap_or("error");
        let mut message = format!("{status} {code}: {detail}");
        if let Some(failures) = value["replay"]["failures"].as_array() {
            for failure in failures {
                let _ = write!(
                    message,
                    "\n  {}: {}",
                    failure["stream"].as_str().unwrap_or("?"),
                    failure["error"].as_str().unwrap_or("?")
                );
            }
        }
        bail!(message);
    }
    Ok(value)
}

fn spinner(message: &str, quiet: bool) -> indicatif::ProgressBar {
    if quiet {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new_spinner().with_message(message.to_string());
    bar.enable_steady_tick(Duration::from_millis(100));
    bar
}

fn render(connection: &Connection, value: &Value, table: impl Fn(&Value) -> String) -> Result<String> {
    if connection.json { Ok(format!("{}\n", serde_json::to_string_pretty(value)?)) } else { Ok(table(value)) }
}

fn short(digest: &Value) -> String {
    digest.as_str().map(|d| d.chars().take(12).collect()).unwrap_or_else(|| "-".into())
}

fn text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => "-".into(),
        other => other.to_string(),
    }
}

fn deploy_table(v: &Value) -> String {
    let replay = &v["replay"];
    let mut out = String::new();
    let _ = writeln!(out, "domain   {}", text(&v["domain"]));
    let _ = writeln!(out, "version  {}", text(&v["version"]));
    let _ = writeln!(out, "digest   {}", text(&v["digest"]));
    let _ = writeln!(out, "stored   {}", if v["newly_stored"] == true { "new" } else { "already stored" });
    let _ = writeln!(out, "active   {}", if v["active"] == true { "yes" } else { "no (staged)" });
    let _ = writeln!(
        out,
        "replay   {} streams, {} events folded, {} failures{} in {} ms",
        text(&replay["streams_checked"]),
        text(&replay["events_folded"]),
        replay["failures"].as_array().map_or(0, Vec::len),
        if replay["complete"] == true { "" } else { " (sampled)" },
        text(&replay["elapsed_ms"]),
    );
    out
}

fn versions_table(v: &Value) -> String {
    let mut out = format!("{:<12} {:<14} {:>10}  {:<26} ACTIVE\n", "VERSION", "DIGEST", "SIZE", "UPLOADED");
    for version in v["versions"].as_array().into_iter().flatten() {
        let _ = writeln!(
            out,
            "{:<12} {:<14} {:>10}  {:<26} {}",
            text(&version["version"]),
            short(&version["digest"]),
            text(&version["size"]),
            text(&version["uploaded_at"]),
            if version["active"] == true { "*" } else { "" },
        );
    }
    out.push_str("\nHISTORY\n");
    for entry in v["history"].as_array().into_iter().flatten() {
        let _ = writeln!(
            out,
            "{:<26} {:<9} {} -> {}",
            text(&entry["at"]),
            text(&entry["action"]),
            text(&entry["previous_version"]),
            text(&entry["version"]),
        );
    }
    out
}

fn switched(domain: &str, v: &Value) -> String {
    format!(
        "{domain}: {} now active ({} {})\n",
        text(&v["version"]),
        text(&v["activation"]["action"]),
        short(&v["activation"]["digest"]),
    )
}

fn status_table(v: &Value) -> String {
    let mut out = format!("{:<20} {:<12} {:<14} COMMANDS\n", "DOMAIN", "VERSION", "DIGEST");
    for domain in v["domains"].as_array().into_iter().flatten() {
        let commands: Vec<String> =
            domain["describe"]["commands"].as_array().into_iter().flatten().map(|c| text(&c["name"])).collect();
        let _ = writeln!(
            out,
            "{:<20} {:<12} {:<14} {}",
            text(&domain["domain"]),
            text(&domain["version"]),
            short(&domain["digest"]),
            commands.join(", ")
        );
    }
    out
}
