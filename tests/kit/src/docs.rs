//! Checks that the completions and man pages in `share/` are what a binary generates now, and
//! that bash loads the completion script and completes with it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The repository's `share/` directory.
pub fn share_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../share")
}

/// Runs `bin args...` under coreutils' `timeout` (60 s); panics with its stderr unless it
/// succeeds.
fn run(bin: &Path, args: &[&str]) {
    let out = Command::new("timeout")
        .arg("60")
        .arg(bin)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", bin.display()));
    assert!(
        out.status.success(),
        "{} {args:?}: {}\n{}",
        bin.display(),
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The files of `dir` whose names `mine` accepts, by name.
fn files(dir: &Path, mine: &dyn Fn(&str) -> bool) -> BTreeMap<String, Vec<u8>> {
    let entries =
        std::fs::read_dir(dir).unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()));
    entries
        .map(|e| e.unwrap_or_else(|e| panic!("{}: {e}", dir.display())))
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            mine(&name).then(|| {
                let text = std::fs::read(e.path())
                    .unwrap_or_else(|err| panic!("cannot read {}: {err}", e.path().display()));
                (name, text)
            })
        })
        .collect()
}

/// Asserts that `share/completions` and `share/man/man1` hold exactly what `bin` (the command
/// `name`) generates: the same files, byte for byte, none missing and none left over.
/// `mine` tells this command's files from the other command's in the shared directories.
pub fn assert_current(bin: &Path, name: &str, mine: &dyn Fn(&str) -> bool) {
    let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let completions = tmp.path().join("completions");
    let man = tmp.path().join("man1");
    run(
        bin,
        &["completions", "--dir", &completions.to_string_lossy()],
    );
    run(bin, &["man", "--dir", &man.to_string_lossy()]);
    let share = share_dir();
    for (fresh, kept) in [
        (completions, share.join("completions")),
        (man, share.join("man/man1")),
    ] {
        let fresh = files(&fresh, mine);
        let kept = files(&kept, mine);
        assert!(!fresh.is_empty(), "{name} generated nothing");
        let names = |m: &BTreeMap<String, Vec<u8>>| m.keys().cloned().collect::<Vec<_>>();
        assert_eq!(
            names(&kept),
            names(&fresh),
            "share/ does not hold {name}'s current completions and man pages: run `make completions`"
        );
        for (file, text) in &fresh {
            assert!(
                kept.get(file) == Some(text),
                "share/…/{file} is out of date for {name}: run `make completions`"
            );
        }
    }
}

/// What bash completes for `words` (the command line so far, the last word being completed)
/// with `share/completions/<name>.bash` loaded.
pub fn bash_completes(name: &str, words: &[&str]) -> Vec<String> {
    let script = share_dir().join(format!("completions/{name}.bash"));
    let line = words.join(" ");
    let quoted: Vec<String> = words.iter().map(|w| format!("'{w}'")).collect();
    let program = format!(
        "source '{}' || exit 3\n\
         spec=$(complete -p {name}) || exit 4\n\
         fn=$(sed -E 's/.*-F ([^ ]+).*/\\1/' <<<\"$spec\")\n\
         COMP_WORDS=({})\n\
         COMP_CWORD={}\n\
         COMP_LINE='{line}'\n\
         COMP_POINT=${{#COMP_LINE}}\n\
         \"$fn\" {name} '{}' '{}'\n\
         printf '%s\\n' \"${{COMPREPLY[@]}}\"",
        script.display(),
        quoted.join(" "),
        words.len() - 1,
        words.last().copied().unwrap_or_default(),
        words
            .len()
            .checked_sub(2)
            .and_then(|i| words.get(i))
            .copied()
            .unwrap_or_default(),
    );
    let out = Command::new("timeout")
        .args(["60", "bash", "--norc", "--noprofile", "-c", &program])
        .output()
        .unwrap_or_else(|e| panic!("cannot run bash: {e}"));
    assert!(
        out.status.success(),
        "bash could not load or run {}: {}\n{}",
        script.display(),
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .filter(|l| !l.is_empty())
        .collect()
}
