//! Shell completions and man pages, generated from a binary's clap definition (`logbook` and
//! `logbook-replay` both use it); the generated files live in `share/` (`make completions`).
//!
//! Writes only what it is asked to write: stdout, or the directory given to `man --dir`.

use clap::{Args, Command};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

pub use clap_complete::Shell;

/// `completions [SHELL] [--dir DIR]`: print a completion script, or write them to a directory.
#[derive(Args, Debug)]
pub struct CompletionsArgs {
    /// The shell: bash, zsh, fish, elvish or powershell.
    ///
    /// bash: `source <(logbook completions bash)`, or save it as
    /// ~/.local/share/bash-completion/completions/logbook. zsh: save it as `_logbook` in a
    /// directory on $fpath. fish: save it as ~/.config/fish/completions/logbook.fish.
    #[arg(value_name = "SHELL", required_unless_present = "dir")]
    pub shell: Option<Shell>,
    /// Write the scripts into this directory (created if missing) under the names each shell
    /// looks for (`logbook.bash`, `_logbook`, `logbook.fish`): SHELL's only, or bash's, zsh's
    /// and fish's.
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
}

/// The shells `completions --dir` writes for when none is named.
pub const SHELLS: [Shell; 3] = [Shell::Bash, Shell::Zsh, Shell::Fish];

/// `man`: write the man pages (one for the command, one for each subcommand).
#[derive(Args, Debug)]
pub struct ManArgs {
    /// The directory to write them into (created if missing); without it, the command's own
    /// page goes to stdout (`logbook man | man -l -`).
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
}

/// The completion script of `cmd` for `shell`.
pub fn completions(mut cmd: Command, shell: Shell) -> Vec<u8> {
    let name = cmd.get_name().to_string();
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut cmd, name, &mut out);
    out
}

/// The file name a completion script for `shell` is installed under, for command `name`.
pub fn completion_file(shell: Shell, name: &str) -> String {
    match shell {
        Shell::Bash => format!("{name}.bash"),
        Shell::Zsh => format!("_{name}"),
        Shell::Fish => format!("{name}.fish"),
        Shell::PowerShell => format!("_{name}.ps1"),
        Shell::Elvish => format!("{name}.elv"),
        _ => format!("{name}.{shell}"),
    }
}

/// The man pages of `cmd`: `(file name, roff text)` for the command and every subcommand
/// (`logbook-audit.1`, `logbook-audit-why.1`, ...), sorted by file name. Help subcommands and
/// hidden ones have none.
pub fn man_pages(cmd: Command) -> std::io::Result<Vec<(String, Vec<u8>)>> {
    let mut cmd = cmd;
    cmd.build();
    let mut pages = Vec::new();
    collect(&cmd, cmd.get_name(), &mut pages)?;
    pages.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(pages)
}

fn collect(cmd: &Command, name: &str, pages: &mut Vec<(String, Vec<u8>)>) -> std::io::Result<()> {
    let page = cmd.clone().name(name.to_string());
    let mut text = Vec::new();
    clap_mangen::Man::new(page).render(&mut text)?;
    pages.push((format!("{name}.1"), text));
    for sub in cmd.get_subcommands() {
        if sub.is_hide_set() || sub.get_name() == "help" {
            continue;
        }
        collect(sub, &format!("{name}-{}", sub.get_name()), pages)?;
    }
    Ok(())
}

/// Runs `completions`: the script on stdout, or the scripts into `--dir`.
pub fn run_completions(cmd: Command, args: &CompletionsArgs) -> ExitCode {
    let name = cmd.get_name().to_string();
    let Some(dir) = &args.dir else {
        let Some(shell) = args.shell else {
            // clap requires SHELL without --dir; say so rather than print nothing.
            eprintln!("{name} completions: name a shell (bash, zsh, fish, elvish, powershell)");
            return ExitCode::from(2);
        };
        return write_stdout(&completions(cmd, shell));
    };
    let shells = match args.shell {
        Some(shell) => vec![shell],
        None => SHELLS.to_vec(),
    };
    let files: Vec<(String, Vec<u8>)> = shells
        .into_iter()
        .map(|shell| {
            (
                completion_file(shell, &name),
                completions(cmd.clone(), shell),
            )
        })
        .collect();
    write_files(&name, "completions", dir, &files)
}

/// Runs `man`: the pages into `--dir`, or the command's own page on stdout.
pub fn run_man(cmd: Command, args: &ManArgs) -> ExitCode {
    let name = cmd.get_name().to_string();
    let pages = match man_pages(cmd) {
        Ok(pages) => pages,
        Err(e) => {
            eprintln!("{name} man: cannot render the man pages: {e}");
            return ExitCode::from(2);
        }
    };
    let Some(dir) = &args.dir else {
        let own = format!("{name}.1");
        let text = pages
            .iter()
            .find(|(file, _)| *file == own)
            .map(|(_, text)| text.as_slice())
            .unwrap_or_default();
        return write_stdout(text);
    };
    write_files(&name, "man", dir, &pages)
}

/// Writes `files` into `dir` (created if missing) and says so on stderr.
fn write_files(name: &str, what: &str, dir: &Path, files: &[(String, Vec<u8>)]) -> ExitCode {
    let written = std::fs::create_dir_all(dir)
        .map_err(|e| format!("cannot create {}: {e}", dir.display()))
        .and_then(|()| {
            files.iter().try_for_each(|(file, text)| {
                let path = dir.join(file);
                std::fs::write(&path, text)
                    .map_err(|e| format!("cannot write {}: {e}", path.display()))
            })
        });
    match written {
        Ok(()) => {
            eprintln!(
                "{name} {what}: wrote {} files to {}",
                files.len(),
                dir.display()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{name} {what}: {e}; check that the directory is writable");
            ExitCode::from(2)
        }
    }
}

fn write_stdout(bytes: &[u8]) -> ExitCode {
    let mut out = std::io::stdout().lock();
    match out.write_all(bytes).and_then(|()| out.flush()) {
        Ok(()) => ExitCode::SUCCESS,
        // A closed pipe (`| head`) is the reader's choice, not an error of ours.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("cannot write to stdout: {e}");
            ExitCode::from(2)
        }
    }
}
