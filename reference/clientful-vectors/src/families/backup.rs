//! `backup`: sealed user backups (spec §5.5): sealing with a given salt and nonce
//! (BAK-2..BAK-4) and opening with the checks of BAK-6 in order.
//!
//! Each Argon2id key costs 64 MiB and three passes, and the conformance runner
//! replays this family for every saboteur of its kill matrix, so the cases share
//! few (passphrase, salt) pairs and [`key`] derives each pair once per process.
//! Every case that fails before BAK-6 step 4 derives nothing.

use std::collections::BTreeMap;
use std::sync::{Mutex, OnceLock};

use clientful_core::ErrorClass;
use clientful_core::backup::{self, SALT_LEN, SealRandomness};
use clientful_core::keys::SigningKey;
use clientful_core::limits::NONCE_LEN;
use clientful_proto::v1 as pb;
use prost::Message;
use rand_core::Rng;
use serde_json::{Value, json};
use zeroize::Zeroizing;

use crate::generate::{FileBuilder, family_rng};
use crate::hexutil::{get_arr, get_bytes_input, get_str, hex};
use crate::schema::VectorFile;
use crate::verify::Outcome;

const SEED: &str = "clientful/v1/vectors/backup";

fn err(e: clientful_core::Error) -> String {
    e.to_string()
}

type KeyCache = Mutex<BTreeMap<(String, [u8; SALT_LEN]), Zeroizing<[u8; 32]>>>;

/// [`backup::backup_key`], memoized for this process by (passphrase, salt).
fn key(
    passphrase: &str,
    salt: &[u8; SALT_LEN],
) -> Result<Zeroizing<[u8; 32]>, clientful_core::Error> {
    static CACHE: OnceLock<KeyCache> = OnceLock::new();
    let cache = CACHE.get_or_init(|| Mutex::new(BTreeMap::new()));
    let id = (passphrase.to_owned(), *salt);
    if let Some(k) = cache.lock().ok().and_then(|c| c.get(&id).cloned()) {
        return Ok(k);
    }
    let k = backup::backup_key(passphrase, salt)?;
    if let Ok(mut c) = cache.lock() {
        c.insert(id, k.clone());
    }
    Ok(k)
}

/// [`backup::seal_backup`] through the key cache.
fn seal(
    passphrase: &str,
    seed: &[u8; 32],
    name: &str,
    r: &SealRandomness,
) -> Result<Vec<u8>, clientful_core::Error> {
    if passphrase.is_empty() {
        // The refusal of an empty passphrase (BAK-4), from the reference itself.
        return backup::seal_backup(passphrase, seed, name, r);
    }
    backup::seal_backup_with_key(&*key(passphrase, &r.salt)?, seed, name, r)
}

/// [`backup::open_backup`] through the key cache.
fn open(sealed: &[u8], passphrase: &str) -> Result<backup::BackupContents, clientful_core::Error> {
    let decoded = backup::decode_backup(sealed)?;
    decoded.open_with_key(&*key(passphrase, decoded.salt())?)
}

fn opened(b: &backup::BackupContents) -> Value {
    json!({
        "userSeed": hex(b.user_seed.as_ref()),
        "userKey": hex(b.user_key),
        "name": b.name,
    })
}

fn open_input(sealed: &[u8], passphrase: &str) -> Value {
    json!({"sealed": hex(sealed), "passphrase": passphrase})
}

fn header(seed: &[u8; 32], r: &SealRandomness) -> pb::SealedBackup {
    pb::SealedBackup {
        version: 1,
        kdf: 1,
        salt: r.salt.to_vec(),
        nonce: r.nonce.to_vec(),
        user_key: SigningKey::from_seed(seed).public_bytes().to_vec(),
        ciphertext: Vec::new(),
    }
}

fn secret(version: u32, seed: &[u8], name: &[u8]) -> Vec<u8> {
    pb::BackupSecret {
        version,
        user_seed: seed.to_vec(),
        name: name.to_vec(),
    }
    .encode_to_vec()
}

/// Builds the file from the family's fixed seed.
pub fn generate() -> Result<VectorFile, String> {
    generate_seeded(SEED)
}

