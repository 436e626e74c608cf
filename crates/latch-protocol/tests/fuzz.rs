//! Property tests over bytes a peer controls: decoding never panics, whatever arrives.

// Test helpers outside `#[test]` functions unwrap too; `allow-unwrap-in-tests` does not
// reach them.
#![allow(clippy::unwrap_used)]

mod common;

use latch_protocol::{RequestFrame, ServerFrame};
use proptest::prelude::*;

fn valid_encodings() -> Vec<Vec<u8>> {
    let mut all: Vec<Vec<u8>> = common::requests()
        .into_iter()
        .map(|r| RequestFrame::new(42, r).encode().unwrap())
        .collect();
    all.extend(common::server_frames().iter().map(|f| f.encode().unwrap()));
    all
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2_000))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = postcard::from_bytes::<RequestFrame>(&bytes);
        let _ = postcard::from_bytes::<ServerFrame>(&bytes);
        let request = RequestFrame::decode(&bytes);
        let server = ServerFrame::decode(&bytes);
        // Whatever decodes survives a round trip unchanged.
        match request {
            Ok(frame) => {
                prop_assert_eq!(RequestFrame::decode(&frame.encode().unwrap()).unwrap(), frame);
            }
            Err(e) => {
                // Any answerable error answers with a frame that decodes.
                if let Some(reply) = e.reply() {
                    prop_assert_eq!(ServerFrame::decode(&reply.encode().unwrap()).unwrap(), reply);
                }
            }
        }
        if let Ok(frame) = server {
            prop_assert_eq!(ServerFrame::decode(&frame.encode().unwrap()).unwrap(), frame);
        }
    }

    #[test]
    fn mutated_valid_frames_never_panic(
        pick in any::<prop::sample::Index>(),
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
        cut in any::<prop::sample::Index>(),
    ) {
        let encodings = valid_encodings();
        let mut bytes = pick.get(&encodings).clone();
        for (at, value) in edits {
            let i = at.index(bytes.len());
            bytes[i] = value;
        }
        let keep = cut.index(bytes.len() + 1);
        bytes.truncate(keep);
        let _ = RequestFrame::decode(&bytes);
        let _ = ServerFrame::decode(&bytes);
        let _ = RequestFrame::peek_id(&bytes);
    }

    #[test]
    fn huge_length_prefixes_do_not_allocate_unboundedly(id in any::<u64>(), len in any::<u32>()) {
        // A frame claiming a huge list with almost no data behind it: SetUserGroups (22)
        // with `len` group ids. It fails cleanly instead of reserving `len` strings.
        let mut bytes = postcard::to_stdvec(&(id, 22_u32, "u1", len)).unwrap();
        bytes.extend_from_slice(&[1, b'g']);
        prop_assert!(RequestFrame::decode(&bytes).is_err() || len == 1);
    }
}
