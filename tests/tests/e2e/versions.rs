//! Versioned plugins through the admin API: deploy, stage, activate, roll back, restart, refuse
//! bad uploads, and guard the API with the admin token.

use cairn_tests::{ADMIN_TOKEN, CARRIERS_COMPONENT, CARRIERS_NEXT_COMPONENT, Reply};

use super::TestHost;
use serde_json::{Value, json};

async fn host() -> TestHost {
    TestHost::start(&[CARRIERS_COMPONENT]).await.unwrap()
}

async fn register(host: &TestHost) -> String {
    let reply =
        host.command("carriers", "register-carrier", json!({"name": "Acme", "email": "a@acme.io"})).await.unwrap();
    reply.expect(201);
    reply.body["aggregate_id"].as_str().unwrap().to_string()
}

async fn rename(host: &TestHost, id: &str) -> Reply {
    host.command("carriers", "rename-carrier", json!({"carrier_id": id, "name": "Renamed"})).await.unwrap()
}

async fn active_version(host: &TestHost) -> Value {
    host.admin_get("/admin/v1/domains").await.unwrap().body["domains"][0]["version"].clone()
}

/// The component's bytes with a custom section appended: a different digest, the same plugin.
fn with_custom_section(path: &str, payload_len: usize) -> Vec<u8> {
    let mut bytes = std::fs::read(path).unwrap();
    let name = b"cairn-test";
    let mut section = vec![name.len() as u8];
    section.extend_from_slice(name);
    section.extend(std::iter::repeat_n(7u8, payload_len));
    bytes.push(0); // custom section id
    let mut size = section.len();
    loop {
        let byte = (size & 0x7f) as u8;
        size >>= 7;
        if size == 0 {
            bytes.push(byte);
            break;
        }
        bytes.push(byte | 0x80);
    }
    bytes.extend(section);
    bytes
}

