//! CHAP authentication (RFC 1994, RFC 7143 section 12.1.3, RFC 7143 errata
//! algorithms as numbered by Linux: MD5=5, SHA1=6, SHA-256=7, SHA3-256=8).
//!
//! The target side is [`ChapTarget`]: it picks an algorithm, issues a random
//! challenge, verifies the initiator's response and, for mutual CHAP, answers
//! the initiator's challenge. The initiator side only needs
//! [`ChapAlgorithm::hash`] and [`random_challenge`].

use std::fmt;

use md5::Md5;
use sha1::Sha1;
use sha2::Sha256;
use sha3::Sha3_256;
use subtle::ConstantTimeEq;
use thiserror::Error;

use crate::text::{decode_binary, parse_number_in, split_list, TextWriter};

/// Longest challenge accepted from an initiator (RFC 7143 section 12.1.3).
pub const MAX_CHALLENGE_LEN: usize = 1024;

/// A shared secret. Its `Debug` output never shows the content.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(Vec<u8>);

impl Secret {
    /// Wraps secret bytes.
    pub fn new(bytes: impl Into<Vec<u8>>) -> Self {
        Self(bytes.into())
    }

    /// The secret bytes. Never log them.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }

    /// Constant-time equality.
    pub fn ct_eq(&self, other: &Secret) -> bool {
        bool::from(self.0.ct_eq(&other.0))
    }

    /// True when the secret is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl From<&str> for Secret {
    fn from(s: &str) -> Self {
        Self(s.as_bytes().to_vec())
    }
}

impl From<String> for Secret {
    fn from(s: String) -> Self {
        Self(s.into_bytes())
    }
}

/// A CHAP account the initiator may authenticate as (selected by `CHAP_N`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChapAccount {
    /// User name the initiator sends in `CHAP_N`.
    pub user: String,
    /// Secret the initiator proves knowledge of.
    pub secret: Secret,
    /// For mutual CHAP: the name and secret the target answers with.
    pub mutual: Option<(String, Secret)>,
}

/// A CHAP algorithm identifier (`CHAP_A` value). Open: unknown values are kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ChapAlgorithm(pub u8);

impl ChapAlgorithm {
    /// MD5 (RFC 1994).
    pub const MD5: Self = Self(5);
    /// SHA-1.
    pub const SHA1: Self = Self(6);
    /// SHA-256.
    pub const SHA256: Self = Self(7);
    /// SHA3-256.
    pub const SHA3_256: Self = Self(8);
    /// Every algorithm this crate implements, strongest first.
    pub const ALL: [Self; 4] = [Self::SHA3_256, Self::SHA256, Self::SHA1, Self::MD5];

    /// Digest length in bytes, or `None` for an unsupported algorithm.
    pub fn digest_len(self) -> Option<usize> {
        match self {
            Self::MD5 => Some(16),
            Self::SHA1 => Some(20),
            Self::SHA256 | Self::SHA3_256 => Some(32),
            _ => None,
        }
    }

    /// Relative strength used to pick among offered algorithms (0 = unsupported).
    fn strength(self) -> u8 {
        match self {
            Self::MD5 => 1,
            Self::SHA1 => 2,
            Self::SHA256 => 3,
            Self::SHA3_256 => 4,
            _ => 0,
        }
    }

    /// `H(id || secret || challenge)`, or `None` for an unsupported algorithm.
    pub fn hash(self, id: u8, secret: &[u8], challenge: &[u8]) -> Option<Vec<u8>> {
        fn run<D: sha2::Digest>(id: u8, secret: &[u8], challenge: &[u8]) -> Vec<u8> {
            let mut h = D::new();
            h.update([id]);
            h.update(secret);
            h.update(challenge);
            h.finalize().to_vec()
        }
        match self {
            Self::MD5 => Some(run::<Md5>(id, secret, challenge)),
            Self::SHA1 => Some(run::<Sha1>(id, secret, challenge)),
            Self::SHA256 => Some(run::<Sha256>(id, secret, challenge)),
            Self::SHA3_256 => Some(run::<Sha3_256>(id, secret, challenge)),
            _ => None,
        }
    }
}

