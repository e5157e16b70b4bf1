//! Compiles the example domains (`plugins/*`) and the test guests (`tests/guests/*`) to
//! `wasm32-wasip2` components, and writes `components.rs` into OUT_DIR: one
//! `pub const <NAME>_COMPONENT: &str` path per component, and `foreach_component!`, which the
//! suites use to prove every component has a test (a component without one fails the build).

use std::path::{Path, PathBuf};
use std::process::Command;

/// (crate name, folder) of every component to build.
const COMPONENTS: &[(&str, &str)] = &[("carriers", "plugins/carriers"), ("faulty", "tests/guests/faulty")];
/// The components the example host serves (the rest exist for tests).
const EXAMPLES: &[&str] = &["carriers"];

fn main() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    let root = manifest.parent().expect("workspace root").to_path_buf();
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("OUT_DIR"));
    // A target dir of its own: the outer cargo holds the lock on the usual one.
    let target_dir = root.join("target").join("components");

    let mut cargo = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cargo
        .current_dir(&root)
        .args(["build", "--target", "wasm32-wasip2", "--profile", "plugin", "--target-dir"])
        .arg(&target_dir);
    for (name, _) in COMPONENTS {
        cargo.args(["-p", name]);
    }
    for var in
        ["RUSTFLAGS", "CARGO_ENCODED_RUSTFLAGS", "CARGO_TARGET_DIR", "CARGO_BUILD_TARGET", "CARGO_PRIMARY_PACKAGE"]
    {
        cargo.env_remove(var);
    }
    let status = cargo.status().expect("running cargo to build the components");
    assert!(status.success(), "building the wasm32-wasip2 components failed (see above)");

    let built = target_dir.join("wasm32-wasip2").join("plugin");
    let examples = out.join("example-plugins");
    std::fs::create_dir_all(&examples).expect("creating example-plugins");
    let mut consts = String::new();
    let mut names = Vec::new();
    for (name, folder) in COMPONENTS {
        let wasm = built.join(format!("{name}.wasm"));
        assert!(wasm.exists(), "{} was not built", wasm.display());
        let upper = name.to_uppercase().replace('-', "_");
        consts.push_str(&format!(
            "/// The compiled `{folder}` component.\npub const {upper}_COMPONENT: &str = {:?};\n",
            path_str(&wasm)
        ));
        names.push(name.to_string());
        if EXAMPLES.contains(name) {
            std::fs::copy(&wasm, examples.join(format!("{name}.wasm"))).expect("copying an example plugin");
        }
        println!("cargo:rerun-if-changed={}", root.join(folder).display());
    }
    consts.push_str(&format!(
        "/// The directory holding the example domains' components.\npub const EXAMPLE_PLUGINS_DIR: &str = {:?};\n",
        path_str(&examples)
    ));
    consts.push_str(&format!(
        "/// Calls `$mac!(name)` for every component, so a suite can require a test per component.\n\
         #[macro_export]\nmacro_rules! foreach_component {{ ($mac:ident) => {{ {} }}; }}\n",
        names.iter().map(|n| format!("$mac!({n});")).collect::<String>()
    ));
    std::fs::write(out.join("components.rs"), consts).expect("writing components.rs");
    for dir in ["sdk", "wit", "Cargo.toml", "Cargo.lock"] {
        println!("cargo:rerun-if-changed={}", root.join(dir).display());
    }
}

fn path_str(path: &Path) -> String {
    path.to_str().expect("UTF-8 path").to_string()
}
