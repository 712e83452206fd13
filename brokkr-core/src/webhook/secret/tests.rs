use super::*;

/// The base64 of bytes 0..32.
const KEY_A: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
/// The base64 of bytes 32..64.
const KEY_B: &str = "ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8=";

fn mk_keyring(entries: &[&str]) -> Keyring {
    Keyring::parse(entries).unwrap_or_else(|err| panic!("{entries:?}: {err}"))
}

#[test]
fn generated_secrets_are_prefixed_256_bit_and_distinct() {
    let secret = generate_secret();
    let encoded = secret.strip_prefix(SECRET_PREFIX).expect("whsec_ prefix");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(encoded)
        .expect("unpadded base64url");
    assert_eq!(bytes.len(), 32);
    assert_ne!(generate_secret(), secret);
}

#[test]
fn seal_then_open_gives_the_secret_back_and_hides_it() {
    let keyring = mk_keyring(&[&format!("k1:{KEY_A}")]);
    let secret = generate_secret();
    let sealed = keyring.seal(secret.as_bytes());
    assert_eq!(keyring.open(&sealed).unwrap(), secret.as_bytes());
    assert!(
        !sealed
            .windows(secret.len())
            .any(|window| window == secret.as_bytes()),
        "the secret appears in clear"
    );
    // A fresh nonce each time: the same secret never seals to the same bytes.
    assert_ne!(keyring.seal(secret.as_bytes()), sealed);
    assert_eq!(&sealed[..4], &[1, 2, b'k', b'1']);
}

#[test]
fn a_wrong_key_under_the_same_id_does_not_open() {
    let sealed = mk_keyring(&[&format!("k1:{KEY_A}")]).seal(b"whsec_x");
    let other = mk_keyring(&[&format!("k1:{KEY_B}")]);
    assert_eq!(
        other.open(&sealed),
        Err(SecretError::Unopenable { id: "k1".into() })
    );
}

#[test]
fn an_unknown_key_id_is_named() {
    let sealed = mk_keyring(&[&format!("old:{KEY_A}")]).seal(b"whsec_x");
    let other = mk_keyring(&[&format!("new:{KEY_A}")]);
    assert_eq!(
        other.open(&sealed),
        Err(SecretError::UnknownKey { id: "old".into() })
    );
}

#[test]
fn a_rotated_keyring_seals_with_the_new_key_and_still_opens_the_old() {
    let old = mk_keyring(&[&format!("k1:{KEY_A}")]);
    let sealed_before = old.seal(b"whsec_before");
    let rotated = mk_keyring(&[&format!("k2:{KEY_B}"), &format!("k1:{KEY_A}")]);
    assert_eq!(rotated.sealing_key_id(), "k2");
    assert_eq!(rotated.open(&sealed_before).unwrap(), b"whsec_before");
    let sealed_after = rotated.seal(b"whsec_after");
    assert_eq!(&sealed_after[2..4], b"k2");
    assert_eq!(rotated.open(&sealed_after).unwrap(), b"whsec_after");
    // The old keyring cannot open what the new key sealed.
    assert_eq!(
        old.open(&sealed_after),
        Err(SecretError::UnknownKey { id: "k2".into() })
    );
}

#[test]
fn altered_or_truncated_sealed_secrets_are_refused() {
    let keyring = mk_keyring(&[&format!("k1:{KEY_A}")]);
    let sealed = keyring.seal(b"whsec_x");
    let mut flipped = sealed.clone();
    let last = flipped.len() - 1;
    flipped[last] ^= 1;
    assert_eq!(
        keyring.open(&flipped),
        Err(SecretError::Unopenable { id: "k1".into() })
    );
    assert_eq!(
        keyring.open(&sealed[..sealed.len() - 3]),
        Err(SecretError::Unopenable { id: "k1".into() })
    );
    assert_eq!(keyring.open(&sealed[..20]), Err(SecretError::Malformed));
    assert_eq!(keyring.open(&[]), Err(SecretError::Malformed));
    let mut other_version = sealed.clone();
    other_version[0] = 2;
    assert_eq!(keyring.open(&other_version), Err(SecretError::Malformed));
    // Moving the ciphertext under another id that the keyring holds with the same key
    // fails too: the id is authenticated.
    let twin = mk_keyring(&[&format!("k1:{KEY_A}"), &format!("k2:{KEY_A}")]);
    let mut relabelled = sealed;
    relabelled[3] = b'2';
    assert_eq!(
        twin.open(&relabelled),
        Err(SecretError::Unopenable { id: "k2".into() })
    );
}

#[test]
fn configuration_entries_are_checked_with_errors_that_name_them() {
    let check = |entries: &[&str], expected: KeyringError| {
        assert_eq!(
            Keyring::parse(entries).unwrap_err(),
            expected,
            "{entries:?}"
        );
    };
    check(&[], KeyringError::Empty);
    check(&[KEY_A], KeyringError::Malformed { position: 1 });
    check(
        &[&format!("k1:{KEY_A}"), &format!(":{KEY_B}")],
        KeyringError::BadId {
            position: 2,
            id: String::new(),
        },
    );
    check(
        &[&format!("k 1:{KEY_A}")],
        KeyringError::BadId {
            position: 1,
            id: "k 1".into(),
        },
    );
    check(&["k1:AAEC"], KeyringError::BadKey { id: "k1".into() });
    check(
        &["k1:not base64!"],
        KeyringError::BadKey { id: "k1".into() },
    );
    check(
        &[&format!("k1:{KEY_A}"), &format!("k1:{KEY_B}")],
        KeyringError::DuplicateId { id: "k1".into() },
    );
    // Padding is optional and spaces around an entry are ignored.
    let unpadded = KEY_A.trim_end_matches('=');
    assert_eq!(
        mk_keyring(&[&format!(" k1:{unpadded} ")]),
        mk_keyring(&[&format!("k1:{KEY_A}")])
    );
}

#[test]
fn debug_shows_key_ids_and_never_a_key() {
    let keyring = mk_keyring(&[&format!("k2:{KEY_B}"), &format!("k1:{KEY_A}")]);
    let shown = format!("{keyring:?}");
    assert!(shown.contains("\"k2\", \"k1\""), "{shown}");
    // Key bytes as Debug would print them: 32, 33, ... for KEY_B.
    assert!(!shown.contains("32, 33"), "{shown}");
    assert!(!shown.contains(KEY_B), "{shown}");
}
