//! `cargo bench-cairn`: prints Cairn's figures in one run, each beside its baseline.
//!
//! 1. Per-command wasm cost (fresh pooled instance + `decide` of `register-carrier`) beside the
//!    same `decide` called natively through the SDK's dispatch (same JSON work).
//! 2. SQLite appends of one event: one appender at a time against 64 concurrent appenders
//!    (group commit).
//! 3. `register-carrier` over HTTP on loopback: commands/s and p50/p99 latency with 1 and with
//!    `--clients` concurrent clients.
//! 4. A two-stream command handler (`register-carrier`: carrier + email reservation) against a
//!    single-aggregate command, in the same host.
//! 5. Hot swap: the time from uploading v2 to v2 serving, and p99 command latency under load
//!    during the swap against the same load in steady state.
//! 6. Isolation: p99 of `register-carrier` alone, and while another domain's plugin spins until
//!    its deadline on every call.
//! 7. Read side (`bench/read_side.rs`): rebuild rate of `user_dashboard_stats` over 100k events,
//!    and a query from the cache against the same query computed.
//! 8. Gateway and cache (`bench/gateway_cache.rs`): one cached get from a plugin, and a gateway
//!    call against a direct HTTP call to the same loopback server.
//! 9. PostgreSQL (`bench/postgres.rs`, only with `--postgres`): commands/s on one host and on
//!    three hosts sharing one schema, beside one SQLite host, and commands per group commit.
//! 10. Containment (`bench/containment.rs`): carriers' commands/s and p99 beside each attack of
//!     a hostile domain (sleeps in host calls, log floods, bad stream names, huge events, ...),
//!     with the host's peak memory.
//! 11. Bank (`bench/bank.rs`, only with `--bank`): deposit latency on 10-event against
//!     10,000-event streams, hot streams (10 accounts under `--clients`), and the rebuild of the
//!     `balances` projection over `--events N` (default 1,000,000) stored events.
//! 12. Peers (`bench/peers.rs`, only with `--peers`): the peer kit's `bench.sh` (the bank
//!     hand-written and on cqrs-es, an HTTP ceiling, and Cairn) and Cairn's ratio to each peer.
//! 13. Sandbox (`bench/sandbox.rs`, only with `--sandbox`): the bank's aggregate as a component
//!     and linked natively through the same engine: one call each way, and the peer kit's load
//!     on each (`--seconds S` per run, default 5).
//!
//! Options: `--commands N` (HTTP commands per run, default 4000), `--clients C` (default 16),
//! `--read-side` (only section 7), `--gateway-cache` (only section 8), `--postgres` (only
//! section 9; needs `CAIRN_TEST_POSTGRES_URL`), `--containment` (only section 10), `--bank`
//! (only section 11; with `--seconds S` per hot-stream load, default 5, and `--events N`),
//! `--peers` (only section 12; with `--rounds N` (3), `--seconds S` (10), `--clients C` (16) and
//! `--accounts A` (1000), bench.sh's arguments).

#[path = "bench/bank.rs"]
mod bank;
#[path = "bench/containment.rs"]
mod containment;
#[path = "bench/gateway_cache.rs"]
mod gateway_cache;
#[path = "bench/peers.rs"]
mod peers;
#[path = "bench/postgres.rs"]
mod postgres;
#[path = "bench/read_side.rs"]
mod read_side;
#[path = "bench/sandbox.rs"]
mod sandbox;

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Result;
use cairn::bindings::aggregate::DecideRequest;
use cairn::runtime::{EngineLimits, LimitsPolicy, Runtime};
use cairn::store::{AppendBatch, EventStore, EventToAppend, ExpectedVersion, StreamAppend};
use cairn_sdk::dispatch;
use cairn_tests::{Backend, CARRIERS_COMPONENT, CARRIERS_NEXT_COMPONENT, FAULTY_COMPONENT, Host, TestHost};

