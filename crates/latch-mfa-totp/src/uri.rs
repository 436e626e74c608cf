//! `otpauth://` URIs: building them exactly as pyotp's `provisioning_uri` does, and
//! parsing them to import a secret from another system.

use std::fmt::Write as _;

use latch_models::Secret;

use crate::otp::decode_secret;
use crate::{OtpAuthError, SecretError};

/// Python's `urllib.parse.quote(s, safe)`: UTF-8 bytes, with letters, digits, `_.-~`
/// and the bytes in `safe` kept, every other byte written `%XX` (upper-case hex).
#[must_use]
pub fn python_quote(s: &str, safe: &[u8]) -> String {
    let mut out = String::with_capacity(s.len());
    for &b in s.as_bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-' | b'~') || safe.contains(&b)
        {
            out.push(char::from(b));
        } else {
            // Writing to a String cannot fail.
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// The provisioning URI of a secret, byte for byte as Home Assistant builds it with
/// `pyotp.TOTP(secret).provisioning_uri(str(user.name), issuer_name=issuer)`:
///
/// `otpauth://totp/<quote(issuer)>:<quote(name)>?secret=<secret>&issuer=<issuer>`
///
/// The label parts use `quote(s)` (`/` stays unescaped); the `issuer` parameter uses
/// `urlencode`, which escapes `/` too and writes a space as `%20` (pyotp replaces the
/// `+` that `quote_plus` gives). A `None` name is written `None`, as Python's
/// `str(None)`.
///
/// ```
/// use latch_mfa_totp::provisioning_uri;
///
/// assert_eq!(
///     provisioning_uri("JBSWY3DPEHPK3PXP", Some("Paulus S"), "Home Assistant"),
///     "otpauth://totp/Home%20Assistant:Paulus%20S?secret=JBSWY3DPEHPK3PXP&issuer=Home%20Assistant"
/// );
/// ```
#[must_use]
pub fn provisioning_uri(secret: &str, name: Option<&str>, issuer: &str) -> String {
    let name = name.unwrap_or("None");
    format!(
        "otpauth://totp/{}:{}?secret={}&issuer={}",
        python_quote(issuer, b"/"),
        python_quote(name, b"/"),
        python_quote(secret, b""),
        python_quote(issuer, b""),
    )
}

/// What an `otpauth://totp/...` URI holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OtpAuth {
    /// The whole label, percent-decoded (`Issuer:account`, or just `account`).
    pub label: String,
    /// The account part of the label (after the first `:`, leading spaces removed).
    pub account: String,
    /// The issuer: the `issuer` parameter if given, else the label's prefix.
    pub issuer: Option<String>,
    /// The secret, upper-cased, with any `=` padding removed; it decodes (pyotp rules)
    /// to at least one byte.
    pub secret: Secret,
}

/// Parses an `otpauth://totp/LABEL?secret=...` URI (Google's Key Uri Format) to import
/// a secret. Only what this module can verify is accepted: type `totp`, and, when
/// given, `algorithm=SHA1`, `digits=6`, `period=30`. Parameter names are matched
/// case-insensitively, unknown ones are ignored, a repeated one is refused. `+` in the
/// query means a space. Never panics, whatever the input.
///
/// ```
/// use latch_mfa_totp::parse_otpauth_uri;
///
/// let otp = parse_otpauth_uri(
///     "otpauth://totp/Home%20Assistant:Paulus?secret=jbswy3dpehpk3pxp&issuer=Home%20Assistant",
/// )?;
/// assert_eq!(otp.account, "Paulus");
/// assert_eq!(otp.issuer.as_deref(), Some("Home Assistant"));
/// assert_eq!(otp.secret.expose(), "JBSWY3DPEHPK3PXP");
/// # Ok::<(), latch_mfa_totp::OtpAuthError>(())
/// ```
///
/// # Errors
/// [`OtpAuthError`] naming the first problem.
pub fn parse_otpauth_uri(uri: &str) -> Result<OtpAuth, OtpAuthError> {
    const SCHEME: &str = "otpauth://";
    let rest = match uri.get(..SCHEME.len()) {
        Some(p) if p.eq_ignore_ascii_case(SCHEME) => &uri[SCHEME.len()..],
        _ => return Err(OtpAuthError::NotOtpAuth),
    };
    // A fragment is not part of the key.
    let rest = rest.split_once('#').map_or(rest, |(r, _)| r);
    let (otp_type, rest) = rest.split_once('/').unwrap_or((rest, ""));
    if !otp_type.eq_ignore_ascii_case("totp") {
        return Err(OtpAuthError::UnsupportedType(otp_type.to_owned()));
    }
    let (raw_label, query) = rest.split_once('?').unwrap_or((rest, ""));
    let label = percent_decode(raw_label, false).ok_or(OtpAuthError::BadEncoding("label"))?;

    let mut secret = None;
    let mut issuer_param = None;
    let mut seen: Vec<String> = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let key = percent_decode(k, true)
            .ok_or(OtpAuthError::BadEncoding("query"))?
            .to_ascii_lowercase();
        let value = percent_decode(v, true).ok_or(OtpAuthError::BadEncoding("query"))?;
        if seen.contains(&key) {
            return Err(OtpAuthError::DuplicateParameter(key));
        }
        seen.push(key.clone());
        match key.as_str() {
            "secret" => secret = Some(value),
            "issuer" => issuer_param = Some(value),
            "algorithm" if !value.eq_ignore_ascii_case("sha1") => {
                return Err(OtpAuthError::Unsupported {
                    name: "algorithm",
                    value,
                });
            }
            "digits" if value != "6" => {
                return Err(OtpAuthError::Unsupported {
                    name: "digits",
                    value,
                });
            }
            "period" if value != "30" => {
                return Err(OtpAuthError::Unsupported {
                    name: "period",
                    value,
                });
            }
            _ => {}
        }
    }

    let secret = secret.ok_or(OtpAuthError::MissingSecret)?;
    let secret = secret.trim_end_matches('=').to_ascii_uppercase();
    let decoded = decode_secret(&secret).map_err(OtpAuthError::InvalidSecret)?;
    if decoded.is_empty() {
        return Err(OtpAuthError::InvalidSecret(SecretError::Empty));
    }

    let (label_issuer, account) = match label.split_once(':') {
        Some((i, a)) => (Some(i.to_owned()), a.trim_start_matches(' ').to_owned()),
        None => (None, label.clone()),
    };
    Ok(OtpAuth {
        issuer: issuer_param.or(label_issuer),
        account,
        label,
        secret: Secret::new(secret),
    })
}

