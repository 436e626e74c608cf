//! The seeds that are built from code rather than copied from a fixture: real frames, a
//! real handshake, real tokens and a real journal. `examples/seeds.rs` writes them into
//! `corpus/<target>/`; the committed files are its output plus the hand-made and copied
//! seeds (fixtures, the example configuration, URIs, policies).

use latch_daemon::{DaemonFrame, ResponsePayload};
use latch_ipc::frame;
use latch_ipc::handshake::{Auth, ClientHandshake, Hello, MAGIC, client_proof};
use latch_ipc::token::SessionToken;
use latch_models::{Group, GroupId, Policy, Secret, User, UserId};
use latch_protocol::{Event, Request, RequestFrame, Response, Sensitive};
use latch_store::Change;
use latch_token::encode_access_token;

use crate::must;

/// A seed: its target, its file name, its bytes.
pub type Seed = (&'static str, &'static str, Vec<u8>);

/// `[u32 BE length][payload]`.
fn framed(payload: &[u8]) -> Vec<u8> {
    let len = must(u32::try_from(payload.len()), "a seed frame's length");
    let mut out = len.to_be_bytes().to_vec();
    out.extend_from_slice(payload);
    out
}

fn encoded<T: serde::Serialize>(message: &T) -> Vec<u8> {
    must(frame::encode(message, usize::MAX), "encode a seed").to_vec()
}

fn with_control(control: u8, rest: &[u8]) -> Vec<u8> {
    let mut out = vec![control];
    out.extend_from_slice(rest);
    out
}

fn hello(version: u32, magic: [u8; 4]) -> Vec<u8> {
    framed(&encoded(&ClientHandshake::Hello(Hello {
        magic,
        version,
        client_nonce: [7; 32],
    })))
}

/// `[u32 LE length][u32 LE crc32][payload]`.
fn journal_frame(payload: &[u8]) -> Vec<u8> {
    let len = must(u32::try_from(payload.len()), "a journal frame's length");
    let mut out = len.to_le_bytes().to_vec();
    out.extend_from_slice(&crc32fast::hash(payload).to_le_bytes());
    out.extend_from_slice(payload);
    out
}

