//! Signals to a real `cairn serve` process: on SIGTERM a request in flight (a query waiting for
//! a position) still gets its answer, new connections are refused at once, and the process exits
//! 0 once it is answered; a second signal exits at once (130) without waiting for it.

use std::time::{Duration, Instant};

use cairn_tests::Served;

fn signal(served: &Served, name: &str) {
    let pid = served.child.id().to_string();
    assert!(std::process::Command::new("kill").args([name, &pid]).status().unwrap().success());
}

/// A query that waits `wait_ms` for a position the host never reaches, sent now.
fn waiting_query(served: &Served, wait_ms: u64) -> tokio::task::JoinHandle<reqwest::Result<u16>> {
    let url = format!(
        "{}/v1/domains/orders/queries/user-dashboard?user_id=x&min_position=1000000&wait_ms={wait_ms}",
        served.base
    );
    let client = served.client.clone();
    tokio::spawn(async move { Ok(client.get(url).send().await?.status().as_u16()) })
}

async fn exit_code(served: &mut Served, within: Duration) -> (Option<i32>, Duration) {
    let started = Instant::now();
    loop {
        if let Some(status) = served.child.try_wait().unwrap() {
            return (status.code(), started.elapsed());
        }
        assert!(started.elapsed() < within, "still running after {within:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn sigterm_lets_the_request_in_flight_finish_refuses_new_ones_and_exits_0() {
    let dir = tempfile::tempdir().unwrap();
    let env = [("CAIRN_HTTP__SHUTDOWN_GRACE_MS", "20000")];
    let mut served = Served::start(env!("CARGO_BIN_EXE_serve-examples"), dir.path(), &env).await;
    let in_flight = waiting_query(&served, 1_500);
    tokio::time::sleep(Duration::from_millis(300)).await;
    signal(&served, "-TERM");
    let refused = Instant::now();
    loop {
        let fresh = reqwest::Client::new().get(format!("{}/healthz", served.base)).send().await;
        if fresh.is_err() {
            break;
        }
        assert!(refused.elapsed() < Duration::from_secs(1), "new connections still accepted");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (code, after) = exit_code(&mut served, Duration::from_secs(10)).await;
    assert_eq!(in_flight.await.unwrap().expect("the request in flight is answered"), 504);
    assert_eq!(code, Some(0));
    assert!(after >= Duration::from_millis(900), "it waited for the request in flight: {after:?}");
}

#[tokio::test]
async fn a_second_signal_exits_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let env = [("CAIRN_HTTP__SHUTDOWN_GRACE_MS", "20000")];
    let mut served = Served::start(env!("CARGO_BIN_EXE_serve-examples"), dir.path(), &env).await;
    let in_flight = waiting_query(&served, 30_000);
    tokio::time::sleep(Duration::from_millis(300)).await;
    signal(&served, "-TERM");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(served.child.try_wait().unwrap().is_none(), "the first signal waits for the request in flight");
    signal(&served, "-INT");
    let (code, after) = exit_code(&mut served, Duration::from_secs(3)).await;
    assert_eq!(code, Some(130));
    assert!(after < Duration::from_secs(3));
    assert!(in_flight.await.unwrap().is_err(), "cut off");
}
