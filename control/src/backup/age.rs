//! The age v1 file format (<https://age-encryption.org/v1>) for X25519 recipients: a backup
//! encrypted to `[backup] recipient` (`age1...`) is an ordinary age file, so operators decrypt
//! it with the standard tools (`age -d -i key.txt`) as well as with `restore --identity`.
//!
//! ring gives HKDF-SHA256, HMAC-SHA256 and ChaCha20-Poly1305; x25519-dalek the X25519 of a
//! static identity key. The file key is 16 random bytes, wrapped for the recipient; the header
//! is authenticated with an HMAC under the file key; the payload is STREAM-encrypted in
//! 64 KiB chunks, the last one flagged, so a cut or altered file fails to decrypt.

use base64::Engine;
use base64::engine::general_purpose::STANDARD_NO_PAD;
use ring::aead::{Aad, CHACHA20_POLY1305, LessSafeKey, Nonce, UnboundKey};
use ring::rand::{SecureRandom, SystemRandom};
use ring::{hkdf, hmac};
use std::path::Path;
use x25519_dalek::{PublicKey, StaticSecret};

use super::{BackupError, bech32};

/// The first line of every age file.
pub const AGE_MAGIC: &[u8] = b"age-encryption.org/v1\n";
const X25519_INFO: &[u8] = b"age-encryption.org/v1/X25519";
const CHUNK: usize = 64 * 1024;
const TAG: usize = 16;
const RECIPIENT_HRP: &str = "age";
const IDENTITY_HRP: &str = "age-secret-key-";

/// Whether `bytes` is an age file (binary, not armored).
pub fn is_age(bytes: &[u8]) -> bool {
    bytes.starts_with(AGE_MAGIC)
}

/// A public key to encrypt to: `age1...`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Recipient([u8; 32]);

impl Recipient {
    /// Parses `age1...` (Bech32, as `age-keygen` prints it).
    pub fn parse(text: &str) -> Result<Self, BackupError> {
        let bad = |reason: &str| BackupError::InvalidRecipient {
            recipient: text.to_owned(),
            reason: reason.to_owned(),
        };
        let (hrp, data) = bech32::decode(text.trim()).map_err(|e| bad(&e))?;
        if hrp != RECIPIENT_HRP {
            return Err(bad(
                "not an age X25519 recipient (age1...); `age-keygen -y key.txt` prints it",
            ));
        }
        Ok(Self(data.try_into().map_err(|_| bad("not 32 bytes"))?))
    }

    /// `age1...`.
    pub fn encode(&self) -> String {
        bech32::encode(RECIPIENT_HRP, &self.0)
    }
}

/// A private key to decrypt with: `AGE-SECRET-KEY-1...`. `Debug` does not show it.
pub struct Identity(StaticSecret);

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Identity({})", self.recipient().encode())
    }
}

impl Identity {
    /// A new random identity.
    pub fn generate() -> Result<Self, BackupError> {
        Ok(Self(StaticSecret::from(random::<32>()?)))
    }

    /// The identities in an age identity file (`age-keygen` output: `#` comments, one
    /// `AGE-SECRET-KEY-1...` per line); `path` is only for the error.
    pub fn parse_file(text: &str, path: &Path) -> Result<Vec<Self>, BackupError> {
        let bad = |reason: String| BackupError::InvalidKey {
            path: path.to_owned(),
            reason,
        };
        let mut identities = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (hrp, data) =
                bech32::decode(line).map_err(|e| bad(format!("line {}: {e}", n + 1)))?;
            let key: [u8; 32] = match (hrp.as_str(), data.try_into()) {
                (IDENTITY_HRP, Ok(key)) => key,
                _ => {
                    return Err(bad(format!(
                        "line {} is not an age X25519 identity (AGE-SECRET-KEY-1...)",
                        n + 1
                    )));
                }
            };
            identities.push(Self(StaticSecret::from(key)));
        }
        if identities.is_empty() {
            return Err(bad("it holds no AGE-SECRET-KEY-1... line".into()));
        }
        Ok(identities)
    }

    /// `AGE-SECRET-KEY-1...`. Secret.
    pub fn encode(&self) -> String {
        bech32::encode(IDENTITY_HRP, self.0.as_bytes()).to_ascii_uppercase()
    }

    /// Its public key.
    pub fn recipient(&self) -> Recipient {
        Recipient(PublicKey::from(&self.0).to_bytes())
    }

    /// The file key from an X25519 stanza, if the stanza is for this identity.
    fn unwrap(&self, share: &[u8; 32], body: &[u8]) -> Option<[u8; 16]> {
        let shared = self.0.diffie_hellman(&PublicKey::from(*share));
        if !shared.was_contributory() {
            return None;
        }
        let me = PublicKey::from(&self.0).to_bytes();
        let key = wrap_key(shared.as_bytes(), share, &me);
        let mut buf = body.to_vec();
        let plain = open_chunk(&key, [0; 12], &mut buf)?;
        plain.try_into().ok()
    }
}