const PAYLOAD: &str = r#"{"name":"Acme Logistics International","email":"operations@acme-logistics.example","phone":"+44 20 7946 0958","note":"bench"}"#;

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let flag = |name: &str, default: usize| option(&args, name, default);
    let commands = flag("--commands", 4000);
    let clients = flag("--clients", 16);
    println!("cairn benchmark ({} cores)\n", std::thread::available_parallelism().map_or(1, |n| n.get()));
    if args.iter().any(|a| a == "--peers") {
        return peers::peers(peers::PeersOptions {
            rounds: flag("--rounds", 3),
            seconds: option(&args, "--seconds", 10.0),
            clients,
            accounts: flag("--accounts", 1000),
        });
    }
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    if args.iter().any(|a| a == "--read-side") {
        return runtime.block_on(read_side::read_side());
    }
    if args.iter().any(|a| a == "--gateway-cache") {
        return runtime.block_on(gateway_cache::gateway_cache());
    }
    if args.iter().any(|a| a == "--containment") {
        return runtime.block_on(containment::containment(clients));
    }
    if args.iter().any(|a| a == "--postgres") {
        return runtime.block_on(postgres::postgres());
    }
    if args.iter().any(|a| a == "--sandbox") {
        let window = Duration::from_secs_f64(option(&args, "--seconds", 5.0));
        return runtime.block_on(sandbox::sandbox(clients, window));
    }
    if args.iter().any(|a| a == "--bank") {
        let window = Duration::from_secs_f64(option(&args, "--seconds", 5.0));
        let events = flag("--events", 1_000_000);
        return runtime.block_on(bank::bank(bank::BankOptions { clients, window, events }));
    }
    wasm_vs_native()?;
    runtime.block_on(store_appends())?;
    runtime.block_on(http_commands(commands, clients))?;
    runtime.block_on(handler_vs_aggregate(clients))?;
    runtime.block_on(hot_swap(clients))?;
    runtime.block_on(isolation(clients))?;
    runtime.block_on(read_side::read_side())?;
    runtime.block_on(gateway_cache::gateway_cache())?;
    runtime.block_on(containment::containment(clients))?;
    Ok(())
}

/// The value after `name` on the command line, or `default` when absent or unreadable.
fn option<T: std::str::FromStr>(args: &[String], name: &str, default: T) -> T {
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn wasm_vs_native() -> Result<()> {
    let iterations = 5_000;
    let bytes = std::fs::read(CARRIERS_COMPONENT)?;
    let limited = Runtime::new(EngineLimits::default(), LimitsPolicy::default(), None, None)?;
    let unlimited =
        Runtime::new(EngineLimits { enforce: false, ..EngineLimits::default() }, LimitsPolicy::default(), None, None)?;
    let plugin = limited.load(&bytes)?;
    let unlimited_plugin = unlimited.load(&bytes)?;
    let request = DecideRequest {
        aggregate: "carrier".into(),
        aggregate_id: "c-1".into(),
        command: "register-carrier".into(),
        payload: PAYLOAD.into(),
        history: vec![],
    };
    for _ in 0..200 {
        plugin.decide(&request).map_err(anyhow::Error::from)?.map_err(|e| anyhow::anyhow!("{e:?}"))?;
    }
    let time_wasm = |plugin: &cairn::runtime::Plugin| -> Result<Duration> {
        let started = Instant::now();
        for _ in 0..iterations {
            std::hint::black_box(plugin.decide(&request).map_err(anyhow::Error::from)?.is_ok());
        }
        Ok(started.elapsed() / iterations)
    };
    let wasm = time_wasm(&plugin)?;
    let wasm_unlimited = time_wasm(&unlimited_plugin)?;

    let native_request = || dispatch::DecideRequest {
        aggregate: "carrier".into(),
        aggregate_id: "c-1".into(),
        command: "register-carrier".into(),
        payload: PAYLOAD.into(),
        history: vec![],
    };
    let started = Instant::now();
    for _ in 0..iterations {
        std::hint::black_box(dispatch::decide::<carriers::Carrier>(native_request()).is_ok());
    }
    let native = started.elapsed() / iterations;
    println!("decide register-carrier ({iterations} calls)");
    println!("  wasm (fresh pooled instance + decide): {:>8.1} µs/command", micros(wasm));
    println!("  same without deadline and memory cap:  {:>8.1} µs/command", micros(wasm_unlimited));
    println!("  native (same SDK dispatch, no wasm):   {:>8.1} µs/command", micros(native));
    println!("  ratio wasm/native:                     {:>8.1}x", wasm.as_secs_f64() / native.as_secs_f64());
    println!(
        "  limits on/off:                         {:>8.2}x  ({:.0} vs {:.0} decisions/s on one thread)\n",
        wasm.as_secs_f64() / wasm_unlimited.as_secs_f64(),
        1.0 / wasm.as_secs_f64(),
        1.0 / wasm_unlimited.as_secs_f64()
    );
    Ok(())
}

async fn store_appends() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let store: Arc<dyn EventStore> = Arc::new(cairn::store::sqlite::SqliteStore::open(dir.path()).await?);
    let append = |store: Arc<dyn EventStore>, stream: String| async move {
        let event =
            EventToAppend { event_type: "CarrierRegistered".into(), data: PAYLOAD.into(), metadata: "{}".into() };
        store
            .append(AppendBatch {
                streams: vec![StreamAppend {
                    domain: "bench".into(),
                    stream,
                    expected: ExpectedVersion::NoStream,
                    events: vec![event],
                }],
                ..AppendBatch::default()
            })
            .await
    };
    let n = 2_000;
    let started = Instant::now();
    for i in 0..n {
        append(store.clone(), format!("seq-{i}")).await?;
    }
    let sequential = n as f64 / started.elapsed().as_secs_f64();
    let started = Instant::now();
    let total = 20_000;
    let mut tasks = Vec::new();
    for worker in 0..64 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            for i in (worker..total).step_by(64) {
                append(store.clone(), format!("par-{i}")).await?;
            }
            anyhow::Ok(())
        }));
    }
    for task in tasks {
        task.await??;
    }
    let grouped = total as f64 / started.elapsed().as_secs_f64();
    println!("SQLite appends, 1 event each, synchronous=FULL");
    println!("  one appender at a time:        {sequential:>9.0} appends/s");
    println!("  64 concurrent (group commit):  {grouped:>9.0} appends/s");
    println!("  ratio:                         {:>9.1}x\n", grouped / sequential);
    Ok(())
}

