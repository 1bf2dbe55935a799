//! Build-script helpers for gluefleet connector binaries.
//!
//! A connector's `build.rs` is one line:
//!
//! ```no_run
//! gluefleet_build::link_order();
//! ```
//!
//! # Why a link order
//!
//! A worker's resident memory is mostly its own code pages, not its heap:
//! the kernel maps a binary's text from the page cache in whole folios (as
//! large as the readahead that filled them), so touching one function maps
//! everything around it. The functions a worker runs (start-up and the
//! per-message path, about 2,100 of them and 2.8 MB) are spread over the
//! whole 18 MB of text by the linker, so before this nearly every part of
//! it was resident: gluefleet-legacy-rest held 13.3 MiB of file pages at
//! idle against 6 for the raw Pub/Sub loop. With those functions laid out
//! together (lld's `--symbol-ordering-file`) it holds 6 to 8, and its peak
//! RSS over a backlog fell from 22.6 to 15.6 MiB (docs/BENCHMARKS.md).
//!
//! The list, `link-order.txt` beside the connector's `Cargo.toml`, is the
//! functions a callgrind run of the benchmark's workload executed, in the
//! order they first ran: `cargo xtask link-order` writes it. It names
//! symbols exactly (with their hashes), so after a dependency or toolchain
//! update some names no longer match; the linker then places those
//! functions as it would anyway, and nothing breaks. `cargo xtask bench`
//! reports how many of the names the binary it measured still has.

use std::env;
use std::path::Path;

/// The file, relative to the connector's manifest directory.
pub const FILE: &str = "link-order.txt";

/// Set to `0` to link without the order (e.g. with a linker other than lld).
pub const DISABLE_ENV: &str = "GLUEFLEET_LINK_ORDER";

/// Passes the connector's `link-order.txt` to the linker for its binaries.
///
/// Only for release builds (tests gain nothing from it), only where the
/// linker is known to be lld (rustc's default on x86_64 Linux with glibc
/// since Rust 1.90: Cloud Run's platform) and not when the build chooses a
/// linker of its own (`target.<triple>.linker`, or `RUSTFLAGS`), and only when the file exists: a new connector has
/// none until `cargo xtask link-order` has run it.
pub fn link_order() {
    println!("cargo::rerun-if-changed={FILE}");
    println!("cargo::rerun-if-env-changed={DISABLE_ENV}");
    let var = |k: &str| env::var(k).unwrap_or_default();
    let lld_by_default = var("CARGO_CFG_TARGET_ARCH") == "x86_64"
        && var("CARGO_CFG_TARGET_OS") == "linux"
        && var("CARGO_CFG_TARGET_ENV") == "gnu";
    let flags = var("CARGO_ENCODED_RUSTFLAGS");
    let own_linker = env::var_os("RUSTC_LINKER").is_some()
        || flags.contains("linker")
        || flags.contains("fuse-ld");
    if var("PROFILE") != "release" || !lld_by_default || own_linker || var(DISABLE_ENV) == "0" {
        return;
    }
    let file = Path::new(&var("CARGO_MANIFEST_DIR")).join(FILE);
    if !file.is_file() {
        return;
    }
    println!(
        "cargo::rustc-link-arg-bins=-Wl,--symbol-ordering-file={}",
        file.display()
    );
    // Names the binary no longer has are expected after updates (see above).
    println!("cargo::rustc-link-arg-bins=-Wl,--no-warn-symbol-ordering");
}
