//! Link options for the release binary (BENCHMARKS.md, "The first build": 159 MB -> 146 MB).
//!
//! Both are link-time only, so they cost no compile time and change no crate's code:
//! - `--icf=all` folds functions whose machine code is identical. Arrow's and DataFusion's generic
//!   kernels are instantiated for many types that compile to the same code (6.6 MB of `.text`).
//! - `-z pack-relative-relocs` stores the position-independent binary's relocations in the packed
//!   RELR form (glibc 2.36+, Debian bookworm): 7 MB of `.rela.dyn` become a few kilobytes.
//!
//! Only where the linker is known to be `rust-lld`: Rust (1.90+, `rust-version` in Cargo.toml) links
//! `x86_64-unknown-linux-gnu` with it by default. Other targets link as before.

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let target = std::env::var("TARGET").unwrap_or_default();
    let release = std::env::var("PROFILE").is_ok_and(|profile| profile == "release");
    if release && target == "x86_64-unknown-linux-gnu" {
        println!("cargo:rustc-link-arg-bins=-Wl,--icf=all");
        println!("cargo:rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
    }
}
