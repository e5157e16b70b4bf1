//! Cairn against its peers (`--peers`): the peer kit (`../shared/peers` beside the clone: a
//! hand-written axum + sqlx bank, the same bank on cqrs-es, an HTTP ceiling and the `bankload`
//! load generator) is copied into `<target dir>/peers`, built there with its own
//! `cargo build --release` (its target dir is kept between runs: the first build is long), and
//! its `bench.sh` runs every target, Cairn included (the release `cairn` binary serving the
//! `bank` component), in rounds on fresh databases. Prints bench.sh's table, then Cairn's ratio
//! to each peer on the same store, round by round: medians (min-max).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, Result};
use cairn_tests::{BANK_DECIDE_ONLY_COMPONENT, POSTGRES_URL_VARIABLE};
use serde_json::Value;

/// How `--peers` runs `bench.sh`.
pub(crate) struct PeersOptions {
    /// Rounds: every target runs once per round.
    pub rounds: usize,
    /// Seconds of load per run.
    pub seconds: f64,
    /// bankload's concurrent clients.
    pub clients: usize,
    /// Accounts opened before the load.
    pub accounts: usize,
}

/// The targets on SQLite, and those added when PostgreSQL is configured.
const SQLITE_TARGETS: &str = "ceiling cqrs-sqlite native-sqlite cairn-sqlite";
const POSTGRES_TARGETS: &str = "cqrs-postgres native-postgres cairn-postgres";

pub(crate) fn peers(options: PeersOptions) -> Result<()> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().context("the workspace root")?.to_path_buf();
    let kit = root.join("../shared/peers");
    anyhow::ensure!(
        kit.join("bench.sh").exists(),
        "the peer kit is not at {}: `--peers` expects `../shared/peers` beside the clone",
        kit.display()
    );
    let kit = kit.canonicalize()?;
    let target_dir = match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => root.join(dir),
        None => root.join("target"),
    };
    let copy = target_dir.join("peers");
    let changed = sync(&kit, &copy)?;
    println!("peer kit: {} -> {} ({changed} files updated)", kit.display(), copy.display());

    println!("building the peer kit (cargo build --release in its copy; ~9 min the first time) ...");
    run(
        cargo().current_dir(&copy).args(["build", "--release"]).env_remove("CARGO_TARGET_DIR"),
        "building the peer kit",
    )?;
    // With this bench's package selected too, the dependencies' features are the ones this
    // bench was built with: the binary only links, and the next `cargo bench-cairn` rebuilds nothing.
    println!("building the cairn binary (cargo build --release -p cairn -p cairn-tests --bin cairn) ...");
    let build_cairn = ["build", "--release", "-p", "cairn", "-p", "cairn-tests", "--bin", "cairn"];
    run(cargo().current_dir(&root).args(build_cairn), "building cairn")?;
    let cairn = target_dir.join("release").join("cairn");
    anyhow::ensure!(cairn.exists(), "no cairn binary at {}", cairn.display());

    let postgres = std::env::var(POSTGRES_URL_VARIABLE).ok().map(|url| server_url(&url));
    let targets = std::env::var("TARGETS").unwrap_or_else(|_| match postgres {
        Some(_) => format!("{SQLITE_TARGETS} {POSTGRES_TARGETS}"),
        None => SQLITE_TARGETS.to_string(),
    });
    if postgres.is_none() {
        println!("{POSTGRES_URL_VARIABLE} is not set: the PostgreSQL targets are SKIPPED");
    }
    match std::env::var("RUST_LOG") {
        Ok(filter) => println!("cairn serve logs with RUST_LOG={filter}"),
        Err(_) => println!("cairn serve logs at its default level, info: one access line per request"),
    }
    println!(
        "bench.sh: {} rounds x [{targets}], {} s, {} clients, {} accounts\n",
        options.rounds, options.seconds, options.clients, options.accounts
    );
    let mut bench = Command::new("bash");
    bench
        .current_dir(&copy)
        .arg("bench.sh")
        .args([options.rounds.to_string(), options.seconds.to_string()])
        .args([options.clients.to_string(), options.accounts.to_string()])
        .env("CAIRN_BIN", &cairn)
        // The bank without its read side: the peers keep no read model, so neither does Cairn here.
        .env("BANK_WASM", BANK_DECIDE_ONLY_COMPONENT)
        .env("TARGETS", &targets)
        .env_remove("CARGO_TARGET_DIR")
        .stdout(Stdio::piped());
    if let Some(url) = &postgres {
        bench.env("PG_URL", url);
    }
    let results = run_bench(bench, &copy)?;
    let runs = std::fs::read_to_string(copy.join(&results).join("runs.jsonl"))
        .with_context(|| format!("reading {results}/runs.jsonl"))?
        .lines()
        .map(serde_json::from_str)
        .collect::<Result<Vec<Value>, _>>()?;
    print_ratios(&runs);
    Ok(())
}

