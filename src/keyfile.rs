//! Key files on disk: the one place hush reads and writes identity keys.
//!
//! Every command that takes `--key` loads it through [`load_identity`],
//! which refuses a private key readable by group or others (as ssh does)
//! and asks for a passphrase only when the key has one.

use std::fs::{self, OpenOptions};
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};
use hush_crypto::identity::PemKind;
use hush_crypto::{Identity, KeyFileError, PublicIdentity};
use zeroize::Zeroizing;

/// Environment variable that supplies a key passphrase to scripts (and
/// unlocks encrypted keys wherever one is loaded).
pub const PASSPHRASE_ENV: &str = "HUSH_PASSPHRASE";

/// Key files are a few KiB; anything much larger is not a key, and is not
/// read into memory.
const MAX_KEY_FILE_BYTES: u64 = 64 * 1024;

/// Loads a private identity from `path`, refusing a file that others can
/// read, and unlocking it with `HUSH_PASSPHRASE` or a terminal prompt if
/// it is encrypted.
///
/// # Errors
/// Every failure names the file and says what to do.
pub fn load_identity(path: &Path) -> Result<Identity> {
    check_private_permissions(path)?;
    let text = read_key_text(path)?;
    let kind = PemKind::detect(&text).map_err(|e| key_error(path, &e))?;
    let passphrase = match kind {
        PemKind::EncryptedPrivate => Some(passphrase_for(path)?),
        PemKind::Private => None,
        PemKind::Public => {
            bail!(
                "{} is a public key; --key needs the private key file (the one without .pub)",
                path.display()
            )
        }
    };
    Identity::from_pem(&text, passphrase.as_ref().map(|p| p.as_bytes()))
        .map_err(|e| key_error(path, &e))
}

/// Loads the public identity of a private or public key file (for `hush
/// fingerprint`). A private key's permissions are not checked here: only
/// its public half is used.
///
/// # Errors
/// As [`load_identity`].
pub fn load_public(path: &Path) -> Result<PublicIdentity> {
    let text = read_key_text(path)?;
    match PemKind::detect(&text).map_err(|e| key_error(path, &e))? {
        PemKind::Public => PublicIdentity::from_pem(&text).map_err(|e| key_error(path, &e)),
        PemKind::Private => Identity::from_pem(&text, None)
            .map(|id| id.public().clone())
            .map_err(|e| key_error(path, &e)),
        PemKind::EncryptedPrivate => {
            let pass = passphrase_for(path)?;
            Identity::from_pem(&text, Some(pass.as_bytes()))
                .map(|id| id.public().clone())
                .map_err(|e| key_error(path, &e))
        }
    }
}

fn key_error(path: &Path, e: &KeyFileError) -> anyhow::Error {
    let hint = match e {
        KeyFileError::NotAKey => "; create a key with `hush keygen -o FILE`",
        KeyFileError::PassphraseRequired => {
            "; set HUSH_PASSPHRASE or run from a terminal to be asked"
        }
        KeyFileError::WrongPassphrase => "; check HUSH_PASSPHRASE or retype it",
        _ => "",
    };
    anyhow!("{}: {e}{hint}", path.display())
}

fn read_key_text(path: &Path) -> Result<String> {
    let meta = fs::metadata(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            anyhow!(
                "key file {} does not exist; create one with `hush keygen -o {}`",
                path.display(),
                path.display()
            )
        } else {
            anyhow!("cannot read key file {}: {e}", path.display())
        }
    })?;
    if !meta.is_file() {
        bail!(
            "{} is not a file; --key takes a key file made by `hush keygen`",
            path.display()
        );
    }
    if meta.len() > MAX_KEY_FILE_BYTES {
        bail!(
            "{} is {} bytes, far too large for a key file; is it the right file?",
            path.display(),
            meta.len()
        );
    }
    let bytes =
        fs::read(path).with_context(|| format!("cannot read key file {}", path.display()))?;
    String::from_utf8(bytes).map_err(|_| {
        anyhow!(
            "{}: not a key hush can read (it is not PEM text)",
            path.display()
        )
    })
}

