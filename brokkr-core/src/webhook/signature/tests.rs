use super::*;

const SECRET: &[u8] = b"whsec_test_secret";
const BODY: &[u8] = br#"{"type":"webhook.test"}"#;
const AT: i64 = 1_700_000_000;

#[test]
fn sign_matches_a_vector_computed_by_pythons_hmac_module() {
    // python3 -c 'import hmac,hashlib; print(hmac.new(b"whsec_test_secret",
    //   b"1700000000.{\"type\":\"webhook.test\"}", hashlib.sha256).hexdigest())'
    assert_eq!(
        sign(SECRET, AT, BODY),
        "sha256=c6a618d5eb32d07913de4bae48a69e31698c7828984c6a675f224d15b380c6a8"
    );
    // A negative timestamp is written with its sign, as `str(-1)` would be.
    assert_eq!(
        sign(b"Jefe", -1, b"what do ya want for nothing?"),
        "sha256=12a00dff1620d37135715a708d6205dfc7623392175e6369966e670fb56d7d56"
    );
}

#[test]
fn a_fresh_signature_verifies() {
    let header = sign(SECRET, AT, BODY);
    assert_eq!(
        verify(SECRET, AT, BODY, &header, AT + 3, DEFAULT_TOLERANCE),
        Ok(())
    );
    // Upper-case hex and surrounding spaces are the same signature.
    let shouted = format!(" sha256={} ", header[SCHEME.len()..].to_uppercase());
    assert_eq!(
        verify(SECRET, AT, BODY, &shouted, AT, DEFAULT_TOLERANCE),
        Ok(())
    );
}

#[test]
fn a_tampered_body_timestamp_or_secret_is_a_mismatch() {
    let header = sign(SECRET, AT, BODY);
    let check = |secret: &[u8], timestamp: i64, body: &[u8]| {
        verify(secret, timestamp, body, &header, AT, DEFAULT_TOLERANCE)
    };
    assert_eq!(
        check(SECRET, AT, br#"{"type":"webhook.tesT"}"#),
        Err(SignatureError::Mismatch)
    );
    assert_eq!(check(SECRET, AT + 1, BODY), Err(SignatureError::Mismatch));
    assert_eq!(
        check(b"whsec_other", AT, BODY),
        Err(SignatureError::Mismatch)
    );
    let mut flipped = header.clone().into_bytes();
    let last = flipped.len() - 1;
    flipped[last] = if flipped[last] == b'0' { b'1' } else { b'0' };
    let flipped = String::from_utf8(flipped).unwrap();
    assert_eq!(
        verify(SECRET, AT, BODY, &flipped, AT, DEFAULT_TOLERANCE),
        Err(SignatureError::Mismatch)
    );
}

#[test]
fn a_timestamp_outside_the_tolerance_is_refused_even_when_signed() {
    let header = sign(SECRET, AT, BODY);
    let tolerance = Duration::from_secs(300);
    assert_eq!(
        verify(SECRET, AT, BODY, &header, AT + 300, tolerance),
        Ok(())
    );
    assert_eq!(
        verify(SECRET, AT, BODY, &header, AT + 301, tolerance),
        Err(SignatureError::OutsideTolerance {
            timestamp: AT,
            skew_secs: 301,
            tolerance_secs: 300
        })
    );
    // From the future too: a clock far ahead is no excuse.
    assert!(matches!(
        verify(SECRET, AT, BODY, &header, AT - 301, tolerance),
        Err(SignatureError::OutsideTolerance { skew_secs: 301, .. })
    ));
}

#[test]
fn malformed_headers_are_refused_before_any_comparison() {
    let good = sign(SECRET, AT, BODY);
    let digits = &good[SCHEME.len()..];
    for header in [
        String::new(),
        digits.to_owned(),
        format!("sha1={digits}"),
        format!("sha256={}", &digits[..63]),
        format!("sha256={digits}0"),
        format!("sha256={}g", &digits[..63]),
        format!("sha256={}é", &digits[..62]),
    ] {
        assert_eq!(
            verify(SECRET, AT, BODY, &header, AT, DEFAULT_TOLERANCE),
            Err(SignatureError::Malformed),
            "{header:?}"
        );
    }
}