/// `cargo`, as the one running this bench, without the flags a `cargo run` may have set.
fn cargo() -> Command {
    let mut cargo = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    for var in ["RUSTFLAGS", "CARGO_ENCODED_RUSTFLAGS", "CARGO_BUILD_TARGET"] {
        cargo.env_remove(var);
    }
    cargo
}

fn run(command: &mut Command, what: &str) -> Result<()> {
    let status = command.status().with_context(|| format!("{what}: starting {command:?}"))?;
    anyhow::ensure!(status.success(), "{what} failed ({status})");
    Ok(())
}

/// Runs bench.sh from `copy`, echoing its own lines (runs, table, results folder); returns its
/// results folder (relative to `copy`). What else reaches its standard output comes from the
/// servers it starts (bench.sh sends only their standard error to its logs, and `cairn serve`
/// logs to standard output, an access line per request): that goes to
/// `servers-stdout.log` in the results folder instead of the screen.
fn run_bench(mut bench: Command, copy: &Path) -> Result<String> {
    use std::io::BufRead;
    let mut child = bench.spawn().context("starting bench.sh")?;
    let stdout = child.stdout.take().context("bench.sh's output")?;
    let (mut results, mut servers) = (None, String::new());
    for line in std::io::BufReader::new(stdout).lines() {
        let line = line?;
        let ours = line.starts_with("{\"target\"") || line.starts_with('|') || line.starts_with("results in ");
        if !ours {
            servers.push_str(&line);
            servers.push('\n');
            continue;
        }
        println!("{line}");
        if let Some(folder) = line.strip_prefix("results in ") {
            results = Some(folder.trim().to_string());
        }
    }
    let status = child.wait()?;
    let log = copy.join(results.as_deref().unwrap_or(".")).join("servers-stdout.log");
    std::fs::write(&log, &servers)?;
    if !servers.is_empty() {
        println!("({} lines of the servers' standard output are in {})", servers.lines().count(), log.display());
    }
    anyhow::ensure!(status.success(), "bench.sh failed ({status}); its server logs are in its results folder");
    results.context("bench.sh did not say where its results are")
}

/// Copies the kit's files into `copy` (not its `target` or `results` folders), writable, and
/// only those that differ, so cargo keeps its build; returns how many it wrote.
fn sync(kit: &Path, copy: &Path) -> Result<usize> {
    let mut written = 0;
    let mut folders = vec![PathBuf::new()];
    while let Some(folder) = folders.pop() {
        std::fs::create_dir_all(copy.join(&folder))?;
        for entry in std::fs::read_dir(kit.join(&folder))? {
            let entry = entry?;
            let relative = folder.join(entry.file_name());
            if entry.file_type()?.is_dir() {
                if !(folder.as_os_str().is_empty()
                    && ["target", "results"].contains(&&*entry.file_name().to_string_lossy()))
                {
                    folders.push(relative);
                }
                continue;
            }
            let bytes = std::fs::read(entry.path())?;
            let to = copy.join(&relative);
            if std::fs::read(&to).ok().as_deref() == Some(&bytes[..]) {
                continue;
            }
            if to.exists() {
                std::fs::remove_file(&to)?; // the kit is read-only, and so was an earlier copy
            }
            std::fs::write(&to, &bytes)?;
            if relative.extension().is_some_and(|e| e == "sh") {
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(&to, std::fs::Permissions::from_mode(0o755))?;
            }
            written += 1;
        }
    }
    Ok(written)
}

