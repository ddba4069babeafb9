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
/// unlocks encrypted keys wherever one is loaded). Like any environment
/// variable it can be read in `/proc/PID/environ` by processes of the same
/// user (and root) and is inherited by child processes; SECURITY.md says
/// so, and the `--help` texts that mention it do too.
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
    // What the file is comes first (not a file, a public key, not a key
    // at all), and only then whether a private key is private: the advice
    // to chmod a .pub file or a folder would be wrong (usability B8).
    let text = read_key_text(path)?;
    let kind = PemKind::detect(&text).map_err(|e| key_error(path, &e))?;
    if kind == PemKind::Public {
        bail!(
            "{} is a public key; --key needs the private key file (the one without .pub)",
            path.display()
        )
    }
    check_private_permissions(path)?;
    match kind {
        PemKind::EncryptedPrivate => {
            with_passphrase(path, |pass| Identity::from_pem(&text, Some(pass)))
        }
        PemKind::Private | PemKind::Public => {
            Identity::from_pem(&text, None).map_err(|e| key_error(path, &e))
        }
    }
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
            // The public half beside it needs no passphrase (usability
            // F12); it is read only if it is a public key.
            let public = public_path(path);
            if let Ok(pub_text) = read_key_text(&public)
                && let Ok(PemKind::Public) = PemKind::detect(&pub_text)
                && let Ok(id) = PublicIdentity::from_pem(&pub_text)
            {
                return Ok(id);
            }
            with_passphrase(path, |pass| {
                Identity::from_pem(&text, Some(pass)).map(|id| id.public().clone())
            })
        }
    }
}

/// Opens an encrypted key with `HUSH_PASSPHRASE`, or with a passphrase
/// typed at the terminal: three tries, as `sudo` and `ssh` give (usability
/// F12: one typo used to end the program).
fn with_passphrase<T>(
    path: &Path,
    open: impl Fn(&[u8]) -> std::result::Result<T, KeyFileError>,
) -> Result<T> {
    const TRIES: u32 = 3;
    if let Ok(p) = std::env::var(PASSPHRASE_ENV) {
        let p = Zeroizing::new(p);
        return open(p.as_bytes()).map_err(|e| match e {
            KeyFileError::WrongPassphrase => anyhow!(
                "{}: {e}; HUSH_PASSPHRASE holds another passphrase: correct it, or unset it to be asked",
                path.display()
            ),
            other => key_error(path, &other),
        });
    }
    if !std::io::stdin().is_terminal() {
        bail!(
            "{} is protected by a passphrase; set HUSH_PASSPHRASE or run from a terminal to be asked",
            path.display()
        );
    }
    for attempt in 1..=TRIES {
        let p = Zeroizing::new(
            rpassword::prompt_password(format!("passphrase for {}: ", path.display()))
                .context("cannot read the passphrase from the terminal")?,
        );
        match open(p.as_bytes()) {
            Ok(v) => return Ok(v),
            Err(KeyFileError::WrongPassphrase) if attempt < TRIES => {
                eprintln!("wrong passphrase; try again ({} left)", TRIES - attempt);
            }
            Err(KeyFileError::WrongPassphrase) => bail!(
                "{}: {TRIES} wrong passphrases; is this the right key file?",
                path.display()
            ),
            Err(other) => return Err(key_error(path, &other)),
        }
    }
    bail!("{}: no passphrase was accepted", path.display())
}

fn key_error(path: &Path, e: &KeyFileError) -> anyhow::Error {
    let hint = match e {
        KeyFileError::NotAKey => "; create a key with `hush keygen -o FILE`",
        KeyFileError::PassphraseRequired => {
            "; set HUSH_PASSPHRASE or run from a terminal to be asked"
        }
        _ => "",
    };
    anyhow!("{}: {e}{hint}", path.display())
}

