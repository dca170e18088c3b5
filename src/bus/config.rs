//! Connecting to NATS: URL, credentials file, token or TLS CA, from flags or the environment.

use super::BusError;
use std::path::PathBuf;
use std::time::Duration;

/// How to reach NATS; every flag has an environment-variable fallback.
#[derive(clap::Args, Clone, Debug)]
pub struct NatsArgs {
    /// NATS server URL(s), comma-separated.
    #[arg(
        long = "nats-url",
        env = "LOGBOOK_NATS_URL",
        default_value = "nats://127.0.0.1:4222"
    )]
    pub url: String,
    /// A NATS credentials file (JWT and NKey seed), as `nsc` writes it.
    #[arg(long = "nats-creds", env = "LOGBOOK_NATS_CREDS", value_name = "FILE")]
    pub creds: Option<PathBuf>,
    /// A NATS authentication token.
    #[arg(
        long = "nats-token",
        env = "LOGBOOK_NATS_TOKEN",
        hide_env_values = true
    )]
    pub token: Option<String>,
    /// A NATS user to authenticate as, with `--nats-password` (per-role users, as `deploy/`
    /// configures them).
    #[arg(long = "nats-user", env = "LOGBOOK_NATS_USER", requires = "password")]
    pub user: Option<String>,
    /// The password of `--nats-user` (better given as the environment variable).
    #[arg(
        long = "nats-password",
        env = "LOGBOOK_NATS_PASSWORD",
        hide_env_values = true,
        requires = "user"
    )]
    pub password: Option<String>,
    /// A PEM file of CA certificates to trust for TLS (turns TLS on).
    #[arg(long = "nats-tls-ca", env = "LOGBOOK_NATS_TLS_CA", value_name = "FILE")]
    pub tls_ca: Option<PathBuf>,
}

impl NatsArgs {
    /// Settings for a plain connection to `url` (tests, `logbook dev`).
    pub fn plain(url: &str) -> NatsArgs {
        NatsArgs {
            url: url.to_string(),
            creds: None,
            token: None,
            user: None,
            password: None,
            tls_ca: None,
        }
    }
}

impl NatsArgs {
    /// Checks that the credentials and CA files given can be read, so a typo fails at start
    /// rather than in a reconnect loop.
    pub fn check_files(&self) -> Result<(), BusError> {
        for (what, path) in [
            ("NATS credentials", &self.creds),
            ("NATS TLS CA", &self.tls_ca),
        ] {
            if let Some(p) = path
                && let Err(source) = std::fs::File::open(p)
            {
                return Err(BusError::File {
                    what,
                    path: p.display().to_string(),
                    source,
                });
            }
        }
        Ok(())
    }
}

/// Connects to NATS, naming the connection `name` (it shows in the server's monitoring).
/// Reconnects forever once connected; the first connection is tried once (processes that must
/// wait for NATS use [`super::connect_with_retry`]).
pub async fn connect(args: &NatsArgs, name: &str) -> Result<async_nats::Client, BusError> {
    let mut opts = async_nats::ConnectOptions::new()
        .name(name)
        .connection_timeout(Duration::from_secs(5))
        .max_reconnects(None)
        .reconnect_delay_callback(|attempts| {
            Duration::from_millis((50 * 2u64.saturating_pow(attempts.min(6) as u32)).min(2_000))
        });
    if let Some(path) = &args.creds {
        opts = opts
            .credentials_file(path)
            .await
            .map_err(|source| BusError::File {
                what: "NATS credentials",
                path: path.display().to_string(),
                source,
            })?;
    }
    if let Some(token) = &args.token {
        opts = opts.token(token.clone());
    }
    if let (Some(user), Some(password)) = (&args.user, &args.password) {
        opts = opts.user_and_password(user.clone(), password.clone());
    }
    if let Some(ca) = &args.tls_ca {
        if let Err(source) = std::fs::metadata(ca) {
            return Err(BusError::File {
                what: "NATS TLS CA",
                path: ca.display().to_string(),
                source,
            });
        }
        opts = opts.add_root_certificates(ca.clone()).require_tls(true);
    }
    let urls: Vec<&str> = args
        .url
        .split(',')
        .map(str::trim)
        .filter(|u| !u.is_empty())
        .collect();
    opts.connect(urls)
        .await
        .map_err(|source| BusError::Connect {
            url: args.url.clone(),
            source,
        })
}
