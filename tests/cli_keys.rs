//! `hush keygen` and `hush fingerprint` as a user runs them: the real
//! binary, real files. Every error message is pinned here.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::os::unix::fs::PermissionsExt;

use common::{example_key, hush, run};

#[test]
fn keygen_writes_a_private_and_public_key_with_the_right_modes() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("a.pem");
    let out = run(hush()
        .args(["keygen", "-o"])
        .arg(&key)
        .args(["--bits", "2048"]));
    assert!(out.ok, "{}", out.stderr);
    let fp_line = out.stdout.lines().last().unwrap();
    assert!(
        fp_line.starts_with("SHA256:") && fp_line.len() == 50,
        "{fp_line}"
    );

    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&key), 0o600);
    let public = dir.path().join("a.pem.pub");
    assert_eq!(mode(&public), 0o644);

    // `hush fingerprint` of either file prints the same fingerprint.
    for f in [&key, &public] {
        let out = run(hush().arg("fingerprint").arg(f));
        assert!(out.ok, "{}", out.stderr);
        assert_eq!(out.stdout.trim(), fp_line);
    }
    // The private file says when it was made and what its public key is.
    let text = std::fs::read_to_string(&key).unwrap();
    assert!(text.starts_with("# hush identity key"), "{text}");
    assert!(text.contains(fp_line));
    assert!(text.contains("-----BEGIN PRIVATE KEY-----"));
}

#[test]
fn keygen_never_overwrites_without_force() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("a.pem");
    std::fs::write(&key, "precious").unwrap();
    let out = run(hush()
        .args(["keygen", "-o"])
        .arg(&key)
        .args(["--bits", "2048"]));
    assert!(!out.ok);
    assert!(out.stderr.contains("already exists"), "{}", out.stderr);
    assert!(out.stderr.contains("--force"), "{}", out.stderr);
    assert_eq!(std::fs::read_to_string(&key).unwrap(), "precious");

    // An existing .pub alone also stops it, and nothing is written.
    let key2 = dir.path().join("b.pem");
    std::fs::write(dir.path().join("b.pem.pub"), "precious").unwrap();
    let out = run(hush()
        .args(["keygen", "-o"])
        .arg(&key2)
        .args(["--bits", "2048"]));
    assert!(
        !out.ok && out.stderr.contains("b.pem.pub already exists"),
        "{}",
        out.stderr
    );
    assert!(!key2.exists());

    let out = run(hush()
        .args(["keygen", "--force", "-o"])
        .arg(&key)
        .args(["--bits", "2048"]));
    assert!(out.ok, "{}", out.stderr);
    let mode = std::fs::metadata(&key).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "--force replaces the file with a private one");
}

#[test]
fn keygen_refuses_bad_sizes_before_any_work() {
    let dir = tempfile::tempdir().unwrap();
    for bits in ["1024", "2047", "8193", "0"] {
        let key = dir.path().join("a.pem");
        let out = run(hush()
            .args(["keygen", "-o"])
            .arg(&key)
            .args(["--bits", bits]));
        assert!(!out.ok);
        assert!(
            out.stderr.contains(&format!("--bits {bits}"))
                && out.stderr.contains("2048 to 8192 bits"),
            "{}",
            out.stderr
        );
        assert!(!key.exists());
    }
    let out = run(hush().args(["keygen", "-o", "x.pem", "--bits", "lots"]));
    assert!(
        !out.ok && out.stderr.contains("invalid value 'lots'"),
        "{}",
        out.stderr
    );
}

/// A new key protected by the passphrase "correct horse": its folder, path
/// and fingerprint.
fn locked_key() -> (tempfile::TempDir, std::path::PathBuf, String) {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("locked.pem");
    let out = run(hush()
        .env("HUSH_PASSPHRASE", "correct horse")
        .args(["keygen", "--passphrase", "--bits", "2048", "-o"])
        .arg(&key));
    assert!(out.ok, "{}", out.stderr);
    let fp = out.stdout.lines().last().unwrap().to_owned();
    (dir, key, fp)
}

#[test]
fn keygen_passphrase_from_env_protects_the_key() {
    let (dir, key, fp) = locked_key();
    let text = std::fs::read_to_string(&key).unwrap();
    assert!(text.contains("-----BEGIN ENCRYPTED PRIVATE KEY-----"));

    let ok = run(hush()
        .env("HUSH_PASSPHRASE", "correct horse")
        .arg("fingerprint")
        .arg(&key));
    assert_eq!(ok.stdout.trim(), fp);
    // With its .pub beside it, the fingerprint needs no passphrase
    // (usability F12).
    let beside = run(hush()
        .env_remove("HUSH_PASSPHRASE")
        .arg("fingerprint")
        .arg(&key));
    assert_eq!(beside.stdout.trim(), fp, "{}", beside.stderr);
    let public = dir.path().join("locked.pem.pub");
    let moved = dir.path().join("elsewhere.pub");
    std::fs::rename(&public, &moved).unwrap();
    let wrong = run(hush()
        .env("HUSH_PASSPHRASE", "wrong")
        .arg("fingerprint")
        .arg(&key));
    assert!(
        !wrong.ok
            && wrong.stderr.contains("wrong passphrase")
            && wrong
                .stderr
                .contains("HUSH_PASSPHRASE holds another passphrase"),
        "{}",
        wrong.stderr
    );
    let none = run(hush()
        .env_remove("HUSH_PASSPHRASE")
        .arg("fingerprint")
        .arg(&key));
    assert!(
        !none.ok && none.stderr.contains("HUSH_PASSPHRASE"),
        "{}",
        none.stderr
    );
    // The public key needs no passphrase.
    let public = run(hush()
        .env_remove("HUSH_PASSPHRASE")
        .arg("fingerprint")
        .arg(&moved));
    assert_eq!(public.stdout.trim(), fp);
}

