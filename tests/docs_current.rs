//! `share/` holds logbook's current shell completions and man pages (`make completions`
//! regenerates them), and bash completes logbook's subcommands and flags with them.

use logbook_testkit::docs;
use std::path::Path;

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_logbook"))
}

/// logbook's files, not logbook-replay's (both live in `share/`).
fn mine(name: &str) -> bool {
    !name.contains("logbook-replay") && name.contains("logbook")
}

#[test]
fn completions_and_man_pages_in_share_are_current() {
    docs::assert_current(bin(), "logbook", &mine);
}

#[test]
fn bash_completes_subcommands_and_flags() {
    let subcommands = docs::bash_completes("logbook", &["logbook", "au"]);
    assert_eq!(subcommands, ["audit"], "logbook au<TAB>");
    let all = docs::bash_completes("logbook", &["logbook", ""]);
    for sub in [
        "dev",
        "controller",
        "executor",
        "audit",
        "completions",
        "man",
    ] {
        assert!(
            all.iter().any(|s| s == sub),
            "logbook <TAB> lacks {sub}: {all:?}"
        );
    }
    let flags = docs::bash_completes("logbook", &["logbook", "audit", "why", "--"]);
    assert!(
        flags.iter().any(|f| f == "--log"),
        "logbook audit why --<TAB> lacks --log: {flags:?}"
    );
}

#[test]
fn completions_without_a_shell_or_a_directory_is_refused_with_a_hint() {
    let out = std::process::Command::new("timeout")
        .args(["60"])
        .arg(bin())
        .arg("completions")
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("SHELL"), "{err}");
}
