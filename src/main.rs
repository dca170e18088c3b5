//! The `logbook` binary: a thin shell over [`logbook::cli`].

fn main() -> std::process::ExitCode {
    logbook::cli::main()
}
