//! `hub user add|remove|list` against a real credentials file: the password
//! from a flag or from standard input, stored as an argon2 hash, never in
//! clear; sub-accounts need their main account.

use std::io::Write;
use std::process::{Command, Stdio};

use hub::auth::credentials::{verify_password, Users};

fn hub() -> Command {
    Command::new(env!("CARGO_BIN_EXE_hub"))
}

#[test]
fn add_list_and_remove_users() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("users.toml");
    let f = file.to_str().unwrap();
    let out = hub()
        .args([
            "user",
            "add",
            "--file",
            f,
            "acme-main",
            "--tenant",
            "acme",
            "--password",
            "s3cret",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Password on standard input, sub-account with its own narrower rule.
    let mut child = hub()
        .args([
            "user",
            "add",
            "--file",
            f,
            "sensor",
            "--parent",
            "acme-main",
        ])
        .args(["--allow", "publish:sensors/%c/#"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"from-stdin\n")
        .unwrap();
    assert!(child.wait().unwrap().success());

    let text = std::fs::read_to_string(&file).unwrap();
    assert!(
        !text.contains("s3cret") && !text.contains("from-stdin"),
        "{text}"
    );
    let users = Users::load(&file).unwrap();
    assert!(verify_password(
        b"s3cret",
        &users.users["acme-main"].password
    ));
    assert!(verify_password(
        b"from-stdin",
        &users.users["sensor"].password
    ));
    assert_eq!(
        users.account("sensor").unwrap().tenant.as_deref(),
        Some("acme")
    );

    let out = hub().args(["user", "list", "--file", f]).output().unwrap();
    let listed = String::from_utf8_lossy(&out.stdout);
    assert!(
        listed.contains("sensor tenant=acme parent=acme-main"),
        "{listed}"
    );

    // A sub-account of a missing main account, and removing a main account
    // that still has subs, are refused with a message.
    let out = hub()
        .args([
            "user",
            "add",
            "--file",
            f,
            "x",
            "--parent",
            "nobody",
            "--password",
            "p",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("nobody"));
    let out = hub()
        .args(["user", "remove", "--file", f, "acme-main"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    for name in ["sensor", "acme-main"] {
        let out = hub()
            .args(["user", "remove", "--file", f, name])
            .output()
            .unwrap();
        assert!(out.status.success());
    }
    assert!(Users::load(&file).unwrap().users.is_empty());
}
