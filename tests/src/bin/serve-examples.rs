//! `cargo serve-examples`: builds the example domains (through this crate's `build.rs`) and
//! runs `cairn serve` with them loaded. Extra arguments go to `cairn serve`
//! (e.g. `cargo serve-examples --listen 127.0.0.1:9000`).

fn main() -> anyhow::Result<()> {
    let mut args: Vec<std::ffi::OsString> = vec!["cairn".into(), "serve".into()];
    let extra: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
    if !extra.iter().any(|a| a == "--plugins") {
        args.extend(["--plugins".into(), cairn_tests::EXAMPLE_PLUGINS_DIR.into()]);
    }
    args.extend(extra);
    cairn::cli::run(args)
}
