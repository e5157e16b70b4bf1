//! Test guest `not-a-plugin`: a perfectly good `wasi:cli` program, and not a Cairn plugin. The
//! registry must refuse it, naming the missing `cairn:domain` export.

fn main() {
    println!("I am a command-line program, not a domain plugin.");
}