/// The file's text, zeroized when dropped: it may be an unencrypted
/// private key (audit L7).
fn read_key_text(path: &Path) -> Result<Zeroizing<String>> {
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
    let bytes = Zeroizing::new(
        fs::read(path).with_context(|| format!("cannot read key file {}", path.display()))?,
    );
    let text = std::str::from_utf8(&bytes).map_err(|_| {
        anyhow!(
            "{}: not a key hush can read (it is not PEM text)",
            path.display()
        )
    })?;
    Ok(Zeroizing::new(text.to_owned()))
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

/// scrypt cost for newly encrypted keys: N = 2^17, r = 8, p = 1 (128 MiB,
/// a few tenths of a second once per load), eight times the `pkcs5`
/// default of 2^14 that keys written before were given (audit L7), so an
/// offline guess at a stolen file's passphrase costs as much. Older keys
/// still open: the parameters are read from the file.
pub const SCRYPT_LOG_N: u8 = 17;
/// scrypt block size `r` for new keys.
pub const SCRYPT_R: u32 = 8;
/// scrypt parallelism `p` for new keys.
pub const SCRYPT_P: u32 = 1;

/// Encrypts an unencrypted PKCS#8 PEM private key under `passphrase`:
/// PBES2 with scrypt at [`SCRYPT_LOG_N`] and AES-256-CBC, fresh salt and
/// IV.
///
/// # Errors
/// If the PEM is not a private key or the encryption fails.
fn encrypt_pem(plain_pem: &str, passphrase: &[u8]) -> Result<Zeroizing<String>> {
    use pkcs8::pkcs5::{pbes2, scrypt};
    let (_, der) = pkcs8::SecretDocument::from_pem(plain_pem)
        .map_err(|e| anyhow!("cannot encode the private key: {e}"))?;
    let info = pkcs8::PrivateKeyInfoRef::try_from(der.as_bytes())
        .map_err(|e| anyhow!("cannot encode the private key: {e}"))?;
    let random = hush_crypto::Secret32::random();
    let (salt, iv) = random.expose_secret().split_at(16);
    let mut aes_iv = [0u8; 16];
    aes_iv.copy_from_slice(iv);
    let params = scrypt::Params::new(SCRYPT_LOG_N, SCRYPT_R, SCRYPT_P)
        .map_err(|e| anyhow!("scrypt parameters: {e}"))?;
    let pbes2 = pbes2::Parameters::generate_scrypt_aes256cbc(params, salt, aes_iv)
        .map_err(|e| anyhow!("scrypt parameters: {e}"))?;
    let encrypted = info
        .encrypt_with_params(pbes2, passphrase)
        .map_err(|e| anyhow!("cannot encrypt the private key: {e}"))?;
    encrypted
        .to_pem("ENCRYPTED PRIVATE KEY", pkcs8::LineEnding::LF)
        .map_err(|e| anyhow!("cannot encode the private key: {e}"))
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
    let private_pem = match passphrase {
        None => identity.to_pem(None)?,
        Some(pass) => encrypt_pem(&identity.to_pem(None)?, pass)?,
    };
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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// keys.example/alice.pem, a 2048-bit key (no RSA is generated here).
    fn alice() -> Identity {
        let text = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("keys.example/alice.pem"),
        )
        .unwrap();
        Identity::from_pem(&text, None).unwrap()
    }

    /// The scrypt log2(N) a PEM-encrypted key was written with.
    fn scrypt_log_n(pem: &str) -> u32 {
        let (_, doc) = pkcs8::Document::from_pem(pem_block(pem)).unwrap();
        let info = pkcs8::EncryptedPrivateKeyInfoRef::try_from(doc.as_bytes()).unwrap();
        let pkcs8::pkcs5::EncryptionScheme::Pbes2(params) = info.encryption_algorithm else {
            panic!("not PBES2");
        };
        let pkcs8::pkcs5::pbes2::Kdf::Scrypt(scrypt) = params.kdf else {
            panic!("not scrypt");
        };
        scrypt.cost_parameter.trailing_zeros()
    }

    fn pem_block(text: &str) -> &str {
        &text[text.find("-----BEGIN").unwrap()..]
    }

    #[test]
    fn new_passphrase_keys_use_the_stronger_scrypt_cost_and_open_again() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("alice.pem");
        let alice = alice();
        write_identity(&path, &alice, Some(b"correct horse"), false).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(scrypt_log_n(&text), u32::from(SCRYPT_LOG_N));
        let opened = Identity::from_pem(&text, Some(b"correct horse")).unwrap();
        assert_eq!(opened.fingerprint(), alice.fingerprint());
        assert!(Identity::from_pem(&text, Some(b"wrong")).is_err());
    }

    #[test]
    fn a_key_written_with_the_old_scrypt_cost_still_opens() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("alice.pem");
        let alice = alice();
        // What `hush keygen --passphrase` wrote before: the pkcs5 defaults.
        let old = alice.to_pem(Some(b"correct horse")).unwrap();
        assert_eq!(scrypt_log_n(&old), 14);
        write_new_file(&path, old.as_bytes(), 0o600, false).unwrap();
        let text = read_key_text(&path).unwrap();
        assert_eq!(PemKind::detect(&text).unwrap(), PemKind::EncryptedPrivate);
        let opened = Identity::from_pem(&text, Some(b"correct horse")).unwrap();
        assert_eq!(opened.fingerprint(), alice.fingerprint());
    }
}