/// Percent-decodes `s` (and `+` as a space when `plus_is_space`); `None` for a broken
/// escape or a result that is not UTF-8.
fn percent_decode(s: &str, plus_is_space: bool) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        match b {
            b'%' => {
                let hi = hex_value(*bytes.get(i + 1)?)?;
                let lo = hex_value(*bytes.get(i + 2)?)?;
                out.push(hi << 4 | lo);
                i += 3;
            }
            b'+' if plus_is_space => {
                out.push(b' ');
                i += 1;
            }
            _ => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quote_matches_python() {
        // urllib.parse.quote("a b/c:d?é~_.-") == 'a%20b/c%3Ad%3F%C3%A9~_.-'
        assert_eq!(
            python_quote("a b/c:d?é~_.-", b"/"),
            "a%20b/c%3Ad%3F%C3%A9~_.-"
        );
        assert_eq!(python_quote("a/b", b""), "a%2Fb");
        assert_eq!(python_quote("+&=%", b"/"), "%2B%26%3D%25");
    }

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("a%20b+c", false).as_deref(), Some("a b+c"));
        assert_eq!(percent_decode("a%20b+c", true).as_deref(), Some("a b c"));
        assert_eq!(percent_decode("%C3%A9", true).as_deref(), Some("é"));
        assert_eq!(percent_decode("%", true), None);
        assert_eq!(percent_decode("%4", true), None);
        assert_eq!(percent_decode("%zz", true), None);
        assert_eq!(percent_decode("%FF", true), None);
    }
}