/// Target CHAP configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChapConfig {
    /// Algorithms the target accepts (default: all four).
    pub allowed: Vec<ChapAlgorithm>,
    /// Shortest challenge accepted from an initiator for mutual CHAP (default 16).
    pub min_initiator_challenge_len: usize,
}

impl Default for ChapConfig {
    fn default() -> Self {
        Self {
            allowed: ChapAlgorithm::ALL.to_vec(),
            min_initiator_challenge_len: 16,
        }
    }
}

/// Why CHAP authentication failed. All map to login status 0x0201.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ChapError {
    /// No offered algorithm is allowed.
    #[error("no acceptable CHAP algorithm offered")]
    NoCommonAlgorithm,
    /// The system random generator failed.
    #[error("random generator failure")]
    Random,
    /// A required key is missing.
    #[error("missing {0}")]
    MissingKey(&'static str),
    /// A key has a malformed value.
    #[error("malformed {0}")]
    Malformed(&'static str),
    /// `CHAP_N` names no configured account.
    #[error("unknown CHAP user")]
    UnknownUser,
    /// `CHAP_R` does not match.
    #[error("wrong CHAP response")]
    BadResponse,
    /// The initiator's challenge has an unacceptable length.
    #[error("initiator challenge length {0} out of range")]
    ChallengeLength(usize),
    /// The initiator sent our own challenge back.
    #[error("initiator reflected the target challenge")]
    ReflectedChallenge,
    /// The initiator asked for mutual CHAP but the account has no mutual secret.
    #[error("mutual CHAP requested but not configured")]
    MutualNotConfigured,
    /// The mutual secret equals the initiator secret (RFC 7143 section 12.1.3).
    #[error("mutual secret equals initiator secret")]
    MutualSecretReused,
}

/// Fills a fresh random challenge of `len` bytes.
pub fn random_challenge(len: usize) -> Result<Vec<u8>, ChapError> {
    let mut c = vec![0u8; len];
    getrandom::getrandom(&mut c).map_err(|_| ChapError::Random)?;
    Ok(c)
}

fn random_u8() -> Result<u8, ChapError> {
    let mut b = [0u8; 1];
    getrandom::getrandom(&mut b).map_err(|_| ChapError::Random)?;
    Ok(b[0])
}

/// Picks the strongest algorithm of the `CHAP_A` list that is also allowed.
pub fn select_algorithm(offered: &str, allowed: &[ChapAlgorithm]) -> Option<ChapAlgorithm> {
    split_list(offered)
        .filter_map(|v| parse_number_in(v, 0, 255).ok())
        .map(|n| ChapAlgorithm(n as u8))
        .filter(|a| a.strength() > 0 && allowed.contains(a))
        .max_by_key(|a| a.strength())
}

/// The outcome of a successful verification.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChapVerified {
    /// The authenticated user (`CHAP_N`).
    pub user: String,
    /// For mutual CHAP: the `CHAP_N` and `CHAP_R` the target must send.
    pub mutual: Option<(String, Vec<u8>)>,
}

/// The target side of one CHAP exchange.
#[derive(Clone, Debug)]
pub struct ChapTarget {
    algorithm: ChapAlgorithm,
    id: u8,
    challenge: Vec<u8>,
}

/// Keys the initiator sends with its response.
#[derive(Clone, Copy, Debug, Default)]
pub struct ChapResponseKeys<'a> {
    /// `CHAP_N`.
    pub name: Option<&'a str>,
    /// `CHAP_R`.
    pub response: Option<&'a str>,
    /// `CHAP_I` (mutual).
    pub id: Option<&'a str>,
    /// `CHAP_C` (mutual).
    pub challenge: Option<&'a str>,
}

impl ChapTarget {
    /// Starts an exchange with a random identifier and challenge.
    ///
    /// The challenge is as long as the algorithm's digest (16 bytes for MD5).
    pub fn new(algorithm: ChapAlgorithm) -> Result<Self, ChapError> {
        let len = algorithm.digest_len().ok_or(ChapError::NoCommonAlgorithm)?;
        Ok(Self::with_challenge(
            algorithm,
            random_u8()?,
            random_challenge(len)?,
        ))
    }