async fn http_commands(commands: usize, clients: usize) -> Result<()> {
    let host = TestHost::start(&[CARRIERS_COMPONENT]).await?;
    println!("HTTP POST register-carrier on loopback ({commands} commands per run)");
    for clients in [1, clients] {
        let (rate, p50, p99, _) = run_clients(&host, clients, Until::Commands(commands)).await?;
        println!(
            "  {clients:>3} clients: {rate:>8.0} commands/s   p50 {:>7.2} ms   p99 {:>7.2} ms",
            millis(p50),
            millis(p99)
        );
    }
    Ok(())
}

async fn hot_swap(clients: usize) -> Result<()> {
    let host = Arc::new(TestHost::start(&[CARRIERS_COMPONENT]).await?);
    let window = Duration::from_millis(1500);
    let (_, _, steady_p99, steady_n) = run_clients(&host, clients, Until::Deadline(Instant::now() + window)).await?;

    let bytes = std::fs::read(CARRIERS_NEXT_COMPONENT)?;
    let swapping = {
        let host = host.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(300)).await;
            let started = Instant::now();
            let reply = host.deploy_bytes(bytes, "").await?;
            anyhow::ensure!(reply.status == 201, "deploy failed: {reply:?}");
            anyhow::Ok((started.elapsed(), reply.body["replay"].clone()))
        })
    };
    let (_, _, during_p99, during_n) = run_clients(&host, clients, Until::Deadline(Instant::now() + window)).await?;
    let (swap_time, replay) = swapping.await??;
    let version = host.admin_get("/admin/v1/domains").await?.body["domains"][0]["version"].clone();
    anyhow::ensure!(version == "0.2.0", "v2 is not serving: {version}");
    println!("\nHot swap to v2 under {clients} clients (upload accepted -> v2 serving)");
    println!("  swap time:                {:>8.1} ms", millis(swap_time));
    println!(
        "    of which shadow replay: {:>8} ms  ({} streams, {} events folded)",
        replay["elapsed_ms"], replay["streams_checked"], replay["events_folded"]
    );
    println!("  p99 steady state:         {:>8.2} ms  ({steady_n} commands)", millis(steady_p99));
    println!("  p99 during the swap:      {:>8.2} ms  ({during_n} commands, 0 failed)", millis(during_p99));
    println!("  ratio:                    {:>8.2}x", during_p99.as_secs_f64() / steady_p99.as_secs_f64());
    Ok(())
}

async fn isolation(clients: usize) -> Result<()> {
    let host = Arc::new(
        TestHost::start_with(&[CARRIERS_COMPONENT, FAULTY_COMPONENT], |c| {
            c.domains.entry("faulty".into()).or_default().limits.max_concurrency = Some(1);
        })
        .await?,
    );
    let window = Duration::from_millis(1500);
    let (alone_rate, _, alone_p99, _) = run_clients(&host, clients, Until::Deadline(Instant::now() + window)).await?;
    let deadline = Instant::now() + window;
    let spinners: Vec<_> = (0..4)
        .map(|i| {
            let host = host.clone();
            tokio::spawn(async move {
                let mut spun = 0;
                while Instant::now() < deadline {
                    let reply = host.command("faulty", "spin", serde_json::json!({"id": format!("s{i}")})).await?;
                    anyhow::ensure!(reply.status == 504 || reply.status == 503, "unexpected {}", reply.status);
                    spun += 1;
                }
                anyhow::Ok(spun)
            })
        })
        .collect();
    let (beside_rate, _, beside_p99, _) = run_clients(&host, clients, Until::Deadline(deadline)).await?;
    let mut spins = 0;
    for spinner in spinners {
        spins += spinner.await??;
    }
    println!(
        "\nIsolation: carriers under {clients} clients, alone and beside a domain spinning to its 100 ms deadline"
    );
    println!("  alone:                    {alone_rate:>8.0} commands/s   p99 {:>7.2} ms", millis(alone_p99));
    println!(
        "  beside the spinner:       {beside_rate:>8.0} commands/s   p99 {:>7.2} ms   ({spins} spinning calls, max_concurrency 1)",
        millis(beside_p99)
    );
    println!("  throughput ratio:         {:>8.2}x", beside_rate / alone_rate);
    Ok(())
}

