//! `logbook-replay`: offline verification and replay of a logbook log.
//! An empty shell for now; the replay commands arrive with the replay issue.

fn main() {
    eprintln!("logbook-replay: not implemented yet (see the replay issue)");
    std::process::exit(2);
}
