//! `share/` holds logbook-replay's current shell completions and man pages (`make
//! completions` regenerates them), and bash completes its subcommands with them.

use logbook_testkit::docs;
use std::path::Path;

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_logbook-replay"))
}

#[test]
fn completions_and_man_pages_in_share_are_current() {
    docs::assert_current(bin(), "logbook-replay", &|name| {
        name.contains("logbook-replay")
    });
}

#[test]
fn bash_completes_subcommands() {
    let got = docs::bash_completes("logbook-replay", &["logbook-replay", "ver"]);
    assert_eq!(got, ["verify"], "logbook-replay ver<TAB>");
    let all = docs::bash_completes("logbook-replay", &["logbook-replay", ""]);
    for sub in ["verify", "state", "timeline", "what-if", "export", "man"] {
        assert!(
            all.iter().any(|s| s == sub),
            "logbook-replay <TAB> lacks {sub}: {all:?}"
        );
    }
}
