//! Plugin log lines reach the host's `tracing` output with the domain, the plugin version and
//! the export as fields, inside the request's span (so with its request id); an oversized line
//! is cut to `limits.max_log_line_bytes` and says so; one call's lines stop at
//! `limits.max_log_kib_per_call`.

#![allow(clippy::unwrap_used)] // a failing unwrap is a failing test

use std::io::Write;
use std::sync::{Arc, Mutex};

use cairn_tests::{ESCAPEE_COMPONENT, FAULTY_COMPONENT, HOSTILE_COMPONENT, TestHost};
use serde_json::{Value, json};

/// Collects everything the subscriber writes.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn plugin_lines(captured: &Captured) -> Vec<Value> {
    let text = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    text.lines().filter_map(|l| serde_json::from_str::<Value>(l).ok()).filter(|l| l["target"] == "plugin").collect()
}

#[tokio::test]
async fn plugin_logs_carry_domain_version_export_and_request_id_and_are_capped() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .json()
        .with_current_span(true)
        .with_span_list(true)
        .with_max_level(tracing::Level::INFO)
        .with_writer(move || writer.clone())
        .finish();
    tracing::subscriber::set_global_default(subscriber).unwrap();

    let host = TestHost::start_with(&[FAULTY_COMPONENT, HOSTILE_COMPONENT, ESCAPEE_COMPONENT], |c| {
        c.limits.max_log_line_bytes = 1024;
        c.limits.max_log_kib_per_call = 16;
        c.limits.deadline_ms = 2_000;
    })
    .await
    .unwrap();
    let reply = host.command("faulty", "hog", json!({"id": "g", "mib": 1})).await.unwrap();
    reply.expect(201);
    let request_id = reply.headers["x-request-id"].to_str().unwrap().to_string();
    host.command("hostile", "shout", json!({"id": "s", "mib": 10})).await.unwrap().expect(201);

    let lines = plugin_lines(&captured);
    let hog = lines.iter().find(|l| l["fields"]["message"] == "allocated 1048576 bytes").expect("the plugin's line");
    assert_eq!(hog["fields"]["domain"], "faulty");
    assert_eq!(hog["fields"]["plugin_version"], "0.1.0");
    assert_eq!(hog["fields"]["function"], "decide");
    assert_eq!(hog["level"], "INFO");
    assert!(hog.to_string().contains(&request_id), "the line is inside the request's span: {hog}");

    let shout = lines.iter().find(|l| l["fields"]["domain"] == "hostile").expect("the shouted line");
    assert_eq!(shout["fields"]["truncated"], true);
    assert!(shout["fields"]["message"].as_str().unwrap().len() <= 1024, "cut to the cap");

    // One call writes at most `limits.max_log_kib_per_call` (16 KiB) in all: 1,000 lines of 1 KiB
    // leave at most 16 lines and one warning naming the limit; the command itself succeeds.
    host.command("escapee", "chatter", json!({"id": "c", "lines": 1000, "kib": 1})).await.unwrap().expect(201);
    let lines = plugin_lines(&captured);
    let chatter: Vec<&Value> = lines.iter().filter(|l| l["fields"]["domain"] == "escapee").collect();
    let warnings: Vec<&&Value> =
        chatter.iter().filter(|l| l["fields"]["limit"] == "limits.max_log_kib_per_call").collect();
    assert_eq!(warnings.len(), 1, "one warning says the budget is spent");
    assert!(chatter.len() <= 17, "{} lines from one call", chatter.len());
    assert!(chatter.len() >= 10, "lines within the budget are kept: {}", chatter.len());

    // Empty lines cost what the host adds to each (128 bytes): 20,000 of them stay bounded too.
    host.command("escapee", "chatter", json!({"id": "e", "lines": 20_000, "kib": 0})).await.unwrap().expect(201);
    let lines = plugin_lines(&captured);
    let empty = lines.iter().filter(|l| l["fields"]["domain"] == "escapee" && l["fields"]["message"] == "").count();
    assert!((100..=129).contains(&empty), "{empty} empty lines from one call");
}
