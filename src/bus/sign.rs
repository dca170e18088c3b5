//! Signatures on the bus: the controller signs every action it publishes and each executor
//! signs every outcome, so a message nobody trusted wrote is refused before anything is done.
//!
//! Ed25519 (ring). A signature travels in the `Logbook-Signature` header as `NAME:HEX`, over the
//! exact payload bytes, so verifying needs no re-encoding. A private key is a file holding the
//! PKCS#8 document in hex; the trusted keys are a file of `NAME HEX` lines (public keys). Only
//! the key named [`CONTROLLER`] may sign actions; outcomes are accepted from any other trusted
//! key. `logbook keys generate NAME --out DIR` makes a pair. Never logs a private key.

use ring::rand::SystemRandom;
use ring::signature::{ED25519, Ed25519KeyPair, KeyPair, UnparsedPublicKey};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The header carrying `NAME:HEX` (the signer's key name and the signature).
pub const SIGNATURE_HEADER: &str = "Logbook-Signature";

/// The name of the key that signs actions.
pub const CONTROLLER: &str = "controller";

/// The longest key name accepted (names are printed in outcomes and logs).
const MAX_NAME: usize = 63;

/// Why a key could not be made or read, or a signature did not verify.
#[derive(Debug, thiserror::Error)]
pub enum SignError {
    /// A key file could not be read or written.
    #[error("{what} {path}: {source}")]
    File {
        /// What the file was for.
        what: &'static str,
        /// Its path.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A key file does not hold what it should.
    #[error("{path}: {problem} (make keys with `logbook keys generate NAME --out DIR`)")]
    Bad {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        problem: String,
    },
    /// A message's signature is missing, malformed, from an unknown key, or wrong.
    #[error("{0}")]
    Refused(String),
}

/// A private key and the name it signs as.
pub struct SigningKey {
    name: String,
    pair: Ed25519KeyPair,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("name", &self.name)
            .field("public", &self.public_hex())
            .finish_non_exhaustive()
    }
}

fn check_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= MAX_NAME
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "`{name}` is not a key name: 1 to {MAX_NAME} letters, digits, `-`, `_` or `.`"
        ))
    }
}

impl SigningKey {
    /// Makes a new key pair named `name`: returns the private key file's text (PKCS#8 in
    /// hex) and the public key's line for a trusted-keys file (`NAME HEX`).
    pub fn generate(name: &str) -> Result<(String, String), String> {
        check_name(name)?;
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new())
            .map_err(|_| "the system's random number generator failed".to_string())?;
        let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref())
            .map_err(|e| format!("a generated key did not load: {e}"))?;
        Ok((
            format!("{}\n", hex::encode(pkcs8.as_ref())),
            format!("{name} {}\n", hex::encode(pair.public_key().as_ref())),
        ))
    }

    /// Reads a private key file and signs as `name`.
    pub fn load(path: &Path, name: &str) -> Result<SigningKey, SignError> {
        let bad = |problem: String| SignError::Bad {
            path: path.to_path_buf(),
            problem,
        };
        check_name(name).map_err(bad)?;
        let text = std::fs::read_to_string(path).map_err(|source| SignError::File {
            what: "cannot read the signing key",
            path: path.to_path_buf(),
            source,
        })?;
        let der = hex::decode(text.trim())
            .map_err(|_| bad("not a private key in hex (PKCS#8)".to_string()))?;
        let pair = Ed25519KeyPair::from_pkcs8_maybe_unchecked(&der)
            .map_err(|e| bad(format!("not an Ed25519 private key: {e}")))?;
        Ok(SigningKey {
            name: name.to_string(),
            pair,
        })
    }

    /// The name it signs as.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The public key in hex.
    pub fn public_hex(&self) -> String {
        hex::encode(self.pair.public_key().as_ref())
    }

    /// The header value signing `payload`: `NAME:HEX`.
    pub fn sign(&self, payload: &[u8]) -> String {
        format!(
            "{}:{}",
            self.name,
            hex::encode(self.pair.sign(payload).as_ref())
        )
    }
}

/// The public keys a process trusts, by name.
#[derive(Clone, Debug, Default)]
pub struct TrustedKeys {
    keys: BTreeMap<String, Vec<u8>>,
}

impl TrustedKeys {
    /// Reads a trusted-keys file: one `NAME HEX` line per key; blank lines and `#` comments
    /// are skipped.
    pub fn load(path: &Path) -> Result<TrustedKeys, SignError> {
        let text = std::fs::read_to_string(path).map_err(|source| SignError::File {
            what: "cannot read the trusted keys",
            path: path.to_path_buf(),
            source,
        })?;
        TrustedKeys::parse(&text).map_err(|problem| SignError::Bad {
            path: path.to_path_buf(),
            problem,
        })
    }

