//! PostgreSQL figures (`--postgres`): commands/s and latency over HTTP with one Cairn host and
//! with three hosts sharing one schema (so one log head), beside one SQLite host in the same run,
//! and how many commands and events each PostgreSQL append transaction carried (group commit).

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use cairn_tests::{Backend, CARRIERS_COMPONENT, FAULTY_COMPONENT, Host, POSTGRES_URL_VARIABLE, PgTestHost, TestHost};
use sqlx::Connection;

use super::{Load, REGISTER, Until, millis, run_spread};

/// How long each figure is measured, after a warm-up of the same load.
const WINDOW: Duration = Duration::from_millis(2_000);
/// The warm-up before each figure (connections, pools, caches).
const WARM_UP: Duration = Duration::from_millis(300);
/// Concurrent clients, spread round-robin over the hosts.
const CLIENTS: [usize; 2] = [16, 64];

/// A single-aggregate command: `faulty`'s `record` reads a fresh stream and appends one event.
const RECORD: Load = Load { domain: "faulty", command: "record", body: |n| format!("{{\"id\":\"pg-{n}\"}}") };

/// The loads measured, with how the printout names them.
const LOADS: [(Load, &str); 2] = [
    (RECORD, "`record` of `faulty`: an aggregate command (1 stream read, 1 event)"),
    (REGISTER, "`register-carrier`: a handler command (2 stream reads, 2 streams, 2 events)"),
];

/// The backends, in the order they are measured and printed.
const SETUPS: [&str; 3] = ["SQLite, 1 host", "PostgreSQL, 1 host", "PostgreSQL, 3 hosts"];

/// One measured figure.
struct Figure {
    /// Commands per second, all clients together.
    rate: f64,
    p50: Duration,
    p99: Duration,
    /// Commands answered in the window.
    commands: usize,
    /// What the append transactions wrote meanwhile (PostgreSQL only).
    appends: Option<Appends>,
}

/// Events and append transactions in a schema (or between two counts of it).
#[derive(Clone, Copy)]
struct Appends {
    events: u64,
    transactions: u64,
}

/// Counts what the writers committed in one schema. A group commit stamps every event it writes
/// with one `recorded_at`, read under the log head's lock, so distinct stamps are transactions.
struct Commits {
    conn: sqlx::PgConnection,
    schema: String,
}

impl Commits {
    async fn connect(url: &str, host: &PgTestHost) -> Result<Self> {
        let schema = host.config.database.schema.clone().context("a PostgreSQL test host has a schema")?;
        Ok(Self { conn: sqlx::PgConnection::connect(url).await?, schema })
    }

    async fn count(&mut self) -> Result<Appends> {
        let sql = format!("SELECT COUNT(*), COUNT(DISTINCT recorded_at) FROM {}.events", self.schema);
        let (events, transactions): (i64, i64) = sqlx::query_as(&sql).fetch_one(&mut self.conn).await?;
        Ok(Appends { events: events as u64, transactions: transactions as u64 })
    }
}