static RUNS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

async fn handler_vs_aggregate(clients: usize) -> Result<()> {
    let host = TestHost::start(&[CARRIERS_COMPONENT, FAULTY_COMPONENT]).await?;
    let window = Duration::from_millis(2000);
    let record = Load { domain: "faulty", command: "record", body: |n| format!("{{\"id\":\"g{n}\"}}") };
    let (single, _, single_p99, _) = run_load(&host, clients, Until::Deadline(Instant::now() + window), record).await?;
    let (double, _, double_p99, _) =
        run_load(&host, clients, Until::Deadline(Instant::now() + window), REGISTER).await?;
    println!("\nCommand handler against aggregate command, {clients} clients, same host");
    println!(
        "  aggregate `record` (1 stream):                  {single:>8.0} commands/s   p99 {:>6.2} ms",
        millis(single_p99)
    );
    println!(
        "  handler `register-carrier` (2 streams, 2 reads): {double:>7.0} commands/s   p99 {:>6.2} ms",
        millis(double_p99)
    );
    println!("  ratio:                                          {:>8.2}x", double / single);
    Ok(())
}

/// When a load run stops.
#[derive(Clone, Copy)]
enum Until {
    /// After this many commands in all.
    Commands(usize),
    /// At this instant.
    Deadline(Instant),
}

/// What a load run sends: `POST /v1/domains/{domain}/commands/{command}` with `body(n)`.
#[derive(Clone, Copy)]
struct Load {
    domain: &'static str,
    command: &'static str,
    body: fn(usize) -> String,
}

/// A fresh carrier (unique email) per request: the two-stream registration handler.
const REGISTER: Load = Load {
    domain: "carriers",
    command: "register-carrier",
    body: |n| PAYLOAD.replace("operations@", &format!("operations{n}@")),
};

/// Sends `load` from `clients` concurrent clients; returns (commands/s, p50, p99, count).
async fn run_clients(host: &TestHost, clients: usize, until: Until) -> Result<(f64, Duration, Duration, usize)> {
    run_load(host, clients, until, REGISTER).await
}

async fn run_load(
    host: &TestHost,
    clients: usize,
    until: Until,
    load: Load,
) -> Result<(f64, Duration, Duration, usize)> {
    run_spread(&[host], clients, until, load).await
}

/// Like [`run_load`], with the clients spread round-robin over `hosts` (client `i` sends to
/// host `i % hosts.len()`).
async fn run_spread<B: Backend>(
    hosts: &[&Host<B>],
    clients: usize,
    until: Until,
    load: Load,
) -> Result<(f64, Duration, Duration, usize)> {
    anyhow::ensure!(!hosts.is_empty(), "a load run needs a host");
    // Distinct ids across runs on one host (or on hosts sharing a database).
    let offset = RUNS.fetch_add(1, std::sync::atomic::Ordering::Relaxed) * 10_000_000;
    let started = Instant::now();
    let mut tasks = Vec::new();
    for client in 0..clients {
        let host = hosts[client % hosts.len()];
        let http = host.client().clone();
        let url = format!("{}/v1/domains/{}/commands/{}", host.base, load.domain, load.command);
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut n = client;
            while match until {
                Until::Commands(total) => n < total,
                Until::Deadline(at) => Instant::now() < at,
            } {
                n += clients;
                let body = (load.body)(offset + n);
                let sent = Instant::now();
                let reply = http.post(&url).header("content-type", "application/json").body(body).send().await?;
                anyhow::ensure!(reply.status() == 201, "a command failed: {}", reply.status());
                reply.bytes().await?;
                latencies.push(sent.elapsed());
            }
            anyhow::Ok(latencies)
        }));
    }
    let mut latencies = Vec::new();
    for task in tasks {
        latencies.extend(task.await??);
    }
    let rate = latencies.len() as f64 / started.elapsed().as_secs_f64();
    latencies.sort_unstable();
    let at = |q: f64| latencies[((latencies.len() as f64 * q) as usize).min(latencies.len() - 1)];
    Ok((rate, at(0.50), at(0.99), latencies.len()))
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn millis(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}