#[tokio::test]
async fn deploy_activate_and_roll_back_change_behaviour_without_a_restart() {
    let host = host().await;
    let id = register(&host).await;
    rename(&host, &id).await.expect_problem(404, "unknown-command");

    let deployed = host.deploy(CARRIERS_NEXT_COMPONENT, "").await.unwrap();
    deployed.expect(201);
    assert_eq!(deployed.body["version"], "0.2.0");
    assert_eq!(deployed.body["active"], true);
    assert_eq!(deployed.body["replay"]["streams_checked"], 2, "the carrier's stream and its email's");
    assert_eq!(deployed.body["replay"]["failures"], json!([]));
    assert!(deployed.body["describe"]["commands"].as_array().unwrap().iter().any(|c| c["name"] == "rename-carrier"));

    let renamed = rename(&host, &id).await;
    renamed.expect(200);
    let events = host.stream_events("carriers", &format!("carrier-{id}")).await.unwrap();
    assert_eq!(events[0]["metadata"]["plugin"]["version"], "0.1.0");
    assert_eq!(events[1]["metadata"]["plugin"]["version"], "0.2.0", "each event records the version that decided it");
    assert_eq!(events[1]["metadata"]["plugin"]["digest"], deployed.body["digest"]);

    let rolled = host.admin_post("/admin/v1/domains/carriers/rollback", json!({})).await.unwrap();
    rolled.expect(200);
    assert_eq!(rolled.body["version"], "0.1.0");
    rename(&host, &id).await.expect_problem(404, "unknown-command");
    host.command("carriers", "change-carrier-email", json!({"carrier_id": id, "email": "b@acme.io"}))
        .await
        .unwrap()
        .expect(200);

    let versions = host.admin_get("/admin/v1/domains/carriers/versions").await.unwrap();
    versions.expect(200);
    assert_eq!(versions.body["versions"].as_array().unwrap().len(), 2);
    let actions: Vec<(String, String)> = versions.body["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| (h["action"].as_str().unwrap().to_string(), h["version"].as_str().unwrap().to_string()))
        .collect();
    assert_eq!(
        actions,
        [("activate".into(), "0.1.0".into()), ("activate".into(), "0.2.0".into()), ("rollback".into(), "0.1.0".into())]
    );
}

#[tokio::test]
async fn a_staged_version_serves_only_once_activated_and_uploads_are_idempotent() {
    let host = host().await;
    let staged = host.deploy(CARRIERS_NEXT_COMPONENT, "?activate=false").await.unwrap();
    staged.expect(201);
    assert_eq!(staged.body["active"], false);
    assert_eq!(active_version(&host).await, "0.1.0");

    let again = host.deploy(CARRIERS_NEXT_COMPONENT, "?activate=false").await.unwrap();
    again.expect(200);
    assert_eq!(again.body["newly_stored"], false);
    assert_eq!(again.body["digest"], staged.body["digest"]);

    host.admin_post("/admin/v1/domains/carriers/activate", json!({"version": "0.2.0"})).await.unwrap().expect(200);
    assert_eq!(active_version(&host).await, "0.2.0");
    let by_digest = json!({"version": staged.body["digest"].as_str().unwrap()[..16].to_string()});
    host.admin_post("/admin/v1/domains/carriers/activate", by_digest).await.unwrap().expect(200);
    host.admin_post("/admin/v1/domains/carriers/activate", json!({"version": "9.9.9"}))
        .await
        .unwrap()
        .expect_problem(404, "unknown-version");
    host.admin_post("/admin/v1/domains/nowhere/rollback", json!({}))
        .await
        .unwrap()
        .expect_problem(404, "unknown-domain");
}

#[tokio::test]
async fn another_component_under_a_used_version_is_409() {
    let host = host().await;
    let reply = host.deploy_bytes(with_custom_section(CARRIERS_COMPONENT, 16), "").await.unwrap();
    reply.expect_problem(409, "version-taken");
}

#[tokio::test]
async fn bad_uploads_are_4xx_with_a_reason_and_change_nothing() {
    let host = TestHost::start_with(&[CARRIERS_COMPONENT], |c| c.admin.max_component_mib = 1).await.unwrap();
    let before = host.admin_get("/admin/v1/domains/carriers/versions").await.unwrap().body;
    let carriers = std::fs::read(CARRIERS_COMPONENT).unwrap();
    let cases: Vec<(&str, Vec<u8>, u16, &str, &str)> = vec![
        ("core module", b"\0asm\x01\0\0\0".to_vec(), 400, "not-a-component", "core WebAssembly module"),
        (
            "random bytes",
            (0..4096u32).map(|i| (i * 7919 % 251) as u8).collect(),
            400,
            "not-a-component",
            "not WebAssembly",
        ),
        (
            "truncated",
            carriers[..carriers.len() / 2].to_vec(),
            400,
            "not-a-component",
            "not a valid WebAssembly component",
        ),
        ("precompiled", b"\x7fELF\x02\x01\x01\0".to_vec(), 400, "not-a-component", "precompiled"),
        ("oversized", with_custom_section(CARRIERS_NEXT_COMPONENT, 2 << 20), 413, "component-too-large", "cap"),
    ];
    for (case, bytes, status, code, reason) in cases {
        let reply = host.deploy_bytes(bytes, "").await.unwrap();
        assert_eq!(reply.status, status, "{case}: {reply:?}");
        assert_eq!(reply.body["code"], code, "{case}: {reply:?}");
        assert!(reply.body["detail"].as_str().unwrap().contains(reason), "{case}: {reply:?}");
    }
    let wrong_type = host
        .client()
        .post(format!("{}/admin/v1/plugins", host.base))
        .bearer_auth(ADMIN_TOKEN)
        .body(carriers)
        .send()
        .await
        .unwrap();
    assert_eq!(wrong_type.status(), 415);
    assert_eq!(host.admin_get("/admin/v1/domains/carriers/versions").await.unwrap().body, before, "nothing changed");
    host.command("carriers", "register-carrier", json!({"name": "A", "email": "a@b.io"})).await.unwrap().expect(201);
}

#[tokio::test]
async fn a_restart_restores_the_active_versions() {
    let mut host = host().await;
    let id = register(&host).await;
    host.deploy(CARRIERS_NEXT_COMPONENT, "").await.unwrap().expect(201);
    host.restart().await.unwrap();
    assert_eq!(
        active_version(&host).await,
        "0.2.0",
        "the plugins directory does not override what an operator activated"
    );
    rename(&host, &id).await.expect(200);
}

#[tokio::test]
async fn racing_activations_one_wins_the_other_is_409() {
    let host = host().await;
    let v1 =
        host.admin_get("/admin/v1/domains").await.unwrap().body["domains"][0]["digest"].as_str().unwrap().to_string();
    host.deploy(CARRIERS_NEXT_COMPONENT, "?activate=false").await.unwrap().expect(201);
    let request = json!({"version": "0.2.0", "expected_active": v1});
    let (a, b) = tokio::join!(
        host.admin_post("/admin/v1/domains/carriers/activate", request.clone()),
        host.admin_post("/admin/v1/domains/carriers/activate", request.clone()),
    );
    let mut statuses = [a.unwrap().status, b.unwrap().status];
    statuses.sort_unstable();
    assert_eq!(statuses, [200, 409]);
    assert_eq!(active_version(&host).await, "0.2.0");
}

#[tokio::test]
async fn the_admin_api_needs_the_token_and_is_closed_without_one() {
    let host = host().await;
    let url = format!("{}/admin/v1/domains", host.base);
    let missing = host.client().get(&url).send().await.unwrap();
    assert_eq!(missing.status(), 401);
    assert!(missing.headers().contains_key("www-authenticate"));
    let wrong = host.client().get(&url).bearer_auth("not-the-token-at-all").send().await.unwrap();
    assert_eq!(wrong.status(), 403);

    let closed = TestHost::start_with(&[CARRIERS_COMPONENT], |c| c.admin.token = None).await.unwrap();
    let reply = closed.admin_get("/admin/v1/domains").await.unwrap();
    reply.expect_problem(403, "admin-disabled");
    assert!(reply.body["detail"].as_str().unwrap().contains("CAIRN_ADMIN_TOKEN"));
}

#[tokio::test]
async fn the_cli_deploys_lists_and_rolls_back() {
    use cairn::cli::admin::{AdminCommand, Connection, execute};
    let host = host().await;
    let connection = Connection { server: host.base.clone(), token: Some(ADMIN_TOKEN.into()), json: false, ca_file: None };
    let deploy = AdminCommand::Deploy {
        file: CARRIERS_NEXT_COMPONENT.into(),
        no_activate: false,
        connection: connection.clone(),
    };
    let out = execute(deploy).await.unwrap();
    assert!(out.contains("version  0.2.0") && out.contains("active   yes"), "{out}");
    let out = execute(AdminCommand::Status { connection: connection.clone() }).await.unwrap();
    assert!(out.contains("carriers") && out.contains("0.2.0") && out.contains("rename-carrier"), "{out}");
    let out = execute(AdminCommand::Rollback { domain: "carriers".into(), to: None, connection: connection.clone() })
        .await
        .unwrap();
    assert!(out.starts_with("carriers: 0.1.0 now active (rollback "), "{out}");
    let json = Connection { json: true, ..connection.clone() };
    let out = execute(AdminCommand::Versions { domain: "carriers".into(), connection: json }).await.unwrap();
    let value: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(value["versions"].as_array().unwrap().len(), 2);
    let bad = Connection { token: Some("wrong-token-wrong-token".into()), ..connection };
    let error = execute(AdminCommand::Status { connection: bad }).await.unwrap_err();
    assert!(error.to_string().contains("403"), "{error}");
}