pub(crate) async fn postgres() -> Result<()> {
    let Ok(url) = std::env::var(POSTGRES_URL_VARIABLE) else {
        println!(
            "PostgreSQL figures skipped: {POSTGRES_URL_VARIABLE} is not set \
             (e.g. {POSTGRES_URL_VARIABLE}=postgres://postgres@127.0.0.1:5432/test)"
        );
        return Ok(());
    };
    let components = [CARRIERS_COMPONENT, FAULTY_COMPONENT];
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let started = Instant::now();
    // Other work on the machine skews every figure here: say how busy it was.
    let load_before = std::fs::read_to_string("/proc/loadavg")
        .ok()
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "));

    // Hosts that are dropped stop serving; their background pollers stay, idle, until the end.
    let sqlite = TestHost::start(&components).await?;
    let on_sqlite = measure_all(&[&sqlite], None).await?;
    drop(sqlite);

    let one = PgTestHost::start(&components).await?;
    let mut commits = Commits::connect(&url, &one).await?;
    let on_one = measure_all(&[&one], Some(&mut commits)).await?;
    drop(one);

    let first = PgTestHost::start(&components).await?;
    let schema = first.config.database.schema.clone();
    let second = PgTestHost::start_with(&components, |c| c.database.schema = schema.clone()).await?;
    let third = PgTestHost::start_with(&components, |c| c.database.schema = schema.clone()).await?;
    let mut commits = Commits::connect(&url, &first).await?;
    let on_three = measure_all(&[&first, &second, &third], Some(&mut commits)).await?;
    let total = commits.count().await?;

    println!(
        "\nPostgreSQL against SQLite: commands over HTTP on loopback, {:.1} s per figure after a {:.1} s warm-up",
        WINDOW.as_secs_f64(),
        WARM_UP.as_secs_f64()
    );
    println!("  every host runs in this process: hosts, clients and PostgreSQL share this machine's {cores} cores, so");
    println!("  3 hosts add contention here, not CPU; what they show is the cost of sharing one log head: every");
    println!("  host's writer takes its turn on the head row's lock, one append transaction at a time (each");
    println!("  carrying what that host had waiting). Default pools: 16 connections per host, plus its writer.");
    if let Some(load) = load_before {
        println!("  load average when the run started (1/5/15 min): {load}");
    }
    let results = [on_sqlite, on_one, on_three];
    for (l, (_, name)) in LOADS.iter().enumerate() {
        println!("\n  {name}");
        println!(
            "    {:<22} {:>7} {:>11} {:>8} {:>8} {:>8} {:>9} {:>10}",
            "", "clients", "commands/s", "p50 ms", "p99 ms", "txn/s", "cmds/txn", "events/txn"
        );
        for (c, clients) in CLIENTS.iter().enumerate() {
            for (s, setup) in SETUPS.iter().enumerate() {
                let figure = &results[s][l * CLIENTS.len() + c];
                let group = match figure.appends {
                    Some(Appends { events, transactions }) if transactions > 0 => format!(
                        "{:>8.0} {:>9.1} {:>10.1}",
                        figure.rate * transactions as f64 / figure.commands.max(1) as f64,
                        figure.commands as f64 / transactions as f64,
                        events as f64 / transactions as f64
                    ),
                    _ => format!("{:>8} {:>9} {:>10}", "-", "-", "-"),
                };
                println!(
                    "    {setup:<22} {clients:>7} {:>11.0} {:>8.2} {:>8.2} {group}",
                    figure.rate,
                    millis(figure.p50),
                    millis(figure.p99)
                );
            }
        }
        let ratio = |top: usize, bottom: usize| {
            CLIENTS
                .iter()
                .enumerate()
                .map(|(c, clients)| {
                    let at = l * CLIENTS.len() + c;
                    format!("{:.2}x at {clients}", results[top][at].rate / results[bottom][at].rate)
                })
                .collect::<Vec<_>>()
                .join(", ")
        };
        println!("    PostgreSQL 1 host / SQLite 1 host:   {}", ratio(1, 0));
        println!("    PostgreSQL 3 hosts / 1 host:         {}", ratio(2, 1));
    }
    println!(
        "\n  the shared schema holds {} events from {} append transactions ({:.1} events each, warm-ups included);",
        total.events,
        total.transactions,
        total.events as f64 / total.transactions.max(1) as f64
    );
    println!("  whole run {:.1} s", started.elapsed().as_secs_f64());
    Ok(())
}

/// Every load at every client count against `hosts`, in the order of [`LOADS`] then [`CLIENTS`];
/// with `commits`, also what the append transactions wrote during each window.
async fn measure_all<B: Backend>(hosts: &[&Host<B>], mut commits: Option<&mut Commits>) -> Result<Vec<Figure>> {
    let mut figures = Vec::new();
    for (load, _) in LOADS {
        for clients in CLIENTS {
            run_spread(hosts, clients, Until::Deadline(Instant::now() + WARM_UP), load).await?;
            let before = match commits.as_mut() {
                Some(commits) => Some(commits.count().await?),
                None => None,
            };
            let (rate, p50, p99, commands) =
                run_spread(hosts, clients, Until::Deadline(Instant::now() + WINDOW), load).await?;
            let appends = match (commits.as_mut(), before) {
                (Some(commits), Some(before)) => {
                    let after = commits.count().await?;
                    Some(Appends {
                        events: after.events - before.events,
                        transactions: after.transactions - before.transactions,
                    })
                }
                _ => None,
            };
            figures.push(Figure { rate, p50, p99, commands, appends });
        }
    }
    Ok(figures)
}
