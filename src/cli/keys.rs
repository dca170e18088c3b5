//! `logbook keys generate NAME --out DIR`: a key pair for the controller or an executor.
//! Parsing and printing only; the work is [`crate::bus::sign`].

use crate::bus::sign;
use crate::process::say;
use std::path::PathBuf;
use std::process::ExitCode;

/// Flags of `logbook keys`.
#[derive(clap::Args, Debug)]
pub struct KeysArgs {
    #[command(subcommand)]
    command: KeysCommand,
}

#[derive(clap::Subcommand, Debug)]
enum KeysCommand {
    /// Make an Ed25519 key pair: DIR/NAME.key (private, mode 0600; give it to that process
    /// with --signing-key) and DIR/NAME.pub (one `NAME HEX` line; add it to the other side's
    /// --trusted-keys file). Never overwrites a key.
    #[command(after_help = "Examples:\n  \
        logbook keys generate controller --out ./keys\n  \
        logbook keys generate executor --out ./keys\n  \
        cat keys/controller.pub keys/executor.pub > keys/trusted.keys\n\n\
        The controller signs actions as `controller`; executors carry out only actions signed by\n\
        that name, and the controller records only outcomes signed by another trusted key.")]
    Generate {
        /// The key's name: `controller` for the controller, any other (e.g. `executor`) for
        /// executors.
        name: String,
        /// The directory to write the two files to (created when missing).
        #[arg(long, value_name = "DIR", default_value = ".")]
        out: PathBuf,
    },
}

/// Runs `logbook keys`.
pub fn run(args: KeysArgs) -> ExitCode {
    match args.command {
        KeysCommand::Generate { name, out } => match sign::write_pair(&out, &name) {
            Ok((key, public)) => {
                println!("private key: {}", key.display());
                println!("public key:  {}", public.display());
                ExitCode::SUCCESS
            }
            Err(e) => {
                say("logbook keys", e);
                ExitCode::FAILURE
            }
        },
    }
}