/// `plaintext` encrypted to `recipient`, as an age file.
pub fn encrypt(plaintext: &[u8], recipient: &Recipient) -> Result<Vec<u8>, BackupError> {
    let file_key = random::<16>()?;
    let ephemeral = StaticSecret::from(random::<32>()?);
    let share = PublicKey::from(&ephemeral).to_bytes();
    let shared = ephemeral.diffie_hellman(&PublicKey::from(recipient.0));
    if !shared.was_contributory() {
        return Err(BackupError::InvalidRecipient {
            recipient: recipient.encode(),
            reason: "a low-order point".into(),
        });
    }
    let mut body = file_key.to_vec();
    seal_chunk(
        &wrap_key(shared.as_bytes(), &share, &recipient.0),
        [0; 12],
        &mut body,
    );
    let mut out = Vec::with_capacity(plaintext.len() + plaintext.len() / CHUNK * TAG + 256);
    out.extend_from_slice(AGE_MAGIC);
    out.extend_from_slice(format!("-> X25519 {}\n", STANDARD_NO_PAD.encode(share)).as_bytes());
    out.extend_from_slice(STANDARD_NO_PAD.encode(&body).as_bytes());
    out.extend_from_slice(b"\n---");
    let mac = hmac::sign(&header_key(&file_key), &out);
    out.extend_from_slice(format!(" {}\n", STANDARD_NO_PAD.encode(mac.as_ref())).as_bytes());
    let nonce = random::<16>()?;
    out.extend_from_slice(&nonce);
    let key = payload_key(&file_key, &nonce);
    let mut chunks = plaintext.chunks(CHUNK).peekable();
    let mut counter = 0u128;
    if plaintext.is_empty() {
        let mut last = Vec::new();
        seal_chunk(&key, chunk_nonce(0, true), &mut last);
        out.extend_from_slice(&last);
    }
    while let Some(chunk) = chunks.next() {
        let mut buf = chunk.to_vec();
        seal_chunk(
            &key,
            chunk_nonce(counter, chunks.peek().is_none()),
            &mut buf,
        );
        out.extend_from_slice(&buf);
        counter += 1;
    }
    Ok(out)
}

/// The plaintext of the age file `file`, with whichever of `identities` it was encrypted to.
pub fn decrypt(file: &[u8], identities: &[Identity]) -> Result<Vec<u8>, BackupError> {
    let bad = |reason: &str| BackupError::Decrypt(reason.to_owned());
    if !is_age(file) {
        return Err(bad(
            "not an age file (the armored -a form is not read: `age -d` it first)",
        ));
    }
    let header_end = find(file, b"\n---").ok_or_else(|| bad("its header is cut or damaged"))? + 4;
    let mac_line_end = file[header_end..]
        .iter()
        .position(|&b| b == b'\n')
        .map(|p| header_end + p)
        .ok_or_else(|| bad("its header is cut or damaged"))?;
    let mac = std::str::from_utf8(&file[header_end..mac_line_end])
        .ok()
        .and_then(|t| t.strip_prefix(' '))
        .and_then(|t| STANDARD_NO_PAD.decode(t).ok())
        .ok_or_else(|| bad("its header MAC is damaged"))?;
    let header = std::str::from_utf8(&file[AGE_MAGIC.len()..header_end - 3])
        .map_err(|_| bad("its header is not text"))?;
    let stanzas = stanzas(header).ok_or_else(|| bad("its header is damaged"))?;
    let mut file_key = None;
    for (args, body) in &stanzas {
        if args.first().map(String::as_str) != Some("X25519") || args.len() != 2 {
            continue;
        }
        let Some(share) = STANDARD_NO_PAD
            .decode(&args[1])
            .ok()
            .and_then(|s| <[u8; 32]>::try_from(s).ok())
        else {
            return Err(bad("an X25519 stanza is damaged"));
        };
        if let Some(key) = identities.iter().find_map(|i| i.unwrap(&share, body)) {
            file_key = Some(key);
            break;
        }
    }
    let Some(file_key) = file_key else {
        return Err(bad(
            "none of the given keys opens it: it was encrypted to another recipient ([backup] \
             recipient when it was made); give that recipient's identity file",
        ));
    };
    hmac::verify(&header_key(&file_key), &file[..header_end], &mac)
        .map_err(|_| bad("its header was altered (the MAC does not verify)"))?;
    let rest = &file[mac_line_end + 1..];
    if rest.len() < 16 {
        return Err(bad("it is cut: the payload nonce is missing"));
    }
    let key = payload_key(&file_key, &rest[..16]);
    let mut sealed = rest[16..].chunks(CHUNK + TAG).peekable();
    let mut out = Vec::with_capacity(rest.len());
    let mut counter = 0u128;
    if sealed.peek().is_none() {
        return Err(bad("it is cut: the payload is missing"));
    }
    while let Some(chunk) = sealed.next() {
        let last = sealed.peek().is_none();
        let mut buf = chunk.to_vec();
        let plain = open_chunk(&key, chunk_nonce(counter, last), &mut buf)
            .ok_or_else(|| bad("its payload was altered or cut (a chunk does not authenticate)"))?;
        if last && plain.is_empty() && counter > 0 {
            return Err(bad("its payload ends with an empty chunk"));
        }
        out.extend_from_slice(plain);
        counter += 1;
    }
    Ok(out)
}

