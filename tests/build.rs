//! Compiles the example domains (`plugins/*`) and the test guests (`tests/guests/*`) to
//! `wasm32-wasip2` components, and writes `components.rs` into OUT_DIR: one
//! `pub const <NAME>_COMPONENT: &str` path per component, and `foreach_component!`, which the
//! suites use to prove every component has a test (a component without one fails the build).

use std::path::{Path, PathBuf};
use std::process::Command;

/// One component: its name (the constant and the file), the package, and extra cargo features.
struct Build {
    name: &'static str,
    package: &'static str,
    features: &'static str,
    folder: &'static str,
}

const BUILDS: &[Build] = &[
    Build { name: "bank", package: "bank", features: "", folder: "plugins/bank" },
    Build { name: "bank-decide-only", package: "bank", features: "bank/decide-only", folder: "plugins/bank" },
    Build { name: "carriers", package: "carriers", features: "", folder: "plugins/carriers" },
    Build { name: "orders", package: "orders", features: "", folder: "plugins/orders" },
    Build { name: "rates", package: "rates", features: "", folder: "plugins/rates" },
    Build { name: "faulty", package: "faulty", features: "", folder: "tests/guests/faulty" },
    Build { name: "not-a-plugin", package: "not-a-plugin", features: "", folder: "tests/guests/not-a-plugin" },
    Build { name: "hostile", package: "hostile", features: "", folder: "tests/guests/hostile" },
    Build { name: "big-memory", package: "big-memory", features: "", folder: "tests/guests/big-memory" },
    Build { name: "overreach", package: "overreach", features: "", folder: "tests/guests/overreach" },
    Build { name: "gateway-probe", package: "gateway-probe", features: "", folder: "tests/guests/gateway-probe" },
    Build { name: "escapee", package: "escapee", features: "", folder: "tests/guests/escapee" },
    Build { name: "sloth", package: "sloth", features: "", folder: "tests/guests/sloth" },
    Build { name: "header-flood", package: "header-flood", features: "", folder: "tests/guests/header-flood" },
    Build { name: "legacy-0-1-0", package: "legacy-0-1-0", features: "", folder: "tests/guests/legacy-0-1-0" },
    Build { name: "legacy-0-1-1", package: "legacy-0-1-1", features: "", folder: "tests/guests/legacy-0-1-1" },
    Build { name: "keeper", package: "keeper", features: "", folder: "tests/guests/keeper" },
    Build { name: "keeper-next", package: "keeper", features: "keeper/next", folder: "tests/guests/keeper" },
    Build { name: "unstorable", package: "unstorable", features: "", folder: "tests/guests/unstorable" },
    Build { name: "carriers-next", package: "carriers", features: "carriers/next", folder: "plugins/carriers" },
    Build {
        name: "carriers-incompatible",
        package: "carriers",
        features: "carriers/incompatible",
        folder: "plugins/carriers",
    },
    Build {
        name: "escapee-long-version",
        package: "escapee",
        features: "escapee/long-version",
        folder: "tests/guests/escapee",
    },
    Build {
        name: "escapee-sleepy-describe",
        package: "escapee",
        features: "escapee/sleepy-describe",
        folder: "tests/guests/escapee",
    },
    Build { name: "escapee-sockets", package: "escapee", features: "escapee/sockets", folder: "tests/guests/escapee" },
    Build { name: "orders-next", package: "orders", features: "orders/next", folder: "plugins/orders" },
    Build { name: "orders-faulty", package: "orders", features: "orders/faulty", folder: "plugins/orders" },
    Build { name: "sloth-precise", package: "sloth", features: "sloth/precise-numbers", folder: "tests/guests/sloth" },
];
/// The components the example host serves (the rest exist for tests).
const EXAMPLES: &[&str] = &["bank", "carriers", "orders", "rates"];

