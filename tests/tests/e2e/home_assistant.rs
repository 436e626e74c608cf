//! A Home Assistant configuration directory served by latchd: its `.storage` files, as
//! Home Assistant writes them, with a password hashed by Python's bcrypt, a TOTP secret
//! and an access token minted by PyJWT.

use hmac::{Hmac, KeyInit, Mac};
use latch_client::protocol::TokenType;
use latch_tests::{Home, block_on, totp, unix_now, write_file};
use serde_json::{Value, json};
use sha2::Sha256;

use super::json as stdout_json;

/// Passwords hashed by Python's bcrypt at cost 12, in the provider's storage format.
const BCRYPT_FIXTURE: &str =
    include_str!("../../../crates/latch-provider-homeassistant/tests/fixtures/ha_bcrypt.json");
/// Access tokens minted by PyJWT exactly as Home Assistant mints them.
const PYJWT_FIXTURE: &str =
    include_str!("../../../crates/latch-token/tests/fixtures/pyjwt_vectors.json");

// Ids as uuid4().hex makes them; tokens and keys as secrets.token_hex(64).
const OWNER_ID: &str = "ee9758f45537497199234db133d47768";
const UMLAUT_ID: &str = "c3b6d51c9b8a4528b1a9ddca2eddc97f";
const SUPERVISOR_ID: &str = "10185a4e1c144216a8ba544c80a4fa57";
const CRED_OWNER: &str = "5ac845b9fb914c35833ab169cbb49a45";
const CRED_UMLAUT: &str = "079e8f9f0d5a46ba8ba9449ba5496440";
const BROWSER_TOKEN_ID: &str = "c7c6f7744eb74b6bbea495c8c485fa01";
const SUPERVISOR_TOKEN_ID: &str = "81a299211f144180ae175840b2a49026";
const LLAT_TOKEN: &str = "38d04f2414291f744af5d38641b21ac3234c51844d31cca118ddc14e0845f716f037fe7566a485908d2207702791ca15d8f085cd2b721d2f2eff0f6d4dcf4994";
const BROWSER_TOKEN: &str = "5fe5b15dcf6b0d578aa4adeaf3d667eeacd6fd3657bd8a01d9559f7815d48df737b7c3addcd1960bf25ca98629412f86f5c44740d6324f1743b6ed142ab88a77";
const BROWSER_JWT_KEY: &str = "b1a1f4f47530d86b40c62311269f0f52cad8d6a9b4d9d33d9d2652acfc54f015e01aa96b8a0e9603509ad3fbbd6b67588edffd9713754a6b8ed843cf6545886e";
const SUPERVISOR_TOKEN: &str = "c6c969776a4bc30b5d1223cef3a883a86acc721288d8a93ded1ccd0f6625106f16df28c7fd354302dafb9a3f79f1394d18bfb036df89dc02b0b971279799c0d8";
const SUPERVISOR_JWT_KEY: &str = "0845dd9cc589bc210afc9362b22c9fd38c7fb80db28a88b33550ea58353aa550fa4f3715bbf70af55be7a0d980a061508730d2b5902f1e6cc7f2090aed9f9a30";
/// The umlaut user's authenticator secret (32 base32 characters, as pyotp makes them).
const TOTP_SECRET: &str = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP";
const HA_CLIENT_ID: &str = "http://localhost:8123/";

/// The keys Home Assistant writes for each record, in its order.
const USER_KEYS: [&str; 7] = [
    "id",
    "group_ids",
    "is_owner",
    "is_active",
    "name",
    "system_generated",
    "local_only",
];
const CREDENTIAL_KEYS: [&str; 5] = [
    "id",
    "user_id",
    "auth_provider_type",
    "auth_provider_id",
    "data",
];
const TOKEN_KEYS: [&str; 15] = [
    "id",
    "user_id",
    "client_id",
    "client_name",
    "client_icon",
    "token_type",
    "created_at",
    "access_token_expiration",
    "token",
    "jwt_key",
    "last_used_at",
    "last_used_ip",
    "expire_at",
    "credential_id",
    "version",
];

/// What Home Assistant's `helpers/storage.py` writes: the envelope, orjson's
/// `OPT_INDENT_2` (serde_json's pretty printer is the same layout), no trailing newline.
fn write_store(home: &Home, key: &str, data: &Value) {
    let envelope = json!({"version": 1, "minor_version": 1, "key": key, "data": data});
    write_file(
        &home.join(".storage").join(key),
        serde_json::to_string_pretty(&envelope).unwrap(),
    );
}