/// The stanzas of a header (after the magic line, up to "---"): each one's arguments (the
/// type first) and its decoded body.
fn stanzas(header: &str) -> Option<Vec<(Vec<String>, Vec<u8>)>> {
    let mut out = Vec::new();
    let mut lines = header.split_terminator('\n');
    while let Some(line) = lines.next() {
        let args: Vec<String> = line
            .strip_prefix("-> ")?
            .split(' ')
            .map(str::to_owned)
            .collect();
        let mut body = String::new();
        loop {
            let line = lines.next()?;
            body.push_str(line);
            if line.len() < 64 {
                break;
            }
        }
        out.push((args, STANDARD_NO_PAD.decode(body).ok()?));
    }
    Some(out)
}

fn wrap_key(shared: &[u8; 32], share: &[u8; 32], recipient: &[u8; 32]) -> [u8; 32] {
    let mut salt = [0u8; 64];
    salt[..32].copy_from_slice(share);
    salt[32..].copy_from_slice(recipient);
    hkdf32(&salt, shared, X25519_INFO)
}

fn header_key(file_key: &[u8; 16]) -> hmac::Key {
    hmac::Key::new(hmac::HMAC_SHA256, &hkdf32(&[], file_key, b"header"))
}

fn payload_key(file_key: &[u8; 16], nonce: &[u8]) -> [u8; 32] {
    hkdf32(nonce, file_key, b"payload")
}

fn hkdf32(salt: &[u8], ikm: &[u8], info: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    let info = [info];
    // SHA-256's output length: expand and fill cannot fail for 32 bytes.
    if let Ok(okm) = hkdf::Salt::new(hkdf::HKDF_SHA256, salt)
        .extract(ikm)
        .expand(&info, hkdf::HKDF_SHA256)
    {
        let _ = okm.fill(&mut out);
    }
    out
}

/// STREAM's nonce: an 11-byte big-endian counter and the last-chunk flag.
fn chunk_nonce(counter: u128, last: bool) -> [u8; 12] {
    let mut nonce = [0u8; 12];
    nonce[..11].copy_from_slice(&counter.to_be_bytes()[5..]);
    nonce[11] = u8::from(last);
    nonce
}

fn aead(key: &[u8; 32]) -> LessSafeKey {
    // A 32-byte key is always valid for ChaCha20-Poly1305.
    #[allow(clippy::expect_used)]
    LessSafeKey::new(UnboundKey::new(&CHACHA20_POLY1305, key).expect("32-byte key"))
}

fn seal_chunk(key: &[u8; 32], nonce: [u8; 12], buf: &mut Vec<u8>) {
    // Fails only for inputs beyond ChaCha20's 256 GiB limit; chunks are 64 KiB.
    let _ =
        aead(key).seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::empty(), buf);
}

fn open_chunk<'b>(key: &[u8; 32], nonce: [u8; 12], buf: &'b mut [u8]) -> Option<&'b mut [u8]> {
    aead(key)
        .open_in_place(Nonce::assume_unique_for_key(nonce), Aad::empty(), buf)
        .ok()
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn random<const N: usize>() -> Result<[u8; N], BackupError> {
    let mut out = [0u8; N];
    SystemRandom::new()
        .fill(&mut out)
        .map_err(|_| BackupError::Sign("the system CSPRNG failed".into()))?;
    Ok(out)
}