fn main() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    let root = manifest.parent().expect("workspace root").to_path_buf();
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("OUT_DIR"));
    // A target dir of its own: the outer cargo holds the lock on the usual one.
    let target_dir = root.join("target").join("components");
    let built = target_dir.join("wasm32-wasip2").join("plugin");
    let components = out.join("components");
    let examples = out.join("example-plugins");
    std::fs::create_dir_all(&components).expect("creating components dir");
    std::fs::create_dir_all(&examples).expect("creating example-plugins");
    ensure_wasm_target();
    println!("cargo:rerun-if-env-changed=CAIRN_TEST_POSTGRES_URL");
    println!("cargo::rustc-check-cfg=cfg(postgres_suite)");
    if std::env::var_os("CAIRN_TEST_POSTGRES_URL").is_some() {
        println!("cargo:rustc-cfg=postgres_suite");
    } else {
        println!(
            "cargo:warning=CAIRN_TEST_POSTGRES_URL is not set: the PostgreSQL suites are SKIPPED \
             (`.ci/run` sets it to postgres://postgres@127.0.0.1:5432/test)"
        );
    }
    println!("cargo:rerun-if-env-changed=CAIRN_TEST_REDIS_URL");
    if std::env::var_os("CAIRN_TEST_REDIS_URL").is_none() {
        println!(
            "cargo:warning=CAIRN_TEST_REDIS_URL is not set: the Redis cache tests are SKIPPED \
             (`.ci/run` sets it to redis://127.0.0.1:6379)"
        );
    }

    // Plain builds together (one cargo run), then each feature build on its own: they write the
    // same file name, so each output is copied away before the next build.
    let plain: Vec<&Build> = BUILDS.iter().filter(|b| b.features.is_empty()).collect();
    cargo_build(&root, &target_dir, plain.iter().map(|b| b.package), "");
    for build in &plain {
        collect(&built, build, &components);
    }
    for build in BUILDS.iter().filter(|b| !b.features.is_empty()) {
        cargo_build(&root, &target_dir, [build.package], build.features);
        collect(&built, build, &components);
    }

    let mut consts = String::new();
    for build in BUILDS {
        let path = components.join(format!("{}.wasm", build.name));
        let upper = build.name.to_uppercase().replace('-', "_");
        let features =
            if build.features.is_empty() { String::new() } else { format!(" (features {})", build.features) };
        consts.push_str(&format!(
            "/// The compiled `{}` component{features}.\npub const {upper}_COMPONENT: &str = {:?};\n",
            build.folder,
            path_str(&path)
        ));
        if EXAMPLES.contains(&build.name) {
            std::fs::copy(&path, examples.join(format!("{}.wasm", build.name))).expect("copying an example plugin");
        }
        println!("cargo:rerun-if-changed={}", root.join(build.folder).display());
    }
    consts.push_str(&format!(
        "/// The directory holding the example domains' components.\npub const EXAMPLE_PLUGINS_DIR: &str = {:?};\n",
        path_str(&examples)
    ));
    let calls: String = BUILDS.iter().map(|b| format!("$mac!({});", b.name.replace('-', "_"))).collect();
    consts.push_str(&format!(
        "/// Calls `$mac!(name)` for every component, so a suite can require a test per component.\n\
         #[macro_export]\nmacro_rules! foreach_component {{ ($mac:ident) => {{ {calls} }}; }}\n"
    ));
    std::fs::write(out.join("components.rs"), consts).expect("writing components.rs");
    for dir in ["sdk", "wit", "Cargo.toml", "Cargo.lock"] {
        println!("cargo:rerun-if-changed={}", root.join(dir).display());
    }
}

/// rustup installs `rust-toolchain.toml`'s targets with the toolchain, but not into a toolchain
/// that was already installed without them: add the wasm target when the sysroot lacks it.
fn ensure_wasm_target() {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let sysroot = Command::new(rustc).args(["--print", "sysroot"]).output().expect("running rustc --print sysroot");
    let sysroot = PathBuf::from(String::from_utf8_lossy(&sysroot.stdout).trim());
    if sysroot.join("lib/rustlib/wasm32-wasip2").exists() {
        return;
    }
    let status = Command::new("rustup").args(["target", "add", "wasm32-wasip2"]).status();
    assert!(
        status.is_ok_and(|s| s.success()),
        "the wasm32-wasip2 target is missing and `rustup target add wasm32-wasip2` failed; run it by hand"
    );
}

fn cargo_build<'a>(root: &Path, target_dir: &Path, packages: impl IntoIterator<Item = &'a str>, features: &str) {
    let mut cargo = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cargo
        .current_dir(root)
        .args(["build", "--target", "wasm32-wasip2", "--profile", "plugin", "--target-dir"])
        .arg(target_dir);
    for package in packages {
        cargo.args(["-p", package]);
    }
    if !features.is_empty() {
        cargo.args(["--features", features]);
    }
    for var in
        ["RUSTFLAGS", "CARGO_ENCODED_RUSTFLAGS", "CARGO_TARGET_DIR", "CARGO_BUILD_TARGET", "CARGO_PRIMARY_PACKAGE"]
    {
        cargo.env_remove(var);
    }
    let status = cargo.status().expect("running cargo to build the components");
    assert!(status.success(), "building the wasm32-wasip2 components failed (see above)");
}

fn collect(built: &Path, build: &Build, into: &Path) {
    // Libraries are named with underscores, binaries as the package.
    let library = built.join(format!("{}.wasm", build.package.replace('-', "_")));
    let wasm = if library.exists() { library } else { built.join(format!("{}.wasm", build.package)) };
    assert!(wasm.exists(), "{} was not built", wasm.display());
    std::fs::copy(&wasm, into.join(format!("{}.wasm", build.name))).expect("copying a component");
}

fn path_str(path: &Path) -> String {
    path.to_str().expect("UTF-8 path").to_string()
}