    /// Parses the text of a trusted-keys file.
    pub fn parse(text: &str) -> Result<TrustedKeys, String> {
        let mut keys = BTreeMap::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let mut parts = line.split_whitespace();
            let (Some(name), Some(key), None) = (parts.next(), parts.next(), parts.next()) else {
                return Err(format!("line {}: expected `NAME HEX`", i + 1));
            };
            check_name(name).map_err(|e| format!("line {}: {e}", i + 1))?;
            let key = hex::decode(key)
                .ok()
                .filter(|k| k.len() == 32)
                .ok_or_else(|| {
                    format!("line {}: not a 32-byte Ed25519 public key in hex", i + 1)
                })?;
            if keys.insert(name.to_string(), key).is_some() {
                return Err(format!("line {}: a second key named {name}", i + 1));
            }
        }
        if keys.is_empty() {
            return Err("no keys".to_string());
        }
        Ok(TrustedKeys { keys })
    }

    /// Whether a key of that name is trusted.
    pub fn knows(&self, name: &str) -> bool {
        self.keys.contains_key(name)
    }

    /// Checks `header` (`NAME:HEX`, as [`SigningKey::sign`] makes it) over `payload` and
    /// returns the signer's name. `signer_ok` says which names may sign this kind of message.
    pub fn verify(
        &self,
        header: Option<&str>,
        payload: &[u8],
        signer_ok: impl Fn(&str) -> bool,
    ) -> Result<String, SignError> {
        let refuse = |why: String| Err(SignError::Refused(why));
        let Some(header) = header else {
            return refuse(format!("not signed (no {SIGNATURE_HEADER} header)"));
        };
        let Some((name, sig)) = header.split_once(':') else {
            return refuse(format!("the {SIGNATURE_HEADER} header is not NAME:HEX"));
        };
        if check_name(name).is_err() {
            return refuse(format!("the {SIGNATURE_HEADER} header names no valid key"));
        }
        if !signer_ok(name) {
            return refuse(format!("signed by key {name}, which may not sign this"));
        }
        let Some(key) = self.keys.get(name) else {
            return refuse(format!("signed by key {name}, which is not trusted here"));
        };
        let Ok(sig) = hex::decode(sig) else {
            return refuse(format!(
                "the {SIGNATURE_HEADER} header's signature is not hex"
            ));
        };
        match UnparsedPublicKey::new(&ED25519, key).verify(payload, &sig) {
            Ok(()) => Ok(name.to_string()),
            Err(_) => refuse(format!(
                "the signature of key {name} does not match the message (altered, or signed \
                 by someone else)"
            )),
        }
    }
}

/// The keys of a process: its own, to sign what it publishes, and the ones it trusts.
#[derive(Clone, Debug)]
pub struct Keys {
    /// Signs what this process publishes.
    pub signing: std::sync::Arc<SigningKey>,
    /// Verifies what it receives.
    pub trusted: std::sync::Arc<TrustedKeys>,
}

impl Keys {
    /// Keys from a private key file (signing as `name`) and a trusted-keys file.
    pub fn load(signing_key: &Path, name: &str, trusted_keys: &Path) -> Result<Keys, SignError> {
        Ok(Keys {
            signing: std::sync::Arc::new(SigningKey::load(signing_key, name)?),
            trusted: std::sync::Arc::new(TrustedKeys::load(trusted_keys)?),
        })
    }

    /// Makes a fresh set in `dir` for a controller and executors on one machine (what
    /// `logbook dev` and the tests use): `controller.key`, `executor.key` and
    /// `trusted.keys` (both public keys). Returns the controller's and the executors' keys.
    pub fn generate_local(dir: &Path) -> Result<(Keys, Keys), String> {
        let (c_key, c_pub) = write_pair(dir, CONTROLLER)?;
        let (e_key, e_pub) = write_pair(dir, EXECUTOR)?;
        let trusted = dir.join(TRUSTED_FILE);
        let mut text = String::new();
        for p in [&c_pub, &e_pub] {
            text.push_str(
                &std::fs::read_to_string(p).map_err(|e| format!("{}: {e}", p.display()))?,
            );
        }
        std::fs::write(&trusted, text).map_err(|e| format!("{}: {e}", trusted.display()))?;
        let controller = Keys::load(&c_key, CONTROLLER, &trusted).map_err(|e| e.to_string())?;
        let executor = Keys::load(&e_key, EXECUTOR, &trusted).map_err(|e| e.to_string())?;
        Ok((controller, executor))
    }
}

/// The name executors sign as by default.
pub const EXECUTOR: &str = "executor";

/// The trusted-keys file [`Keys::generate_local`] writes.
pub const TRUSTED_FILE: &str = "trusted.keys";