#[cfg(unix)]
fn check_private_permissions(path: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let Ok(meta) = fs::metadata(path) else {
        // read_key_text reports a missing or unreadable file properly.
        return Ok(());
    };
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        bail!(
            "private key {} is readable by others (mode {mode:04o}); a private key must be private. Fix it with: chmod 600 {}",
            path.display(),
            path.display()
        );
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_private_permissions(_path: &Path) -> Result<()> {
    Ok(())
}

/// The passphrase for an encrypted key: `HUSH_PASSPHRASE`, or a prompt on
/// the terminal.
fn passphrase_for(path: &Path) -> Result<Zeroizing<String>> {
    if let Ok(p) = std::env::var(PASSPHRASE_ENV) {
        return Ok(Zeroizing::new(p));
    }
    if !std::io::stdin().is_terminal() {
        bail!(
            "{} is protected by a passphrase; set HUSH_PASSPHRASE or run from a terminal to be asked",
            path.display()
        );
    }
    let p = rpassword::prompt_password(format!("passphrase for {}: ", path.display()))
        .context("cannot read the passphrase from the terminal")?;
    Ok(Zeroizing::new(p))
}

/// A new passphrase for `hush keygen --passphrase`: `HUSH_PASSPHRASE`, or
/// asked twice on the terminal.
///
/// # Errors
/// If there is no terminal and no `HUSH_PASSPHRASE`, the two entries
/// differ, or the passphrase is empty.
pub fn new_passphrase() -> Result<Zeroizing<String>> {
    let pass = if let Ok(p) = std::env::var(PASSPHRASE_ENV) {
        Zeroizing::new(p)
    } else {
        if !std::io::stdin().is_terminal() {
            bail!("--passphrase needs a terminal to ask on, or the passphrase in HUSH_PASSPHRASE");
        }
        let first = Zeroizing::new(
            rpassword::prompt_password("new passphrase: ")
                .context("cannot read the passphrase from the terminal")?,
        );
        let second = Zeroizing::new(
            rpassword::prompt_password("repeat passphrase: ")
                .context("cannot read the passphrase from the terminal")?,
        );
        if *first != *second {
            bail!("the two passphrases differ; nothing was written, run the command again");
        }
        first
    };
    if pass.is_empty() {
        bail!(
            "the passphrase is empty; choose one, or leave out --passphrase for an unencrypted key"
        );
    }
    Ok(pass)
}

/// The public key file that goes with a private key file: `PATH.pub`.
#[must_use]
pub fn public_path(private: &Path) -> PathBuf {
    let mut s = private.as_os_str().to_owned();
    s.push(".pub");
    PathBuf::from(s)
}

/// Writes `contents` to `path` with `mode`, refusing to replace an
/// existing file unless `force`.
///
/// # Errors
/// If the file exists (without `force`) or cannot be written.
pub fn write_new_file(path: &Path, contents: &[u8], mode: u32, force: bool) -> Result<()> {
    let mut opts = OpenOptions::new();
    opts.write(true);
    if force {
        // Remove first so that the new mode applies even to a file that
        // existed with a looser one.
        match fs::remove_file(path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(anyhow!("cannot replace {}: {e}", path.display())),
        }
    }
    opts.create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(mode);
    }
    #[cfg(not(unix))]
    let _ = mode;
    let mut file = opts.open(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            anyhow!(
                "{} already exists; choose another path, or add --force to replace it (the old key is lost)",
                path.display()
            )
        } else {
            anyhow!("cannot create {}: {e}", path.display())
        }
    })?;
    file.write_all(contents)
        .and_then(|()| file.sync_all())
        .with_context(|| format!("cannot write {}", path.display()))
}

/// Writes a new identity key pair: PATH (0600) with comment lines, and
/// PATH.pub.
///
/// # Errors
/// If either file exists (without `force`) or cannot be written, or the
/// key cannot be encoded.
pub fn write_identity(
    path: &Path,
    identity: &Identity,
    passphrase: Option<&[u8]>,
    force: bool,
) -> Result<()> {
    let fp = identity.fingerprint();
    let date = utc_date_today();
    let private_pem = identity.to_pem(passphrase)?;
    let mut private_text = Zeroizing::new(format!(
        "# hush identity key (private: never share this file)\n# created: {date}\n# public key: {fp}\n"
    ));
    private_text.push_str(&private_pem);
    write_new_file(path, private_text.as_bytes(), 0o600, force)?;
    let public_text = format!(
        "# hush identity public key\n# created: {date}\n# fingerprint: {fp}\n{}",
        identity.public().to_pem()?
    );
    write_new_file(&public_path(path), public_text.as_bytes(), 0o644, force)
}

/// Today's date in UTC as `YYYY-MM-DD`, for the comment line of new key
/// files (no calendar crate needed for this one line).
#[must_use]
pub fn utc_date_today() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let days = i64::try_from(secs / 86_400).unwrap_or(0);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}