/// bench.sh wants the server's URL without a database name: `postgres://u@h:5432/test` →
/// `postgres://u@h:5432`.
fn server_url(url: &str) -> String {
    let after_scheme = url.find("://").map_or(0, |i| i + 3);
    match url[after_scheme..].find('/') {
        Some(slash) => url[..after_scheme + slash].to_string(),
        None => url.to_string(),
    }
}

/// One figure of every run of `target`, by round.
fn by_round(runs: &[Value], target: &str, field: &str) -> Vec<(u64, f64)> {
    runs.iter()
        .filter(|r| r["target"] == target)
        .filter_map(|r| Some((r["run"].as_u64()?, r[field].as_f64()?)))
        .collect()
}

/// `median (min-max)` of round-by-round ratios `top / bottom` of `field`.
fn ratio(runs: &[Value], top: &str, bottom: &str, field: &str) -> Option<String> {
    let bottoms = by_round(runs, bottom, field);
    let mut ratios: Vec<f64> = by_round(runs, top, field)
        .into_iter()
        .filter_map(|(round, value)| {
            let (_, below) = bottoms.iter().find(|(r, _)| *r == round)?;
            (*below > 0.0).then(|| value / below)
        })
        .collect();
    if ratios.is_empty() {
        return None;
    }
    ratios.sort_by(f64::total_cmp);
    let median = if ratios.len() % 2 == 1 {
        ratios[ratios.len() / 2]
    } else {
        (ratios[ratios.len() / 2 - 1] + ratios[ratios.len() / 2]) / 2.0
    };
    Some(format!("{median:.2}x ({:.2}-{:.2})", ratios[0], ratios[ratios.len() - 1]))
}

fn print_ratios(runs: &[Value]) {
    println!("\nCairn beside each peer on the same store, round by round: median (min-max) of the ratios");
    println!("  commands/s: Cairn / peer (below 1: Cairn is slower); p99: Cairn / peer (above 1: Cairn waits longer)");
    for store in ["sqlite", "postgres"] {
        let cairn = format!("cairn-{store}");
        if by_round(runs, &cairn, "per_second").is_empty() {
            continue;
        }
        for peer in [format!("native-{store}"), format!("cqrs-{store}"), "ceiling".to_string()] {
            let (Some(rate), Some(p99)) =
                (ratio(runs, &cairn, &peer, "per_second"), ratio(runs, &cairn, &peer, "p99_ms"))
            else {
                continue;
            };
            println!("  {cairn:<14} / {peer:<16} commands/s {rate:<22} p99 {p99}");
        }
    }
    let failures: Vec<String> = runs
        .iter()
        .filter(|r| r["target"].as_str().is_some_and(|t| t.starts_with("cairn")))
        .filter(|r| r["errors_5xx"].as_u64().unwrap_or(0) > 0)
        .map(|r| format!("{} run {}: {} 5xx", r["target"], r["run"], r["errors_5xx"]))
        .collect();
    if !failures.is_empty() {
        println!("  Cairn answered 5xx: {}", failures.join(", "));
    }
    println!("  (Cairn's SQLite commits with synchronous=FULL; the peers' with NORMAL: theirs may lose the last");
    println!("   commits on power loss. PostgreSQL runs with its defaults for everyone.)");
}