/// Flags naming a process's keys (the controller and executors both take them).
#[derive(clap::Args, Clone, Debug)]
pub struct KeyArgs {
    /// This process's private key: the controller signs actions with it, an executor its
    /// outcomes (`logbook keys generate NAME --out DIR` makes one).
    #[arg(long, env = "LOGBOOK_SIGNING_KEY", value_name = "FILE")]
    pub signing_key: PathBuf,
    /// The name the key signs as (default: `controller` for the controller, `executor` for an
    /// executor); the other side's trusted keys must list it under that name.
    #[arg(long, env = "LOGBOOK_KEY_NAME", value_name = "NAME")]
    pub key_name: Option<String>,
    /// Public keys trusted, one `NAME HEX` line each: executors act only on actions signed by
    /// the key named `controller`; the controller records outcomes signed by any other.
    #[arg(long, env = "LOGBOOK_TRUSTED_KEYS", value_name = "FILE")]
    pub trusted_keys: PathBuf,
}

impl KeyArgs {
    /// Loads the keys, signing as `--key-name` or `default_name`.
    pub fn load(&self, default_name: &str) -> Result<Keys, SignError> {
        let name = self.key_name.as_deref().unwrap_or(default_name);
        Keys::load(&self.signing_key, name, &self.trusted_keys)
    }
}

/// Makes `NAME.key` (private, mode 0600) and `NAME.pub` (its trusted-keys line) in `dir`;
/// refuses to overwrite a key. Returns the two paths.
pub fn write_pair(dir: &Path, name: &str) -> Result<(PathBuf, PathBuf), String> {
    let (private, public) = SigningKey::generate(name)?;
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let key_path = dir.join(format!("{name}.key"));
    let pub_path = dir.join(format!("{name}.pub"));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(&key_path).map_err(|e| {
        format!(
            "cannot create {}: {e} (a key is never overwritten; remove it first to replace it)",
            key_path.display()
        )
    })?;
    std::io::Write::write_all(&mut file, private.as_bytes())
        .map_err(|e| format!("cannot write {}: {e}", key_path.display()))?;
    std::fs::write(&pub_path, public)
        .map_err(|e| format!("cannot write {}: {e}", pub_path.display()))?;
    Ok((key_path, pub_path))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair(dir: &Path, name: &str) -> (SigningKey, String) {
        let (k, p) = write_pair(dir, name).unwrap_or_else(|e| panic!("{e}"));
        let key = SigningKey::load(&k, name).unwrap_or_else(|e| panic!("{e}"));
        let line = std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{e}"));
        (key, line)
    }

    #[test]
    fn only_the_trusted_signer_of_the_right_role_verifies() {
        let dir = std::env::temp_dir().join(format!("logbook-sign-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let (controller, c_line) = pair(&dir, CONTROLLER);
        let (executor, e_line) = pair(&dir, "executor");
        let trusted = TrustedKeys::parse(&format!("# keys\n{c_line}\n{e_line}"))
            .unwrap_or_else(|e| panic!("{e}"));
        let payload = br#"{"action":1}"#;
        let is_controller = |n: &str| n == CONTROLLER;
        let sig = controller.sign(payload);
        assert_eq!(
            trusted
                .verify(Some(&sig), payload, is_controller)
                .unwrap_or_else(|e| panic!("{e}")),
            CONTROLLER
        );
        // Altered payload, missing header, wrong role, unknown key, garbage.
        let refused = |h: Option<&str>, p: &[u8]| {
            trusted
                .verify(h, p, is_controller)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default()
        };
        assert!(refused(Some(&sig), br#"{"action":2}"#).contains("does not match"));
        assert!(refused(None, payload).contains("not signed"));
        assert!(refused(Some(&executor.sign(payload)), payload).contains("may not sign"));
        let stranger = TrustedKeys::parse(&e_line).unwrap_or_else(|e| panic!("{e}"));
        assert!(
            stranger
                .verify(Some(&sig), payload, is_controller)
                .is_err_and(|e| e.to_string().contains("not trusted"))
        );
        assert!(refused(Some("controller:zz"), payload).contains("not hex"));
        assert!(refused(Some("nocolon"), payload).contains("NAME:HEX"));
        // A key is never overwritten; a bad key file says what to do.
        assert!(write_pair(&dir, CONTROLLER).is_err());
        let bad = dir.join("bad.key");
        std::fs::write(&bad, "not hex").unwrap_or_else(|e| panic!("{e}"));
        assert!(
            SigningKey::load(&bad, "x")
                .is_err_and(|e| e.to_string().contains("logbook keys generate"))
        );
        assert!(TrustedKeys::parse("controller abcd").is_err());
        assert!(TrustedKeys::parse("").is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
