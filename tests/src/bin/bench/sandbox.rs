//! What the wasm sandbox costs (`--sandbox`): the bank's aggregate through the same engine,
//! store and HTTP, once as a component (`bank-decide-only`: a fresh sandboxed instance per
//! command, under its deadline and memory cap) and once linked natively into the host
//! ([`cairn::runtime::NativeDomain`], no wasm). Both without the bank's read side, which a
//! native domain does not have.
//!
//! 1. The plugin call alone: a deposit decided on a kept state, both ways.
//! 2. The peer kit's load (80% deposits, 20% withdrawals on 1,000 accounts from `--clients`
//!    clients, `--seconds` per run), three runs each, interleaved: commands/s and latency.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Result;
use cairn::bindings::aggregate_state::StateRequest;
use cairn::runtime::{EngineLimits, LimitsPolicy, Plugin, Runtime};
use cairn_tests::native::SdkDomain;
use cairn_tests::{BANK_DECIDE_ONLY_COMPONENT, TestHost};

use super::bank::{open_accounts, run_load};
use super::micros;
use super::read_side::percentiles;

const ACCOUNTS: usize = 1_000;
const RUNS: usize = 3;

pub(crate) async fn sandbox(clients: usize, window: Duration) -> Result<()> {
    plugin_call()?;
    println!(
        "\nSandbox: the bank through the same engine, store and HTTP ({clients} clients, {ACCOUNTS} accounts, \
         {RUNS} interleaved runs of {:.1} s)",
        window.as_secs_f64()
    );
    println!("  {:>8} {:>4} {:>11} {:>8} {:>8} {:>6}", "domain", "run", "commands/s", "p50 ms", "p99 ms", "5xx");
    let mut rates: [Vec<f64>; 2] = [Vec::new(), Vec::new()];
    for run in 1..=RUNS {
        for (side, label) in ["wasm", "native"].iter().enumerate() {
            let host = host(side == 1).await?;
            open_accounts(&host, ACCOUNTS, clients).await?;
            let (rate, mut tally) = run_load(&host, ACCOUNTS, clients, window).await?;
            let (p50, p99) = percentiles(&mut tally.latencies);
            println!(
                "  {label:>8} {run:>4} {rate:>11.0} {:>8.2} {:>8.2} {:>6}",
                super::millis(p50),
                super::millis(p99),
                tally.server_5xx
            );
            rates[side].push(rate);
        }
    }
    let (wasm, native) = (median(&mut rates[0]), median(&mut rates[1]));
    println!(
        "  medians: wasm {wasm:.0}/s, native {native:.0}/s: the sandbox costs {:.1}% of the throughput",
        (1.0 - wasm / native) * 100.0
    );
    Ok(())
}

/// A host serving the bank's aggregate: the component, or the same code natively.
async fn host(native: bool) -> Result<TestHost> {
    if !native {
        return TestHost::start(&[BANK_DECIDE_ONLY_COMPONENT]).await;
    }
    let host = TestHost::start(&[]).await?;
    host.registry().install_native(Arc::new(SdkDomain::<::bank::Domain>::default()))?;
    Ok(host)
}

/// One `aggregate-state.decide` of a deposit on a kept state, both ways.
fn plugin_call() -> Result<()> {
    let runtime = Runtime::new(EngineLimits::default(), LimitsPolicy::default(), None, None)?;
    let wasm = runtime.load(&std::fs::read(BANK_DECIDE_ONLY_COMPONENT)?)?;
    let native = Plugin::native(runtime.clone(), Arc::new(SdkDomain::<::bank::Domain>::default()))?;
    let request = StateRequest {
        aggregate: "account".into(),
        aggregate_id: "a1".into(),
        command: "deposit".into(),
        payload: r#"{"account_id":"a1","amount":250}"#.into(),
        state: Some(r#"{"opened":true,"owner":"Ann","balance":125000}"#.into()),
        tail: vec![],
    };
    let iterations = 20_000;
    let time = |plugin: &Plugin| -> Result<Duration> {
        for _ in 0..500 {
            plugin.decide_on_state(&request)?.map_err(|e| anyhow::anyhow!("{e:?}"))?;
        }
        let started = Instant::now();
        for _ in 0..iterations {
            std::hint::black_box(plugin.decide_on_state(&request)?.is_ok());
        }
        Ok(started.elapsed() / iterations)
    };
    let (wasm, native) = (time(&wasm)?, time(&native)?);
    println!("Sandbox: one deposit decided on a kept state ({iterations} calls, one thread)");
    println!("  wasm (fresh pooled instance, deadline, memory cap): {:>7.1} µs/call", micros(wasm));
    println!("  native (the same SDK code linked into the host):    {:>7.1} µs/call", micros(native));
    println!("  difference per command:                             {:>7.1} µs", micros(wasm.saturating_sub(native)));
    Ok(())
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}
