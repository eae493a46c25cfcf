//! Browser sessions that live in the browser, sealed: the session cookie holds the session (its CSRF
//! token, the pasted token, its expiry) encrypted and authenticated with AES-256-GCM under the
//! portal's session key, so any replica that has the key reads it and none keeps state. A cookie
//! that was changed, made up, sealed under another key or past its expiry opens as nothing.
//!
//! **Keys**: [`SessionKeys`] holds one or more keys; the first seals, every one opens, so a key can
//! be rotated without logging everyone out (add the new key first, roll the portal, drop the old
//! one after the session lifetime). Each key is the SHA-256 of a secret line of at least 32
//! characters (the chart generates one into a Secret). Without keys the portal makes a random one
//! at start: sessions then last as long as that process and work on that replica only.
//!
//! One-time messages after a redirect (the "flash") travel the same way in a cookie of their own.

use base64::Engine;
use rand::Rng;
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};

/// The fewest characters a secret line may have.
pub const MIN_SECRET_CHARS: usize = 32;

/// The portal's session keys: the first seals, all open.
#[derive(Clone)]
pub struct SessionKeys {
    keys: Vec<[u8; 32]>,
}

impl std::fmt::Debug for SessionKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SessionKeys({} key(s), redacted)", self.keys.len())
    }
}

impl SessionKeys {
    /// One random key (a single process's sessions).
    pub fn random() -> Self {
        Self {
            keys: vec![rand::rng().random()],
        }
    }

    /// Keys from secret lines (blank lines and `#` comments skipped), the first sealing. Each line
    /// must have at least [`MIN_SECRET_CHARS`] characters; the error names the line.
    pub fn from_secrets(text: &str) -> Result<Self, String> {
        let mut keys = Vec::new();
        for (number, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            if line.chars().count() < MIN_SECRET_CHARS {
                return Err(format!(
                    "line {}: a session secret needs at least {MIN_SECRET_CHARS} characters (e.g. `head -c 32 /dev/urandom | base64`)",
                    number + 1
                ));
            }
            let digest = ring::digest::digest(&ring::digest::SHA256, line.as_bytes());
            let mut key = [0u8; 32];
            key.copy_from_slice(digest.as_ref());
            keys.push(key);
        }
        if keys.is_empty() {
            return Err("no session secret: put one secret per line, the current one first".to_owned());
        }
        Ok(Self { keys })
    }

    fn aead(key: &[u8; 32]) -> Option<LessSafeKey> {
        UnboundKey::new(&AES_256_GCM, key).ok().map(LessSafeKey::new)
    }

    /// `plaintext` encrypted and authenticated under the first key, bound to `purpose` (so a flash
    /// cookie cannot pass for a session): base64url of nonce and ciphertext.
    pub fn seal(&self, purpose: &str, plaintext: &[u8]) -> Option<String> {
        let key = Self::aead(self.keys.first()?)?;
        let nonce_bytes: [u8; NONCE_LEN] = rand::rng().random();
        let mut sealed = plaintext.to_vec();
        key.seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce_bytes),
            Aad::from(purpose.as_bytes()),
            &mut sealed,
        )
        .ok()?;
        let mut out = nonce_bytes.to_vec();
        out.extend_from_slice(&sealed);
        Some(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(out))
    }

    /// What [`SessionKeys::seal`] sealed for `purpose` under any of the keys; `None` for anything else.
    pub fn open(&self, purpose: &str, text: &str) -> Option<Vec<u8>> {
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(text)
            .ok()?;
        if bytes.len() < NONCE_LEN {
            return None;
        }
        let (nonce, sealed) = bytes.split_at(NONCE_LEN);
        self.keys.iter().find_map(|key| {
            let key = Self::aead(key)?;
            let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
            let mut buffer = sealed.to_vec();
            let plain = key
                .open_in_place(nonce, Aad::from(purpose.as_bytes()), &mut buffer)
                .ok()?;
            Some(plain.to_vec())
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const OLD: &str = "old-secret-old-secret-old-secret-0001";
    const NEW: &str = "new-secret-new-secret-new-secret-0002";

    #[test]
    fn sealed_text_opens_only_under_its_keys_and_purpose() {
        let keys = SessionKeys::from_secrets(OLD).unwrap();
        let sealed = keys.seal("session", b"hello").unwrap();
        assert_eq!(keys.open("session", &sealed).unwrap(), b"hello");
        assert_eq!(keys.open("flash", &sealed), None, "bound to its purpose");
        let other = SessionKeys::from_secrets(NEW).unwrap();
        assert_eq!(other.open("session", &sealed), None, "another key");
        let mut tampered = sealed.clone().into_bytes();
        let last = tampered.len() - 2;
        tampered[last] = if tampered[last] == b'A' { b'B' } else { b'A' };
        assert_eq!(keys.open("session", &String::from_utf8(tampered).unwrap()), None);
        assert_eq!(keys.open("session", "not-base64!"), None);
    }

    #[test]
    fn a_rotated_key_still_opens_what_the_old_one_sealed() {
        let before = SessionKeys::from_secrets(OLD).unwrap();
        let sealed = before.seal("session", b"kept").unwrap();
        let during = SessionKeys::from_secrets(&format!("{NEW}\n{OLD}\n")).unwrap();
        assert_eq!(during.open("session", &sealed).unwrap(), b"kept");
        let resealed = during.seal("session", b"new").unwrap();
        assert_eq!(before.open("session", &resealed), None, "the new key seals");
        let after = SessionKeys::from_secrets(NEW).unwrap();
        assert_eq!(after.open("session", &sealed), None, "the old key is gone");
    }

    #[test]
    fn short_or_missing_secrets_are_refused_with_the_line() {
        let err = SessionKeys::from_secrets(&format!("# keys\n{OLD}\nshort\n")).unwrap_err();
        assert!(err.starts_with("line 3:"), "{err}");
        assert!(SessionKeys::from_secrets("\n# nothing\n").is_err());
    }
}
