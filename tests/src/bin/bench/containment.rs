//! Section 10, containment: `carriers` under load alone, then beside each attack of a hostile
//! domain (four attackers in a loop), with carriers' commands/s and p99 and the host's peak
//! resident memory for each. The attacks end with typed errors; what is measured here is that
//! the well-behaved domain does not notice them and that memory stays bounded.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Result;
use cairn_tests::{
    CARRIERS_COMPONENT, ESCAPEE_COMPONENT, HOSTILE_COMPONENT, ORDERS_COMPONENT, SLOTH_COMPONENT, TestHost,
    UNSTORABLE_COMPONENT,
};
use serde_json::{Value, json};

use super::{Until, millis, run_clients};

/// One attack: a command of a hostile domain, sent in a loop by four attackers.
struct Attack {
    label: &'static str,
    domain: &'static str,
    command: &'static str,
    body: fn(usize) -> Value,
}

const ATTACKS: &[Attack] = &[
    Attack {
        label: "sleep 8 s in wasi:clocks",
        domain: "escapee",
        command: "nap",
        body: |_| json!({"id": "n", "ms": 8000}),
    },
    Attack {
        label: "10,000 1 ms sleeps",
        domain: "escapee",
        command: "doze",
        body: |_| json!({"id": "d", "times": 10_000}),
    },
    Attack {
        label: "1,000 log lines of 10 KiB",
        domain: "escapee",
        command: "chatter",
        body: |_| json!({"id": "c", "lines": 1000, "kib": 10}),
    },
    Attack {
        label: "512 KiB stream name",
        domain: "escapee",
        command: "stray",
        body: |_| json!({"id": "s", "suffix": "x".repeat(512 << 10)}),
    },
    Attack {
        label: "path-like stream name",
        domain: "escapee",
        command: "stray",
        body: |n| json!({"id": "s", "suffix": format!("../{n}")}),
    },
    Attack {
        label: "1,000-deep event",
        domain: "unstorable",
        command: "nest",
        body: |n| json!({"id": format!("n{n}"), "depth": 1000}),
    },
    Attack {
        label: "NUL in an order's user_id",
        domain: "orders",
        command: "create-order",
        body: |_| json!({"user_id": "ann\u{0}", "total_cents": 100}),
    },
    Attack {
        label: "projector sleeping 8 s",
        domain: "sloth",
        command: "nap",
        body: |n| json!({"id": format!("z{n}"), "ms": 8000}),
    },
    Attack {
        label: "100 MiB event",
        domain: "hostile",
        command: "huge",
        body: |n| json!({"id": format!("h{n}"), "mib": 100}),
    },
];

/// The host's resident memory, in MiB (this process: the bench runs its hosts in-process).
fn resident_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0.0);
    kib / 1024.0
}

/// Runs the attacks one after another beside carriers' load and prints a row for each.
pub async fn containment(clients: usize) -> Result<()> {
    let host = Arc::new(
        TestHost::start_with(
            &[
                CARRIERS_COMPONENT,
                ESCAPEE_COMPONENT,
                HOSTILE_COMPONENT,
                ORDERS_COMPONENT,
                SLOTH_COMPONENT,
                UNSTORABLE_COMPONENT,
            ],
            |c| {
                c.limits.memory_mib = 128;
                // The bystander's handler reads two streams per command, and time in host calls
                // counts against its deadline: room for a 2-core machine shared with the attack.
                c.domains.entry("carriers".into()).or_default().limits.deadline_ms = Some(500);
            },
        )
        .await?,
    );
    let window = Duration::from_millis(1500);
    let (alone_rate, _, alone_p99, _) = run_clients(&host, clients, Until::Deadline(Instant::now() + window)).await?;
    println!("\nContainment: carriers under {clients} clients beside four attackers of another domain");
    println!(
        "  (memory cap 128 MiB per instance, attackers' deadline 100 ms, carriers' 500 ms; host memory is this process's peak RSS)"
    );
    println!(
        "  {:<28} {:>9} commands/s   p99 {:>7.2} ms   peak RSS {:>6.0} MiB",
        "alone",
        format!("{alone_rate:.0}"),
        millis(alone_p99),
        resident_mib()
    );
    for attack in ATTACKS {
        let deadline = Instant::now() + window;
        let peak = Arc::new(AtomicU64::new(resident_mib() as u64));
        let sampling = Arc::new(AtomicBool::new(true));
        let sampler = {
            let (peak, sampling) = (peak.clone(), sampling.clone());
            tokio::spawn(async move {
                while sampling.load(Ordering::Relaxed) {
                    peak.fetch_max(resident_mib() as u64, Ordering::Relaxed);
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            })
        };
        let attackers: Vec<_> = (0..4)
            .map(|i| {
                let host = host.clone();
                let (domain, command, body) = (attack.domain, attack.command, attack.body);
                tokio::spawn(async move {
                    let (mut sent, mut statuses) = (0, std::collections::BTreeSet::new());
                    while Instant::now() < deadline {
                        let reply = host.command(domain, command, body(i * 1_000_000 + sent)).await?;
                        // Its own domain's errors (4xx, 503 domain-busy, 504) or success; never a host fault.
                        anyhow::ensure!(reply.status != 500 && reply.status != 502, "the attack got {}", reply.status);
                        statuses.insert(reply.status);
                        sent += 1;
                    }
                    anyhow::Ok((sent, statuses))
                })
            })
            .collect();
        let (rate, _, p99, _) = run_clients(&host, clients, Until::Deadline(deadline)).await?;
        let (mut sent, mut statuses) = (0, std::collections::BTreeSet::new());
        for attacker in attackers {
            let (n, s) = attacker.await??;
            sent += n;
            statuses.extend(s);
        }
        sampling.store(false, Ordering::Relaxed);
        sampler.await?;
        println!(
            "  {:<28} {:>9} commands/s   p99 {:>7.2} ms   peak RSS {:>6} MiB   ({sent} attacks answered {statuses:?}; {:.2}x alone)",
            attack.label,
            format!("{rate:.0}"),
            millis(p99),
            peak.load(Ordering::Relaxed),
            rate / alone_rate
        );
    }
    Ok(())
}