#[test]
fn keygen_passphrase_without_terminal_or_env_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("a.pem");
    let out = run(hush()
        .env_remove("HUSH_PASSPHRASE")
        .args(["keygen", "--passphrase", "--bits", "2048", "-o"])
        .arg(&key));
    assert!(!out.ok);
    assert!(
        out.stderr.contains("needs a terminal") && out.stderr.contains("HUSH_PASSPHRASE"),
        "{}",
        out.stderr
    );
    assert!(!key.exists());
}

#[test]
fn fingerprint_errors_say_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let missing = run(hush().arg("fingerprint").arg(dir.path().join("nope.pem")));
    assert!(!missing.ok);
    assert!(
        missing.stderr.contains("does not exist") && missing.stderr.contains("hush keygen"),
        "{}",
        missing.stderr
    );

    let junk = dir.path().join("junk.pem");
    std::fs::write(&junk, "not a key\n").unwrap();
    let out = run(hush().arg("fingerprint").arg(&junk));
    assert!(
        !out.ok && out.stderr.contains("not a key hush can read"),
        "{}",
        out.stderr
    );

    let binary = dir.path().join("bin.pem");
    std::fs::write(&binary, [0xff, 0xfe, 0x00, 0x80]).unwrap();
    let out = run(hush().arg("fingerprint").arg(&binary));
    assert!(
        !out.ok && out.stderr.contains("not PEM text"),
        "{}",
        out.stderr
    );

    let out = run(hush().arg("fingerprint").arg(dir.path()));
    assert!(
        !out.ok && out.stderr.contains("is not a file"),
        "{}",
        out.stderr
    );

    let huge = dir.path().join("huge.pem");
    std::fs::write(&huge, vec![b'a'; 100_000]).unwrap();
    let out = run(hush().arg("fingerprint").arg(&huge));
    assert!(
        !out.ok && out.stderr.contains("too large"),
        "{}",
        out.stderr
    );
    // No panics anywhere.
    assert!(!out.stderr.contains("panicked"));
}

#[test]
fn fingerprint_of_example_keys_matches_their_comment() {
    let (_dir, alice) = example_key("alice");
    let out = run(hush().arg("fingerprint").arg(&alice));
    assert_eq!(
        out.stdout.trim(),
        "SHA256:t/k+iGGErhw/DDjAwpwOkCc3SiSZbhrl2kv1puRXObI"
    );
}

#[test]
fn typos_on_the_command_line_are_explained() {
    let out = run(hush().arg("kegen"));
    assert!(
        !out.ok && out.stderr.contains("unrecognized subcommand"),
        "{}",
        out.stderr
    );
    let out = run(hush().arg("keygen"));
    assert!(!out.ok && out.stderr.contains("--output"), "{}", out.stderr);
}

#[test]
fn the_help_says_hush_passphrase_is_visible_in_the_process_environment() {
    for sub in ["keygen", "client"] {
        let out = run(hush().args([sub, "--help"]));
        assert!(out.ok, "{}", out.stderr);
        assert!(
            out.stdout.contains("HUSH_PASSPHRASE") && out.stdout.contains("/proc/PID/environ"),
            "hush {sub} --help: {}",
            out.stdout
        );
    }
}

#[test]
fn a_mistyped_passphrase_can_be_typed_again() {
    let (dir, key, fp) = locked_key();
    std::fs::remove_file(dir.path().join("locked.pem.pub")).unwrap();
    // A real terminal, so the passphrase is asked for (usability F12: one
    // typo used to end the program).
    let tmux = common::tmux::Tmux::start(&[
        "sh",
        "-c",
        &format!(
            "{} fingerprint {}; echo exit=$?; sleep 30",
            env!("CARGO_BIN_EXE_hush"),
            key.display()
        ),
    ]);
    tmux.wait("the prompt", |s| {
        s.iter().any(|r| r.contains("passphrase for"))
    });
    tmux.type_text("wrong horse");
    tmux.press("Enter");
    tmux.wait("a second chance", |s| {
        s.iter()
            .any(|r| r.contains("wrong passphrase; try again (2 left)"))
    });
    tmux.type_text("correct horse");
    tmux.press("Enter");
    let screen = tmux.wait("the fingerprint", |s| s.iter().any(|r| r.contains("exit=")));
    assert!(
        screen.iter().any(|r| r.trim() == fp) && screen.iter().any(|r| r.contains("exit=0")),
        "{}",
        screen.join("\n")
    );
}
