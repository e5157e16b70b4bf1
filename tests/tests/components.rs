//! Every component that `build.rs` compiles has a test here that loads it into a real host and
//! runs one command through it; `foreach_component!` fails the build when one is missing.

#![allow(clippy::unwrap_used)] // a failing unwrap is a failing test

use cairn_tests::{CARRIERS_COMPONENT, FAULTY_COMPONENT, TestHost};
use serde_json::json;

macro_rules! assert_test_exists {
    ($name:ident) => {
        #[allow(unused_imports)]
        use self::$name as _;
    };
}
cairn_tests::foreach_component!(assert_test_exists);

#[tokio::test]
async fn carriers() {
    let host = TestHost::start(&[CARRIERS_COMPONENT]).await.unwrap();
    host.command("carriers", "register-carrier", json!({"name": "A", "email": "a@b.io"})).await.unwrap().expect(201);
}

#[tokio::test]
async fn faulty() {
    let host = TestHost::start(&[FAULTY_COMPONENT]).await.unwrap();
    host.command("faulty", "record", json!({"id": 7})).await.unwrap().expect(201);
    assert_eq!(host.stream_events("faulty", "gadget-7").await.unwrap().len(), 1, "numeric ids become stream names");
}
