//! The `cairn` binary: see [`cairn::cli`].

fn main() -> anyhow::Result<()> {
    cairn::cli::run(std::env::args_os())
}