/// Builds the file from `seed`: the fixed seed gives the committed file, any
/// other seed fresh cases of the same shape (CONF-53).
pub fn generate_seeded(seed: &str) -> Result<VectorFile, String> {
    let mut rng = family_rng(seed);
    let mut f = FileBuilder::new(
        "backup",
        seed,
        "Sealed user backups: the user seed under an Argon2id passphrase key and \
         XChaCha20-Poly1305, the header bound as associated data.",
    );
    f.note("Ktv", "BASIC", "A correct backup.");
    f.note(
        "WrongPassphrase",
        "AUTH_BYPASS",
        "Another passphrase than the one it was sealed under.",
    );
    f.note(
        "HeaderSwap",
        "MALLEABILITY",
        "A header field changed after sealing: the associated data no longer matches.",
    );
    f.note(
        "Normalization",
        "EDGE_CASE",
        "The passphrase in another Unicode normal form.",
    );
    f.note(
        "UnpinnedKdf",
        "DEFINED",
        "A KDF or version this format does not define.",
    );
    f.note(
        "WrongLength",
        "BASIC",
        "A salt, nonce, key or seed of the wrong length.",
    );
    f.note("Truncated", "BASIC", "The encoding is cut short.");
    f.note(
        "UnknownField",
        "NON_CANONICAL",
        "A field the schema does not define.",
    );
    f.note(
        "Oversize",
        "RESOURCE",
        "Larger than the backup size limit, or a name over its limit.",
    );
    f.note(
        "SeedMismatch",
        "AUTH_BYPASS",
        "A correctly sealed seed that is not the named user's.",
    );

    let mut user_seed = [0u8; 32];
    rng.fill_bytes(&mut user_seed);
    let r = SealRandomness::generate(&mut rng);
    // One passphrase with an accent, given composed (NFC) and decomposed (NFD).
    let passphrase = "correct horse caf\u{e9} staple";
    let decomposed = "correct horse cafe\u{301} staple";
    let name = "Alice Émilie";

    f.group(
        "seal",
        "Seal a user seed and name under a passphrase with the given salt and nonce; the \
         output is the exact SealedBackup bytes.",
        json!({}),
    );
    let sealed = seal(passphrase, &user_seed, name, &r).map_err(err)?;
    f.valid(
        "seal",
        "A backup sealed with a fixed salt and nonce.",
        &["BAK-1", "BAK-2", "BAK-3", "BAK-4", "BAK-5"],
        &["Ktv"],
        json!({
            "passphrase": passphrase,
            "userSeed": hex(user_seed),
            "name": name,
            "salt": hex(r.salt),
            "nonce": hex(r.nonce),
        }),
        json!({"sealed": hex(&sealed)}),
    );
    let composed_sealed = seal(passphrase, &user_seed, "", &r).map_err(err)?;
    f.valid(
        "seal-normalizes-the-passphrase",
        "A passphrase given in decomposed form seals as its NFC form.",
        &["BAK-4"],
        &["Normalization"],
        json!({
            "passphrase": decomposed,
            "userSeed": hex(user_seed),
            "name": "",
            "salt": hex(r.salt),
            "nonce": hex(r.nonce),
        }),
        json!({"sealed": hex(&composed_sealed)}),
    );

    f.group(
        "open",
        "Open a SealedBackup with a passphrase: the seed, the user key and the name, or \
         the class of the first failing check of BAK-6.",
        json!({}),
    );
    let good = open(&sealed, passphrase).map_err(err)?;
    f.valid(
        "valid",
        "A correct backup and its passphrase.",
        &["BAK-2", "BAK-6"],
        &["Ktv"],
        open_input(&sealed, passphrase),
        opened(&good),
    );
    let nfd = open(&sealed, decomposed).map_err(err)?;
    f.valid(
        "passphrase-in-another-normal-form",
        "Sealed under the composed form, opened with the decomposed one.",
        &["BAK-4"],
        &["Normalization"],
        open_input(&sealed, decomposed),
        opened(&nfd),
    );
    f.invalid(
        "wrong-passphrase",
        "One character of the passphrase differs.",
        &["BAK-6"],
        ErrorClass::DecryptFailed,
        &["WrongPassphrase"],
        open_input(&sealed, "correct horse cafe staple"),
    );
    let pb0 = pb::SealedBackup::decode(sealed.as_slice()).map_err(|e| e.to_string())?;
    let mut other = [0u8; 32];
    rng.fill_bytes(&mut other);
    for (id, what, change) in [
        (
            "header-user-key-swapped",
            "The user key replaced by another user's after sealing.",
            0,
        ),
        (
            "header-nonce-changed",
            "The nonce changed after sealing.",
            1,
        ),
        (
            "ciphertext-bit-flipped",
            "One bit of the ciphertext flipped.",
            2,
        ),
    ] {
        let mut m = pb0.clone();
        match change {
            0 => m.user_key = SigningKey::from_seed(&other).public_bytes().to_vec(),
            1 => {
                if let Some(b) = m.nonce.first_mut() {
                    *b ^= 1;
                }
            }
            _ => {
                if let Some(b) = m.ciphertext.last_mut() {
                    *b ^= 0x80;
                }
            }
        }
        f.invalid(
            id,
            what,
            &["BAK-5", "BAK-6"],
            ErrorClass::DecryptFailed,
            &["HeaderSwap"],
            open_input(&m.encode_to_vec(), passphrase),
        );
    }
    for (id, what, version, kdf) in [
        ("version-2", "Backup format version 2.", 2, 1),
        ("kdf-2", "A KDF value version 1 does not define.", 1, 2),
        ("kdf-absent", "No KDF.", 1, 0),
    ] {
        let mut m = pb0.clone();
        m.version = version;
        m.kdf = kdf;
        f.invalid(
            id,
            what,
            &["BAK-3", "BAK-6"],
            ErrorClass::UnsupportedVersion,
            &["UnpinnedKdf"],
            open_input(&m.encode_to_vec(), passphrase),
        );
    }
    for (id, what, field) in [
        ("salt-15-bytes", "A 15-byte salt.", 0),
        ("nonce-12-bytes", "A 12-byte nonce.", 1),
        ("user-key-31-bytes", "A 31-byte user key.", 2),
        ("ciphertext-absent", "No ciphertext.", 3),
    ] {
        let mut m = pb0.clone();
        match field {
            0 => m.salt.truncate(SALT_LEN - 1),
            1 => m.nonce.truncate(12),
            2 => m.user_key.truncate(31),
            _ => m.ciphertext.clear(),
        }
        f.invalid(
            id,
            what,
            &["BAK-6"],
            ErrorClass::Malformed,
            &["WrongLength"],
            open_input(&m.encode_to_vec(), passphrase),
        );
    }
    f.invalid(
        "truncated",
        "The encoding cut in the middle of the ciphertext.",
        &["BAK-6"],
        ErrorClass::Malformed,
        &["Truncated"],
        open_input(sealed.get(..sealed.len() - 5).unwrap_or(&[]), passphrase),
    );
    let mut unknown = sealed.clone();
    unknown.extend_from_slice(&[0x38, 0x01]); // field 7, varint 1
    f.invalid(
        "unknown-field",
        "A field 7 after the ciphertext.",
        &["BAK-6", "ENC-2"],
        ErrorClass::NonCanonical,
        &["UnknownField"],
        open_input(&unknown, passphrase),
    );
    let mut big = pb0.clone();
    big.ciphertext = vec![0u8; backup::MAX_BACKUP_BYTES];
    f.invalid(
        "oversize",
        "A backup over 1024 bytes.",
        &["BAK-LIM-1", "BAK-6"],
        ErrorClass::LimitExceeded,
        &["Oversize"],
        open_input(&big.encode_to_vec(), passphrase),
    );

    // Crafted secrets, correctly sealed.
    let h = header(&user_seed, &r);
    let k = key(passphrase, &r.salt).map_err(err)?;
    let crafted = |secret_bytes: &[u8], hdr: &pb::SealedBackup| {
        backup::seal_backup_unchecked(&k, hdr, secret_bytes).map_err(err)
    };
    let mut other_user = h.clone();
    other_user.user_key = SigningKey::from_seed(&other).public_bytes().to_vec();
    f.invalid(
        "seed-of-another-user",
        "The sealed seed is not the seed of the user key in the header.",
        &["BAK-6"],
        ErrorClass::WrongContext,
        &["SeedMismatch"],
        open_input(
            &crafted(&secret(1, &user_seed, b""), &other_user)?,
            passphrase,
        ),
    );
    f.invalid(
        "secret-version-2",
        "A BackupSecret of version 2.",
        &["BAK-6"],
        ErrorClass::UnsupportedVersion,
        &["UnpinnedKdf"],
        open_input(&crafted(&secret(2, &user_seed, b""), &h)?, passphrase),
    );
    f.invalid(
        "seed-31-bytes",
        "A 31-byte seed.",
        &["BAK-6"],
        ErrorClass::Malformed,
        &["WrongLength"],
        open_input(
            &crafted(&secret(1, user_seed.get(..31).unwrap_or(&[]), b""), &h)?,
            passphrase,
        ),
    );
    f.invalid(
        "name-over-limit",
        "A 257-byte name.",
        &["BAK-LIM-2", "BAK-6"],
        ErrorClass::LimitExceeded,
        &["Oversize"],
        open_input(
            &crafted(&secret(1, &user_seed, &[b'n'; 257]), &h)?,
            passphrase,
        ),
    );
    f.invalid(
        "name-not-utf8",
        "A name that is not UTF-8.",
        &["BAK-6"],
        ErrorClass::Malformed,
        &["WrongLength"],
        open_input(
            &crafted(&secret(1, &user_seed, &[0xff, 0xfe]), &h)?,
            passphrase,
        ),
    );
    Ok(f.finish())
}

/// Runs one case against the reference.
pub fn run(operation: &str, _params: &Value, input: &Value) -> Result<Outcome, String> {
    match operation {
        "seal" => {
            let seed = get_arr::<32>(input, "userSeed")?;
            let r = SealRandomness {
                salt: get_arr::<SALT_LEN>(input, "salt")?,
                nonce: get_arr::<NONCE_LEN>(input, "nonce")?,
            };
            Ok(
                match seal(
                    get_str(input, "passphrase")?,
                    &seed,
                    get_str(input, "name")?,
                    &r,
                ) {
                    Ok(b) => Outcome::Accepted(json!({"sealed": hex(b)})),
                    Err(e) => Outcome::Rejected(e.class()),
                },
            )
        }
        "open" => {
            let sealed = get_bytes_input(input, "sealed")?;
            Ok(match open(&sealed, get_str(input, "passphrase")?) {
                Ok(b) => Outcome::Accepted(opened(&b)),
                Err(e) => Outcome::Rejected(e.class()),
            })
        }
        other => Err(format!("unknown operation {other}")),
    }
}
