//! Shared helpers: a store in a temp home, a stopped clock, and an RFC 4226/6238 code
//! generator written from the RFCs (own SHA-1, own HMAC), independent of the crate.

#![allow(dead_code, unreachable_pub, clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use chrono::{DateTime, TimeDelta, Utc};
use latch_mfa_totp::{TotpConfig, TotpModule};
use latch_models::{Clock, FixedClock, User, UserId};
use latch_store::{Change, Store, StoreOptions};
use tempfile::TempDir;

/// A time in the middle of a 30 s step (step 56_666_667 starts at 1_700_000_010).
pub const T0: i64 = 1_700_000_025;

pub struct Env {
    pub home: TempDir,
    pub store: Store,
    pub clock: Arc<FixedClock>,
    pub totp: TotpModule,
}

impl Env {
    pub fn now(&self) -> i64 {
        self.clock.now().timestamp()
    }

    pub fn advance(&self, seconds: i64) {
        self.clock.advance(TimeDelta::seconds(seconds));
    }

    pub async fn add_user(&self, name: Option<&str>) -> User {
        let mut user = User::new(name.map(str::to_owned));
        user.is_active = true;
        self.store
            .commit(vec![Change::PutUser(user.clone())])
            .await
            .unwrap();
        user
    }

    /// The code of the user's stored secret `offset` steps from now, computed by the
    /// independent generator below.
    pub fn code_for(&self, user: &UserId, offset: i64) -> String {
        let secret = self
            .store
            .totp_secret(user.as_str())
            .expect("user has a secret");
        let step = self.now().div_euclid(30) + offset;
        hotp(
            &base32_decode(secret.expose()),
            u64::try_from(step).unwrap(),
            6,
        )
    }
}

pub fn at(unix: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(unix, 0).unwrap()
}

pub fn env_with(config: TotpConfig) -> Env {
    let home = tempfile::tempdir().unwrap();
    env_in(home, config)
}

pub fn env() -> Env {
    env_with(TotpConfig::default())
}

/// Opens a store in `home` (which may hold fixture files already).
pub fn env_in(home: TempDir, config: TotpConfig) -> Env {
    let store = Store::open(home.path(), StoreOptions::default()).unwrap();
    let clock = Arc::new(FixedClock::new(at(T0)));
    let totp = TotpModule::new(config, store.clone(), clock.clone()).unwrap();
    Env {
        home,
        store,
        clock,
        totp,
    }
}

// ----- an independent RFC 4226 / RFC 6238 implementation -----

/// FIPS 180-4 SHA-1.
pub fn sha1(message: &[u8]) -> [u8; 20] {
    let mut h: [u32; 5] = [
        0x6745_2301,
        0xEFCD_AB89,
        0x98BA_DCFE,
        0x1032_5476,
        0xC3D2_E1F0,
    ];
    let mut data = message.to_vec();
    let bit_len = (message.len() as u64) * 8;
    data.push(0x80);
    while data.len() % 64 != 56 {
        data.push(0);
    }
    data.extend_from_slice(&bit_len.to_be_bytes());
    for block in data.chunks(64) {
        let mut w = [0u32; 80];
        for (i, word) in block.chunks(4).enumerate() {
            w[i] = u32::from_be_bytes([word[0], word[1], word[2], word[3]]);
        }
        for i in 16..80 {
            w[i] = (w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16]).rotate_left(1);
        }
        let [mut a, mut b, mut c, mut d, mut e] = h;
        for (i, wi) in w.iter().enumerate() {
            let (f, k) = match i {
                0..=19 => ((b & c) | (!b & d), 0x5A82_7999),
                20..=39 => (b ^ c ^ d, 0x6ED9_EBA1),
                40..=59 => ((b & c) | (b & d) | (c & d), 0x8F1B_BCDC),
                _ => (b ^ c ^ d, 0xCA62_C1D6),
            };
            let t = a
                .rotate_left(5)
                .wrapping_add(f)
                .wrapping_add(e)
                .wrapping_add(k)
                .wrapping_add(*wi);
            e = d;
            d = c;
            c = b.rotate_left(30);
            b = a;
            a = t;
        }
        for (hv, v) in h.iter_mut().zip([a, b, c, d, e]) {
            *hv = hv.wrapping_add(v);
        }
    }
    let mut out = [0u8; 20];
    for (i, v) in h.iter().enumerate() {
        out[i * 4..i * 4 + 4].copy_from_slice(&v.to_be_bytes());
    }
    out
}

/// RFC 2104 HMAC-SHA-1.
pub fn hmac_sha1(key: &[u8], message: &[u8]) -> [u8; 20] {
    let mut k = [0u8; 64];
    if key.len() > 64 {
        k[..20].copy_from_slice(&sha1(key));
    } else {
        k[..key.len()].copy_from_slice(key);
    }
    let mut inner: Vec<u8> = k.iter().map(|b| b ^ 0x36).collect();
    inner.extend_from_slice(message);
    let mut outer: Vec<u8> = k.iter().map(|b| b ^ 0x5c).collect();
    outer.extend_from_slice(&sha1(&inner));
    sha1(&outer)
}

/// RFC 4226 HOTP with dynamic truncation.
pub fn hotp(key: &[u8], counter: u64, digits: u32) -> String {
    let mac = hmac_sha1(key, &counter.to_be_bytes());
    let offset = usize::from(mac[19] & 0x0f);
    let bin = u32::from_be_bytes([
        mac[offset],
        mac[offset + 1],
        mac[offset + 2],
        mac[offset + 3],
    ]) & 0x7fff_ffff;
    let value = bin % 10u32.pow(digits);
    format!("{value:0width$}", width = digits as usize)
}

/// RFC 4648 base32 decoding, case-insensitive, padding optional (test helper).
pub fn base32_decode(s: &str) -> Vec<u8> {
    let mut out = Vec::new();
    let (mut acc, mut bits) = (0u64, 0u32);
    for c in s.trim_end_matches('=').chars() {
        let v = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
            .find(c.to_ascii_uppercase())
            .expect("base32 character") as u64;
        acc = (acc << 5) | v;
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    out
}
