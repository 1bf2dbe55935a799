//! `cargo xtask run`, end to end: a connector's shipped example against its
//! local double, in one command, through a file source and through the
//! Pub/Sub emulator; and an env file that is wrong is refused naming the
//! line, before anything starts.

use std::process::{Command, Output};

const XTASK: &str = env!("CARGO_BIN_EXE_xtask");

fn run(args: &[&str]) -> (Option<i32>, String) {
    let Output {
        status,
        stdout,
        stderr,
    } = Command::new(XTASK)
        .arg("run")
        .args(args)
        .output()
        .expect("xtask runs");
    (
        status.code(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&stdout),
            String::from_utf8_lossy(&stderr)
        ),
    )
}

/// The row of the table for `label` (`order.created evt-1`).
fn row<'a>(out: &'a str, label: &str) -> &'a str {
    out.lines()
        .find(|l| l.contains(label))
        .unwrap_or_else(|| panic!("a row for {label}: {out}"))
}

#[test]
fn legacy_rest_example_against_the_stand_in_order_system() {
    let (code, out) = run(&["legacy-rest"]);
    assert_eq!(code, Some(0), "{out}");
    // The key's name is shown, never its value.
    assert!(out.contains("ORDERS_API_KEY (values not shown)"), "{out}");
    assert!(!out.contains("local-sandbox-key"), "{out}");
    assert!(out.contains("ok   target:"), "check ran first: {out}");
    assert!(
        row(&out, "order.created evt-1").contains("acked: delivered"),
        "{out}"
    );
    assert!(
        row(&out, "order.created evt-2").contains("acked: delivered"),
        "{out}"
    );
    // evt-3 repeats order o-1: its key is the order id, so no second order.
    assert!(
        row(&out, "order.created evt-3").contains("acked: duplicate"),
        "{out}"
    );
    assert!(
        row(&out, "order.cancelled evt-4").contains("acked: delivered"),
        "{out}"
    );
    assert!(
        row(&out, "invoice.sent evt-5").contains("dead-lettered (unroutable)"),
        "{out}"
    );
    assert!(out.contains("✔ every event settled"), "{out}");
    assert!(
        out.contains("the stand-in order system took 4 requests"),
        "one check, two orders, one cancellation: {out}"
    );
}

#[test]
fn salesforce_example_through_the_emulator_against_the_double() {
    let (code, out) = run(&["salesforce", "--emulator"]);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("ok   credential: obtained"), "{out}");
    assert!(
        out.contains("ok   subscription"),
        "the Pub/Sub checks ran: {out}"
    );
    for id in ["cust-1", "cust-2", "cust-4"] {
        assert!(
            row(&out, &format!("customer.upserted {id} ")).contains("acked:"),
            "{id}: {out}"
        );
    }
    assert!(
        row(&out, "customer.upserted cust-3").contains("REQUIRED_FIELD_MISSING"),
        "{out}"
    );
    assert!(out.contains("it holds 3 accounts"), "{out}");
}

#[test]
fn a_broken_env_file_is_refused_naming_the_line() {
    let dir = std::env::temp_dir().join(format!("gluefleet-xtask-run-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let env = dir.join("bad.env");
    std::fs::write(
        &env,
        "# fine\nORDERS_API_KEY=k\nthis line has no equals sign\n",
    )
    .expect("env written");
    let (code, out) = run(&["legacy-rest", "--env", &env.display().to_string()]);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("bad.env:3: not KEY=VALUE"), "{out}");
    let _ = std::fs::remove_dir_all(&dir);
}