/// Every generated seed.
#[must_use]
pub fn seeds() -> Vec<Seed> {
    let mut seeds = Vec::new();

    // frame_decoder
    let requests = [
        RequestFrame::new(1, Request::Ping),
        RequestFrame::new(2, Request::Status),
        RequestFrame::new(
            3,
            Request::ValidateToken {
                access_token: Sensitive::new("eyJhbGciOiJIUzI1NiJ9.e30.c2ln"),
                remote_ip: None,
            },
        ),
    ];
    let mut request_wire = Vec::new();
    for r in &requests {
        request_wire.extend(framed(&must(r.encode(), "encode a request")));
    }
    seeds.push(("frame_decoder", "requests", with_control(1, &request_wire)));
    seeds.push((
        "frame_decoder",
        "requests-3-byte-reads",
        with_control(1 | (3 << 2), &request_wire),
    ));
    let mut server_wire = Vec::new();
    for f in [
        DaemonFrame::Response(ResponsePayload {
            id: 1,
            result: Ok(Response::Pong),
        }),
        DaemonFrame::Event(Event::UserAdded {
            user_id: "u1".into(),
        }),
        DaemonFrame::Lagged(9),
    ] {
        server_wire.extend(framed(&encoded(&f)));
    }
    seeds.push((
        "frame_decoder",
        "server-frames",
        with_control(1, &server_wire),
    ));
    let mut handshake_wire = hello(1, MAGIC);
    handshake_wire.extend(framed(&encoded(&ClientHandshake::Auth(Auth {
        client_proof: [9; 32],
    }))));
    seeds.push((
        "frame_decoder",
        "handshake",
        with_control(0, &handshake_wire),
    ));
    seeds.push((
        "frame_decoder",
        "4-gib-length",
        with_control(0, &[0xff, 0xff, 0xff, 0xff, 1, 2, 3]),
    ));
    seeds.push((
        "frame_decoder",
        "truncated",
        with_control(2, &[0, 0, 0, 9, 1, 2]),
    ));

    // handshake_server
    seeds.push((
        "handshake_server",
        "hello-answered",
        with_control(2, &hello(1, MAGIC)),
    ));
    seeds.push((
        "handshake_server",
        "hello-wrong-proof",
        with_control(0, &handshake_wire),
    ));
    seeds.push((
        "handshake_server",
        "hello-new-version",
        with_control(0, &hello(2, MAGIC)),
    ));
    seeds.push((
        "handshake_server",
        "hello-any-version-answered",
        with_control(3, &hello(7, MAGIC)),
    ));
    seeds.push((
        "handshake_server",
        "bad-magic",
        with_control(2, &hello(1, *b"HTTP")),
    ));
    let token = SessionToken::from_bytes(crate::ipc::TOKEN);
    let auth_first = framed(&encoded(&ClientHandshake::Auth(Auth {
        client_proof: client_proof(&token, &[0; 32], &[7; 32]),
    })));
    seeds.push((
        "handshake_server",
        "auth-first",
        with_control(0, &auth_first),
    ));

    // token_validation
    let key = crate::token::KEY;
    let iss = crate::token::ISS;
    let now = crate::token::NOW;
    let valid = encode_access_token(iss, now - 60, now + 1740, key);
    seeds.push((
        "token_validation",
        "valid",
        with_control(0, valid.as_bytes()),
    ));
    let expired = encode_access_token(iss, now - 7200, now - 5400, key);
    seeds.push((
        "token_validation",
        "expired",
        with_control(0, expired.as_bytes()),
    ));
    let other = encode_access_token(iss, now, now + 1800, b"another key");
    seeds.push((
        "token_validation",
        "other-key",
        with_control(0, other.as_bytes()),
    ));
    seeds.push((
        "token_validation",
        "signed-payload",
        with_control(
            1,
            format!(
                "{{\"iss\":\"{iss}\",\"iat\":{now}.5,\"exp\":{},\"nbf\":null}}",
                now + 60
            )
            .as_bytes(),
        ),
    ));
    seeds.push((
        "token_validation",
        "signed-header",
        with_control(
            2,
            format!(
                "{{\"alg\":\"HS256\",\"typ\":\"JWT\",\"kid\":\"x\"}}\n{{\"iss\":\"{iss}\",\"iat\":{now},\"exp\":{},\"aud\":\"a\"}}",
                now + 60
            )
            .as_bytes(),
        ),
    ));
    let mut minted = vec![3];
    minted.extend_from_slice(&(-30i64).to_le_bytes());
    minted.extend_from_slice(&1800i64.to_le_bytes());
    minted.extend_from_slice("id \"with\" ünïcode \\ and / slash".as_bytes());
    seeds.push(("token_validation", "minted", minted));

    // store_journal
    let mut user = User::new(Some("Paulus".into()));
    user.id = UserId::from("9a1c0f3b2e6d4c8a9b7e1f2d3c4b5a69");
    user.is_active = true;
    let group = Group {
        id: GroupId::from("5d2c8e1f0a9b4c7d8e6f1a2b3c4d5e6f"),
        name: Some("Kitchen".into()),
        policy: Policy::read_only(),
        system_generated: false,
    };
    let batch1 = serde_json::json!([{"seq": 1, "changes": [Change::PutGroup(group), Change::PutUser(user.clone())]}]);
    let batch2 = serde_json::json!([{"seq": 2, "changes": [
        Change::PutHaUser { username: "paulus".into(), password: Secret::new("JDJiJDEyJGFiYw==") },
        Change::PutTotpSecret { user_id: user.id.clone(), secret: Secret::new("JBSWY3DPEHPK3PXP") },
        Change::PutTotpState { user_id: user.id.clone(), last_step: Some(56_666_666), recovery_codes: vec![] },
    ]}]);
    let mut journal = journal_frame(batch1.to_string().as_bytes());
    journal.extend(journal_frame(batch2.to_string().as_bytes()));
    seeds.push(("store_journal", "two-batches", with_control(0, &journal)));
    let checkpoint = serde_json::json!({"checkpoint": 2, "files": {
        "auth": null, "auth_provider.homeassistant": null,
        "auth_module.totp": null, "latch.auth_module.totp": null}});
    let mut with_checkpoint = journal.clone();
    with_checkpoint.extend(journal_frame(checkpoint.to_string().as_bytes()));
    seeds.push((
        "store_journal",
        "checkpoint",
        with_control(0, &with_checkpoint),
    ));
    let mut torn = journal.clone();
    torn.extend_from_slice(&[40, 0, 0, 0, 1, 2, 3, 4, b'[']);
    seeds.push(("store_journal", "torn-tail", with_control(0, &torn)));
    let remove = serde_json::json!([{"seq": 3, "changes": [Change::RemoveUser(user.id.clone())]}]);
    let mut unchecked = journal;
    unchecked.extend(journal_frame(remove.to_string().as_bytes()));
    unchecked[4..8].copy_from_slice(&[0; 4]);
    seeds.push((
        "store_journal",
        "fixed-up-checksums",
        with_control(1, &unchecked),
    ));

    seeds
}
