//! `otpauth://` URIs and base32 TOTP secrets.

use latch_mfa_totp::{
    code_at_step, codes_equal, decode_secret, encode_base32, normalize_recovery_code,
    parse_otpauth_uri, provisioning_uri,
};

use crate::must;

/// otpauth URIs and secrets: the input (as text, when it is UTF-8) is parsed as an
/// `otpauth://` URI, decoded as a base32 secret, and used as a typed code and a recovery
/// code; the raw bytes are encoded as a secret.
///
/// A parsed URI's secret decodes to at least one byte and survives
/// [`provisioning_uri`] and a second parse (with the issuer and, where the label allows,
/// the account); a decoded secret re-encodes to the same bytes; any bytes encode to a
/// secret that decodes back to them; codes are six digits.
pub fn otpauth(data: &[u8]) {
    let key = must(decode_secret(&encode_base32(data)), "an encoded secret");
    assert_eq!(key, data, "base32 round trip");

    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(otp) = parse_otpauth_uri(text) {
        let secret = otp.secret.expose();
        let key = must(decode_secret(secret), "a parsed secret");
        assert!(!key.is_empty(), "an empty secret accepted");
        let issuer = otp.issuer.clone().unwrap_or_default();
        let uri = provisioning_uri(secret, Some(&otp.account), &issuer);
        let again = must(parse_otpauth_uri(&uri), "a provisioning URI does not parse");
        assert!(again.secret == otp.secret, "the secret does not survive");
        assert_eq!(again.issuer.as_deref(), Some(issuer.as_str()));
        if !issuer.contains(':') {
            // The account comes back after a `:`, so without its leading spaces.
            assert_eq!(
                again.account,
                otp.account.trim_start_matches(' '),
                "the account does not survive"
            );
        }
        let code = must(
            code_at_step(&key, 56_666_666).ok_or("no code"),
            "a code of a valid secret",
        );
        assert!(code.len() == 6 && code.bytes().all(|b| b.is_ascii_digit()));
        assert!(codes_equal(&code, &code));
    }
    if let Ok(key) = decode_secret(text) {
        let encoded = encode_base32(&key);
        assert_eq!(
            must(decode_secret(&encoded), "a re-encoded secret"),
            key,
            "secret round trip"
        );
        if let Some(code) = code_at_step(&key, data.len() as u64) {
            assert!(code.len() == 6 && code.bytes().all(|b| b.is_ascii_digit()));
        }
    }
    let _ = codes_equal(text, "123456");
    if let Some(code) = normalize_recovery_code(text) {
        assert_eq!(
            normalize_recovery_code(&code).as_deref(),
            Some(code.as_str()),
            "a normalised recovery code is not stable"
        );
    }
}