    /// Starts an exchange with a given identifier and challenge (tests, fuzzing).
    pub fn with_challenge(algorithm: ChapAlgorithm, id: u8, challenge: Vec<u8>) -> Self {
        Self {
            algorithm,
            id,
            challenge,
        }
    }

    /// The negotiated algorithm.
    pub fn algorithm(&self) -> ChapAlgorithm {
        self.algorithm
    }

    /// Writes `CHAP_A`, `CHAP_I` and `CHAP_C` (hex).
    pub fn write_challenge(&self, out: &mut TextWriter) {
        out.push_num("CHAP_A", u64::from(self.algorithm.0))
            .push_num("CHAP_I", u64::from(self.id))
            .push_hex("CHAP_C", &self.challenge);
    }

    /// Verifies the initiator's answer against `accounts`.
    pub fn verify(
        &self,
        accounts: &[ChapAccount],
        keys: ChapResponseKeys<'_>,
        cfg: &ChapConfig,
    ) -> Result<ChapVerified, ChapError> {
        let name = keys.name.ok_or(ChapError::MissingKey("CHAP_N"))?;
        let response = keys.response.ok_or(ChapError::MissingKey("CHAP_R"))?;
        let response = decode_binary(response).map_err(|_| ChapError::Malformed("CHAP_R"))?;
        let account = accounts
            .iter()
            .find(|a| a.user == name)
            .ok_or(ChapError::UnknownUser)?;
        let expected = self
            .algorithm
            .hash(self.id, account.secret.expose(), &self.challenge)
            .ok_or(ChapError::NoCommonAlgorithm)?;
        // Length is public; the content comparison is constant-time.
        if expected.len() != response.len() || !bool::from(expected.ct_eq(&response)) {
            return Err(ChapError::BadResponse);
        }
        let mutual = match (keys.id, keys.challenge) {
            (None, None) => None,
            (Some(_), None) => return Err(ChapError::MissingKey("CHAP_C")),
            (None, Some(_)) => return Err(ChapError::MissingKey("CHAP_I")),
            (Some(id), Some(challenge)) => {
                let id =
                    parse_number_in(id, 0, 255).map_err(|_| ChapError::Malformed("CHAP_I"))? as u8;
                let challenge =
                    decode_binary(challenge).map_err(|_| ChapError::Malformed("CHAP_C"))?;
                if challenge.len() < cfg.min_initiator_challenge_len
                    || challenge.len() > MAX_CHALLENGE_LEN
                {
                    return Err(ChapError::ChallengeLength(challenge.len()));
                }
                if bool::from(challenge.ct_eq(&self.challenge)) {
                    return Err(ChapError::ReflectedChallenge);
                }
                let (mutual_user, mutual_secret) = account
                    .mutual
                    .as_ref()
                    .ok_or(ChapError::MutualNotConfigured)?;
                if mutual_secret.ct_eq(&account.secret) {
                    return Err(ChapError::MutualSecretReused);
                }
                let answer = self
                    .algorithm
                    .hash(id, mutual_secret.expose(), &challenge)
                    .ok_or(ChapError::NoCommonAlgorithm)?;
                Some((mutual_user.clone(), answer))
            }
        };
        Ok(ChapVerified {
            user: account.user.clone(),
            mutual,
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::text::encode_hex;

    fn from_hex(s: &str) -> Vec<u8> {
        decode_binary(&format!("0x{s}")).unwrap()
    }

    #[test]
    fn md5_and_sha256_chap_vectors() {
        // Values computed independently with coreutils, e.g.
        // `printf '\x2apassword\x00\x01...\x0f' | md5sum`.
        let challenge: Vec<u8> = (0u8..16).collect();
        let got = ChapAlgorithm::MD5
            .hash(0x2a, b"password", &challenge)
            .unwrap();
        assert_eq!(got, from_hex("3e0949a5572c2d338c182b7f6377471d"));
        let got = ChapAlgorithm::SHA256
            .hash(0x2a, b"password", &challenge)
            .unwrap();
        assert_eq!(
            got,
            from_hex("c3557ba525a229ffb5cfed51a8282ff3ecbd809ac8076a97b152fc53adbb07aa")
        );
        let got = ChapAlgorithm::MD5.hash(1, b"secret", &[0u8; 16]).unwrap();
        assert_eq!(got, from_hex("7570c653cdf4755ccffcaa80f29268d1"));
    }

    #[test]
    fn sha256_known_vector() {
        // SHA-256("abc") (FIPS 180-2) via id='a', secret "b", challenge "c".
        let got = ChapAlgorithm::SHA256.hash(b'a', b"b", b"c").unwrap();
        assert_eq!(
            encode_hex(&got),
            "0xba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        // MD5("abc") (RFC 1321) the same way.
        let got = ChapAlgorithm::MD5.hash(b'a', b"b", b"c").unwrap();
        assert_eq!(encode_hex(&got), "0x900150983cd24fb0d6963f7d28e17f72");
        // SHA-1("abc") and SHA3-256("abc").
        let got = ChapAlgorithm::SHA1.hash(b'a', b"b", b"c").unwrap();
        assert_eq!(
            encode_hex(&got),
            "0xa9993e364706816aba3e25717850c26c9cd0d89d"
        );
        let got = ChapAlgorithm::SHA3_256.hash(b'a', b"b", b"c").unwrap();
        assert_eq!(
            encode_hex(&got),
            "0x3a985da74fe225b2045c172d6bd390bd855f086e3e9d525b46bfe24511431532"
        );
        assert_eq!(ChapAlgorithm(9).hash(0, b"", b""), None);
    }

    #[test]
    fn selects_strongest_allowed() {
        let all = ChapAlgorithm::ALL;
        assert_eq!(select_algorithm("5", &all), Some(ChapAlgorithm::MD5));
        assert_eq!(select_algorithm("7,6,5", &all), Some(ChapAlgorithm::SHA256));
        assert_eq!(
            select_algorithm("5,8,x,300", &all),
            Some(ChapAlgorithm::SHA3_256)
        );
        assert_eq!(
            select_algorithm("7,6,5", &[ChapAlgorithm::MD5]),
            Some(ChapAlgorithm::MD5)
        );
        assert_eq!(select_algorithm("5", &[ChapAlgorithm::SHA256]), None);
        assert_eq!(select_algorithm("1,2,3", &all), None);
        assert_eq!(select_algorithm("", &all), None);
    }

    fn account(mutual: Option<(&str, &str)>) -> ChapAccount {
        ChapAccount {
            user: "alice".into(),
            secret: "initiator-secret".into(),
            mutual: mutual.map(|(u, s)| (u.to_owned(), Secret::from(s))),
        }
    }

    fn target() -> ChapTarget {
        ChapTarget::with_challenge(ChapAlgorithm::MD5, 7, vec![0x11; 16])
    }

    fn response(secret: &[u8]) -> String {
        encode_hex(&ChapAlgorithm::MD5.hash(7, secret, &[0x11; 16]).unwrap())
    }

    #[test]
    fn verify_one_way() {
        let t = target();
        let r = response(b"initiator-secret");
        let keys = ChapResponseKeys {
            name: Some("alice"),
            response: Some(&r),
            ..Default::default()
        };
        let v = t
            .verify(&[account(None)], keys, &ChapConfig::default())
            .unwrap();
        assert_eq!(
            v,
            ChapVerified {
                user: "alice".into(),
                mutual: None
            }
        );

        let bad = response(b"wrong");
        let keys = ChapResponseKeys {
            name: Some("alice"),
            response: Some(&bad),
            ..Default::default()
        };
        assert_eq!(
            t.verify(&[account(None)], keys, &ChapConfig::default()),
            Err(ChapError::BadResponse)
        );
        let keys = ChapResponseKeys {
            name: Some("bob"),
            response: Some(&r),
            ..Default::default()
        };
        assert_eq!(
            t.verify(&[account(None)], keys, &ChapConfig::default()),
            Err(ChapError::UnknownUser)
        );
        let keys = ChapResponseKeys {
            name: Some("alice"),
            response: Some("0x00"),
            ..Default::default()
        };
        assert_eq!(
            t.verify(&[account(None)], keys, &ChapConfig::default()),
            Err(ChapError::BadResponse)
        );
        let keys = ChapResponseKeys {
            name: Some("alice"),
            response: Some("zz"),
            ..Default::default()
        };
        assert_eq!(
            t.verify(&[account(None)], keys, &ChapConfig::default()),
            Err(ChapError::Malformed("CHAP_R"))
        );
        let keys = ChapResponseKeys {
            name: Some("alice"),
            ..Default::default()
        };
        assert_eq!(
            t.verify(&[account(None)], keys, &ChapConfig::default()),
            Err(ChapError::MissingKey("CHAP_R"))
        );
    }

    #[test]
    fn verify_mutual_and_its_failures() {
        let t = target();
        let r = response(b"initiator-secret");
        let ic = encode_hex(&[0x22; 32]);
        let keys = ChapResponseKeys {
            name: Some("alice"),
            response: Some(&r),
            id: Some("9"),
            challenge: Some(&ic),
        };
        let cfg = ChapConfig::default();
        let v = t
            .verify(&[account(Some(("tgt", "target-secret")))], keys, &cfg)
            .unwrap();
        let expected = ChapAlgorithm::MD5
            .hash(9, b"target-secret", &[0x22; 32])
            .unwrap();
        assert_eq!(v.mutual, Some(("tgt".into(), expected)));

        assert_eq!(
            t.verify(&[account(None)], keys, &cfg),
            Err(ChapError::MutualNotConfigured)
        );
        let same = account(Some(("tgt", "initiator-secret")));
        assert_eq!(
            t.verify(&[same], keys, &cfg),
            Err(ChapError::MutualSecretReused)
        );

        let reflected = encode_hex(&[0x11; 16]);
        let keys2 = ChapResponseKeys {
            challenge: Some(&reflected),
            ..keys
        };
        assert_eq!(
            t.verify(&[account(Some(("tgt", "target-secret")))], keys2, &cfg),
            Err(ChapError::ReflectedChallenge)
        );
        let short = encode_hex(&[0x33; 8]);
        let keys3 = ChapResponseKeys {
            challenge: Some(&short),
            ..keys
        };
        assert_eq!(
            t.verify(&[account(Some(("tgt", "target-secret")))], keys3, &cfg),
            Err(ChapError::ChallengeLength(8))
        );
        let keys4 = ChapResponseKeys {
            id: Some("256"),
            ..keys
        };
        assert_eq!(
            t.verify(&[account(Some(("tgt", "target-secret")))], keys4, &cfg),
            Err(ChapError::Malformed("CHAP_I"))
        );
        let keys5 = ChapResponseKeys { id: None, ..keys };
        assert_eq!(
            t.verify(&[account(Some(("tgt", "target-secret")))], keys5, &cfg),
            Err(ChapError::MissingKey("CHAP_I"))
        );
    }

    #[test]
    fn challenges_are_fresh_and_sized() {
        let a = ChapTarget::new(ChapAlgorithm::MD5).unwrap();
        let b = ChapTarget::new(ChapAlgorithm::MD5).unwrap();
        assert_eq!(a.challenge.len(), 16);
        assert_ne!(a.challenge, b.challenge);
        assert_eq!(
            ChapTarget::new(ChapAlgorithm::SHA256)
                .unwrap()
                .challenge
                .len(),
            32
        );
        assert!(ChapTarget::new(ChapAlgorithm(1)).is_err());
    }

    #[test]
    fn secret_debug_is_redacted() {
        let acc = account(Some(("tgt", "target-secret")));
        let dbg = format!("{acc:?}");
        assert!(!dbg.contains("secret\""), "{dbg}");
        assert!(!dbg.contains("initiator-secret"));
        assert!(!dbg.contains("target-secret"));
        assert!(dbg.contains("***"));
    }
}
