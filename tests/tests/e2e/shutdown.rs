//! A real `cairn serve` process under load receives SIGTERM: every command it acknowledged is
//! stored, in-flight requests finish, new connections are refused, it exits 0 within its grace
//! period, and a host sharing its PostgreSQL takes the projections over at once (the lease is
//! released, not waited out). And PostgreSQL over TLS (`sslmode` in the URL).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use cairn_tests::Served;
use serde_json::json;
use sqlx::Connection;

#[tokio::test]
async fn sigterm_under_load_stores_every_acknowledged_command_exits_0_and_hands_over_the_projections() {
    let dir = tempfile::tempdir().unwrap();
    let url = cairn_tests::postgres_url().unwrap();
    let schema = cairn_tests::fresh_schema();
    let env = [
        ("CAIRN_DATABASE_URL", url.as_str()),
        ("CAIRN_DATABASE__SCHEMA", schema.as_str()),
        ("CAIRN_HTTP__SHUTDOWN_GRACE_MS", "5000"),
    ];
    let binary = env!("CARGO_BIN_EXE_serve-examples");
    let mut first = Served::start(binary, &dir.path().join("first"), &env).await;
    let second = Served::start(binary, &dir.path().join("second"), &env).await;
    let started = Instant::now();
    while first.projections().await.iter().any(|p| p["state"] == "elsewhere") {
        assert!(started.elapsed() < Duration::from_secs(10), "the first host never ran the projections");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Eight clients send orders until the host stops answering.
    let signalled = Arc::new(AtomicBool::new(false));
    let mut clients = Vec::new();
    for client in 0..8 {
        let (base, http, signalled) = (first.base.clone(), reqwest::Client::new(), signalled.clone());
        clients.push(tokio::spawn(async move {
            let (mut acknowledged, mut refused_before_signal) = (Vec::new(), 0);
            for n in 0.. {
                let request = http
                    .post(format!("{base}/v1/domains/orders/commands/create-order"))
                    .json(&json!({"user_id": format!("u{client}"), "total_cents": n + 1}));
                match request.send().await {
                    Ok(reply) if reply.status() == 201 => {
                        let body: serde_json::Value = reply.json().await.unwrap();
                        acknowledged.push(body["aggregate_id"].as_str().unwrap().to_string());
                    }
                    Ok(reply) => panic!("an answer other than 201 or a refused connection: {}", reply.status()),
                    Err(_) if signalled.load(Ordering::SeqCst) => break,
                    Err(error) => {
                        refused_before_signal += 1;
                        eprintln!("refused before the signal: {error}");
                    }
                }
            }
            (acknowledged, refused_before_signal)
        }));
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    signalled.store(true, Ordering::SeqCst);
    let pid = first.child.id().to_string();
    let killed = std::process::Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(killed.success());
    let signalled_at = Instant::now();
    let exit = loop {
        if let Some(status) = first.child.try_wait().unwrap() {
            break status;
        }
        assert!(signalled_at.elapsed() < Duration::from_secs(7), "not gone within the 5 s grace period");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(exit.code(), Some(0), "a clean exit");
    let exited_after = signalled_at.elapsed();

    // The lease was released on the way out (not left to expire), so the other host runs the
    // projections at once.
    let handover = Instant::now();
    let mut db = sqlx::PgConnection::connect(&url).await.unwrap();
    let holders: Vec<String> = sqlx::query_scalar(&format!(
        "SELECT holder FROM {schema}.leases WHERE name = 'projections' AND holder NOT LIKE '%' || $1 || '%'"
    ))
    .bind(second.base.trim_start_matches("http://"))
    .fetch_all(&mut db)
    .await
    .unwrap();
    assert!(holders.is_empty(), "the stopped host still holds the projections lease: {holders:?}");
    while second.projections().await.iter().any(|p| p["state"] == "elsewhere") {
        assert!(handover.elapsed() < Duration::from_secs(3), "the other host did not take over");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut acknowledged = Vec::new();
    for client in clients {
        let (ids, refused_before_signal) = client.await.unwrap();
        assert_eq!(refused_before_signal, 0);
        acknowledged.extend(ids);
    }
    assert!(acknowledged.len() >= 8, "the load ran: {} commands", acknowledged.len());
    for id in &acknowledged {
        let (status, page) = second.get(&format!("/v1/domains/orders/streams/order-{id}")).await;
        assert_eq!(status, 200, "acknowledged order {id} is stored: {page}");
        assert_eq!(page["events"].as_array().map(Vec::len), Some(1), "{page}");
    }
    first.kill();
    eprintln!(
        "{} acknowledged commands, exit after {exited_after:?}, projections taken over after {:?}",
        acknowledged.len(),
        handover.elapsed()
    );
}

#[tokio::test]
async fn postgres_over_tls_through_sslmode_in_the_url() {
    let url = cairn_tests::postgres_url().unwrap();
    let separator = if url.contains('?') { '&' } else { '?' };
    let required = format!("{url}{separator}sslmode=require");
    let dir = tempfile::tempdir().unwrap();
    let mut config = cairn::Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        data_dir: dir.path().join("data"),
        plugins_dir: dir.path().join("plugins"),
        ..cairn::Config::default()
    };
    std::fs::create_dir_all(&config.plugins_dir).unwrap();
    config.database.url = Some(required.clone());
    config.database.schema = Some(cairn_tests::fresh_schema());
    let mut probe = sqlx::PgConnection::connect(&required).await;
    match &mut probe {
        Ok(connection) => {
            // The server offers TLS: the connection is encrypted, and a host runs over it.
            let ssl: bool = sqlx::query_scalar("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
                .fetch_one(&mut *connection)
                .await
                .unwrap();
            assert!(ssl, "sslmode=require gives an encrypted connection");
            let host = cairn::start(&config).await.unwrap();
            host.shutdown().await.unwrap();
            // `verify-full` checks the certificate: a local test server's is not publicly trusted.
            let verified = format!("{url}{separator}sslmode=verify-full");
            let Err(error) = sqlx::PgConnection::connect(&verified).await else { panic!("an untrusted certificate") };
            assert!(error.to_string().contains("invalid peer certificate"), "{error}");
        }
        Err(error) => {
            let error = error.to_string();
            assert!(error.contains("server does not support TLS"), "{error}");
        }
    }

    // A server that refuses TLS (it answers the SSLRequest with `N`): the error says so.
    let refusing = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = refusing.local_addr().unwrap().port();
    tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        while let Ok((mut stream, _)) = refusing.accept().await {
            let mut request = [0u8; 8];
            if stream.read_exact(&mut request).await.is_ok() {
                let _ = stream.write_all(b"N").await;
            }
        }
    });
    config.database.url = Some(format!("postgres://postgres@127.0.0.1:{port}/test?sslmode=require"));
    config.database.acquire_timeout_ms = 2_000;
    let error = cairn::start(&config).await.err().expect("no TLS, no start");
    assert!(format!("{error:#}").contains("server does not support TLS"), "{error:#}");
}