fn base64url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
        for i in 0..=chunk.len() {
            out.push(char::from(ALPHABET[(n >> (18 - 6 * i) & 63) as usize]));
        }
    }
    out
}

/// An access token as Home Assistant mints it (`jwt.encode(payload, jwt_key, "HS256")`),
/// made here with HMAC-SHA256 directly, independently of latch-token.
fn mint_like_home_assistant(refresh_token_id: &str, jwt_key: &str, iat: u64, exp: u64) -> String {
    let header = base64url(br#"{"alg":"HS256","typ":"JWT"}"#);
    let payload =
        base64url(format!(r#"{{"iss":"{refresh_token_id}","iat":{iat},"exp":{exp}}}"#).as_bytes());
    let signing_input = format!("{header}.{payload}");
    let mut mac = Hmac::<Sha256>::new_from_slice(jwt_key.as_bytes()).unwrap();
    mac.update(signing_input.as_bytes());
    let signature = base64url(&mac.finalize().into_bytes());
    format!("{signing_input}.{signature}")
}

/// A PyJWT vector whose token is valid now and for a long while: `(iss, jwt_key, token,
/// access_token_expiration, iat)`.
fn pyjwt_long_lived_vector() -> (String, String, String, f64, u64) {
    let vectors: Value = serde_json::from_str(PYJWT_FIXTURE).unwrap();
    let now = unix_now();
    vectors["mint"]
        .as_array()
        .unwrap()
        .iter()
        .find_map(|v| {
            let iat = v["now"].as_u64()?;
            let lifetime = v["access_token_expiration"].as_f64()?;
            // HA: exp = iat + int(expiration seconds).
            let exp = iat.checked_add(lifetime as u64)?;
            let iss = v["iss"].as_str()?;
            (lifetime > 0.0 && iat <= now && exp > now + 86_400 && iss.len() == 32).then(|| {
                (
                    iss.to_owned(),
                    v["jwt_key"].as_str().unwrap().to_owned(),
                    v["token"].as_str().unwrap().to_owned(),
                    lifetime,
                    iat,
                )
            })
        })
        .expect("a PyJWT vector valid now")
}

/// Python's `datetime.isoformat()` of a UTC time with whole seconds.
fn isoformat(unix: u64) -> String {
    let days = unix / 86_400;
    let secs = unix % 86_400;
    // Civil date from days since the epoch (Howard Hinnant's algorithm).
    let z = i64::try_from(days).unwrap() + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}+00:00",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

struct Fixture {
    /// The long-lived token's access token, minted by PyJWT.
    pyjwt_access: String,
    pyjwt_token_id: String,
    pyjwt_jwt_key: String,
    /// The bcrypt cases: username, a password that logs in, one that does not.
    owner_password: String,
    owner_wrong_password: String,
    umlaut_password: String,
    /// A password of the provider's `long-user`, past bcrypt's 72 bytes.
    long_password: String,
    /// The password of the provider's `Fritz ` (a name Home Assistant 2025 left
    /// unnormalised).
    fritz_password: String,
}

/// Writes the home as Home Assistant leaves it.
fn write_home_assistant_dir(home: &Home) -> Fixture {
    let bcrypt: Value = serde_json::from_str(BCRYPT_FIXTURE).unwrap();
    let case = |username: &str| {
        bcrypt["cases"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["username"] == username)
            .unwrap()
            .clone()
    };
    let owner_case = case("test-user");
    let umlaut_case = case("umlaut-user");
    let (iss, jwt_key, token, lifetime, iat) = pyjwt_long_lived_vector();
    let now = unix_now();

    write_file(&home.join(".HA_VERSION"), "2026.11.0");
    write_store(
        home,
        "auth",
        &json!({
            "users": [
                {"id": OWNER_ID, "group_ids": ["system-admin"], "is_owner": true,
                 "is_active": true, "name": "Test User", "system_generated": false,
                 "local_only": false},
                {"id": SUPERVISOR_ID, "group_ids": ["system-admin"], "is_owner": false,
                 "is_active": true, "name": "Supervisor", "system_generated": true,
                 "local_only": false},
                {"id": UMLAUT_ID, "group_ids": ["system-users"], "is_owner": false,
                 "is_active": true, "name": "Jürgen Ümlaut", "system_generated": false,
                 "local_only": false},
            ],
            "groups": [
                {"id": "system-admin", "name": "Administrators"},
                {"id": "system-users", "name": "Users"},
                {"id": "system-read-only", "name": "Read Only"},
            ],
            "credentials": [
                {"id": CRED_OWNER, "user_id": OWNER_ID, "auth_provider_type": "homeassistant",
                 "auth_provider_id": null, "data": {"username": "test-user"}},
                {"id": CRED_UMLAUT, "user_id": UMLAUT_ID, "auth_provider_type": "homeassistant",
                 "auth_provider_id": null, "data": {"username": "umlaut-user"}},
            ],
            "refresh_tokens": [
                {"id": iss, "user_id": OWNER_ID, "client_id": null,
                 "client_name": "PyJWT", "client_icon": null,
                 "token_type": "long_lived_access_token",
                 "created_at": isoformat(iat), "access_token_expiration": lifetime,
                 "token": LLAT_TOKEN, "jwt_key": jwt_key, "last_used_at": isoformat(iat),
                 "last_used_ip": null, "expire_at": null, "credential_id": null,
                 "version": "2026.11.0"},
                {"id": SUPERVISOR_TOKEN_ID, "user_id": SUPERVISOR_ID, "client_id": null,
                 "client_name": null, "client_icon": null, "token_type": "system",
                 "created_at": "2023-01-15T08:30:00.500000+00:00",
                 "access_token_expiration": 1800.0, "token": SUPERVISOR_TOKEN,
                 "jwt_key": SUPERVISOR_JWT_KEY, "last_used_at": null, "last_used_ip": null,
                 "expire_at": null, "credential_id": null, "version": "2023.1.0"},
                {"id": BROWSER_TOKEN_ID, "user_id": UMLAUT_ID, "client_id": HA_CLIENT_ID,
                 "client_name": null, "client_icon": null, "token_type": "normal",
                 "created_at": isoformat(now - 3600), "access_token_expiration": 1800.0,
                 "token": BROWSER_TOKEN, "jwt_key": BROWSER_JWT_KEY,
                 "last_used_at": isoformat(now - 60), "last_used_ip": "192.168.1.5",
                 "expire_at": (now + 89 * 86_400) as f64 + 0.123_456,
                 "credential_id": CRED_UMLAUT, "version": "2026.11.0"},
            ],
        }),
    );
    // The provider's file exactly as the fixture's generator had Python write it.
    write_store(
        home,
        "auth_provider.homeassistant",
        &bcrypt["storage"]["data"],
    );
    write_store(
        home,
        "auth_module.totp",
        &json!({"users": {UMLAUT_ID: TOTP_SECRET}}),
    );
    Fixture {
        pyjwt_access: token,
        pyjwt_token_id: iss,
        pyjwt_jwt_key: jwt_key,
        owner_password: owner_case["accept"][0].as_str().unwrap().to_owned(),
        owner_wrong_password: owner_case["reject"][0].as_str().unwrap().to_owned(),
        umlaut_password: umlaut_case["accept"][0].as_str().unwrap().to_owned(),
        long_password: case("long-user")["accept"][0].as_str().unwrap().to_owned(),
        fritz_password: case("Fritz ")["accept"][0].as_str().unwrap().to_owned(),
    }
}

fn keys(value: &Value) -> Vec<&str> {
    value
        .as_object()
        .unwrap_or_else(|| panic!("not an object: {value}"))
        .keys()
        .map(String::as_str)
        .collect()
}

fn is_hex(text: &str, len: usize) -> bool {
    text.len() == len && text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// Reads a `.storage` file and checks Home Assistant's envelope around it.
fn read_store(home: &Home, key: &str) -> Value {
    let text = std::fs::read_to_string(home.join(".storage").join(key)).unwrap();
    assert!(
        text.starts_with("{\n  \"version\": 1,\n  \"minor_version\": 1,\n"),
        "{key}: not orjson's indented layout:\n{text}"
    );
    assert!(
        !text.ends_with('\n'),
        "{key}: Home Assistant writes no trailing newline"
    );
    let value: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        keys(&value),
        ["version", "minor_version", "key", "data"],
        "{key}"
    );
    assert_eq!(value["version"], 1);
    assert_eq!(value["minor_version"], 1);
    assert_eq!(value["key"], key);
    value["data"].clone()
}

#[test]
fn a_home_assistant_storage_directory_is_served_unchanged() {
    let home = Home::new();
    let fixture = write_home_assistant_dir(&home);
    let daemon = home.start();
    let client = home.client();

    // Its users log in with their passwords, hashed by Python's bcrypt at cost 12.
    home.run(
        &["login", "test-user", "--password-stdin"],
        &[&fixture.owner_password],
    )
    .assert_code(0)
    .assert_stdout_has("logged in as Test User")
    .assert_stdout_has(OWNER_ID);
    home.run(
        &["login", "test-user", "--password-stdin"],
        &[&fixture.owner_wrong_password],
    )
    .assert_code(1);
    // The TOTP user needs the code of the stored secret too (computed by the test's own
    // RFC 6238).
    home.run(
        &["login", "umlaut-user", "--password-stdin"],
        &[
            &fixture.umlaut_password,
            &totp::code_at(TOTP_SECRET, unix_now()),
        ],
    )
    .assert_code(0)
    .assert_stdout_has("logged in as Jürgen Ümlaut");

    // The long-lived access token PyJWT minted validates, through the CLI and the client.
    home.run(&["token", "validate", &fixture.pyjwt_access], &[])
        .assert_code(0)
        .assert_stdout_has("Test User");
    let valid = block_on(client.validate_token(&fixture.pyjwt_access)).unwrap();
    assert_eq!(valid.user.id, OWNER_ID);
    assert!(valid.user.is_owner);
    assert_eq!(valid.refresh_token_id, fixture.pyjwt_token_id);
    assert_eq!(valid.token_type, TokenType::LongLivedAccessToken);

    // So does an access token minted today the way Home Assistant mints it, and the
    // browser's refresh token still mints new ones.
    let now = unix_now();
    let minted = mint_like_home_assistant(BROWSER_TOKEN_ID, BROWSER_JWT_KEY, now, now + 1800);
    let valid = block_on(client.validate_token(&minted)).unwrap();
    assert_eq!(valid.user.id, UMLAUT_ID);
    assert_eq!(valid.token_type, TokenType::Normal);
    let forged = mint_like_home_assistant(BROWSER_TOKEN_ID, SUPERVISOR_JWT_KEY, now, now + 1800);
    home.run(&["token", "validate", &forged], &[])
        .assert_code(1);
    let run = home.run(
        &["token", "refresh", "-", "--client-id", HA_CLIENT_ID],
        &[BROWSER_TOKEN],
    );
    run.assert_code(0);
    home.run(&["token", "validate", run.stdout.trim()], &[])
        .assert_code(0)
        .assert_stdout_has(BROWSER_TOKEN_ID);

    let listed = stdout_json(
        home.run(&["token", "list", "test-user", "--json"], &[])
            .assert_code(0),
    );
    assert!(
        listed.as_array().unwrap().iter().any(|t| {
            t["id"] == fixture.pyjwt_token_id.as_str()
                && t["token_type"] == "long_lived_access_token"
        }),
        "{listed:#}"
    );

    // Provider users without a credential yet log in too, and get a user, as in Home
    // Assistant: the username is compared normalised, the password cut at 72 bytes.
    home.run(
        &["login", "fritz", "--password-stdin"],
        &[&fixture.fritz_password],
    )
    .assert_code(0)
    .assert_stdout_has("logged in as fritz");
    home.run(
        &["login", "long-user", "--password-stdin"],
        &[&fixture.long_password],
    )
    .assert_code(0)
    .assert_stdout_has("logged in as long-user");
    let users = block_on(client.list_users()).unwrap();
    assert_eq!(users.len(), 5, "{users:#?}");
    drop(client);

    // After a clean stop the files are still Home Assistant's.
    let log = daemon.stop();
    assert!(
        log.contains("this is a Home Assistant configuration directory"),
        "the HA directory is noticed:\n{log}"
    );

    let auth = read_store(&home, "auth");
    assert_eq!(
        keys(&auth),
        ["users", "groups", "credentials", "refresh_tokens"]
    );
    let users = auth["users"].as_array().unwrap();
    for user in users {
        assert_eq!(keys(user), USER_KEYS, "{user}");
    }
    for id in [OWNER_ID, SUPERVISOR_ID, UMLAUT_ID] {
        assert!(users.iter().any(|u| u["id"] == id), "{id} kept");
    }
    let groups = auth["groups"].as_array().unwrap();
    for system in ["system-admin", "system-users", "system-read-only"] {
        let group = groups.iter().find(|g| g["id"] == system).unwrap();
        assert_eq!(keys(group), ["id", "name"], "no policy for system groups");
    }
    for credential in auth["credentials"].as_array().unwrap() {
        assert_eq!(keys(credential), CREDENTIAL_KEYS, "{credential}");
    }
    let tokens = auth["refresh_tokens"].as_array().unwrap();
    for token in tokens {
        assert_eq!(keys(token), TOKEN_KEYS, "{token}");
        assert!(is_hex(token["id"].as_str().unwrap(), 32), "{token}");
        assert!(is_hex(token["token"].as_str().unwrap(), 128), "{token}");
        assert!(is_hex(token["jwt_key"].as_str().unwrap(), 128), "{token}");
        assert!(token["access_token_expiration"].is_f64(), "{token}");
        let created = token["created_at"].as_str().unwrap();
        assert!(
            created.ends_with("+00:00") && created.contains('T'),
            "{token}"
        );
    }
    let pyjwt = tokens
        .iter()
        .find(|t| t["id"] == fixture.pyjwt_token_id.as_str())
        .unwrap();
    assert_eq!(pyjwt["jwt_key"], fixture.pyjwt_jwt_key.as_str());
    assert_eq!(pyjwt["token"], LLAT_TOKEN);
    assert_eq!(pyjwt["token_type"], "long_lived_access_token");
    assert_eq!(pyjwt["client_name"], "PyJWT");
    // The four logins added a normal token each, for the CLI's client id.
    let logins = tokens
        .iter()
        .filter(|t| t["token_type"] == "normal" && t["client_id"] == super::CLI_CLIENT_ID)
        .count();
    assert_eq!(logins, 4, "{tokens:#?}");
    let credentials = auth["credentials"].as_array().unwrap();
    for username in ["test-user", "umlaut-user", "fritz", "long-user"] {
        assert!(
            credentials
                .iter()
                .any(|c| c["data"] == json!({"username": username})
                    && c["auth_provider_type"] == "homeassistant"
                    && c["auth_provider_id"].is_null()),
            "{username}: {credentials:#?}"
        );
    }
    assert!(tokens.iter().any(|t| t["id"] == SUPERVISOR_TOKEN_ID));
    // The browser's token was used: its usage is recorded as Home Assistant records it
    // (no address was given, so none is stored) and its 90-day expiry slid forward.
    let browser = tokens.iter().find(|t| t["id"] == BROWSER_TOKEN_ID).unwrap();
    let last_used = browser["last_used_at"].as_str().unwrap();
    assert!(last_used.ends_with("+00:00"), "{browser}");
    assert!(last_used > isoformat(now - 60).as_str(), "{browser}");
    assert!(browser["last_used_ip"].is_null(), "{browser}");
    let expire_at = browser["expire_at"].as_f64().unwrap();
    assert!(expire_at >= (now + 90 * 86_400) as f64, "{browser}");

    let provider = read_store(&home, "auth_provider.homeassistant");
    let entry = provider["users"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["username"] == "test-user")
        .unwrap();
    assert_eq!(keys(entry), ["username", "password"]);
    let usernames: Vec<&str> = provider["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["username"].as_str().unwrap())
        .collect();
    assert_eq!(
        usernames,
        ["test-user", "Fritz ", "long-user", "umlaut-user"]
    );
    assert!(
        entry["password"].as_str().unwrap().starts_with("JDJ"),
        "base64 of $2…"
    );
    let module = read_store(&home, "auth_module.totp");
    assert_eq!(module, json!({"users": {UMLAUT_ID: TOTP_SECRET}}));
}

#[test]
fn the_independent_jwt_matches_pyjwt() {
    // The test's own HS256 reproduces PyJWT's bytes, so tokens it mints are Home
    // Assistant's.
    let (iss, jwt_key, token, lifetime, iat) = pyjwt_long_lived_vector();
    let exp = iat + lifetime as u64;
    assert_eq!(mint_like_home_assistant(&iss, &jwt_key, iat, exp), token);
    assert_eq!(isoformat(1_700_000_000), "2023-11-14T22:13:20+00:00");
    assert_eq!(isoformat(951_782_400), "2000-02-29T00:00:00+00:00");
}
