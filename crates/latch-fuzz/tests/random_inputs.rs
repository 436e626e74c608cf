//! The fuzz targets on stable, as proptests: random bytes, and committed seeds with a few
//! bytes overwritten, inserted or cut. A short, repeatable stand-in for the fuzzer that CI
//! runs on every change (`cargo xtask fuzz` is the long search).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fs;
use std::path::Path;
use std::sync::OnceLock;

use proptest::prelude::*;

/// Every committed seed, by target index (read once).
fn seeds() -> &'static [Vec<Vec<u8>>] {
    static SEEDS: OnceLock<Vec<Vec<Vec<u8>>>> = OnceLock::new();
    SEEDS.get_or_init(read_seeds)
}

fn read_seeds() -> Vec<Vec<Vec<u8>>> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
    latch_fuzz::TARGETS
        .iter()
        .map(|(name, _)| {
            let mut files: Vec<_> = fs::read_dir(root.join(name))
                .map(|dir| dir.map(|e| e.unwrap().path()).collect())
                .unwrap_or_default();
            files.sort();
            files.iter().map(|f| fs::read(f).unwrap()).collect()
        })
        .collect()
}

/// An edit to a seed: at a position (a fraction of its length), overwrite, insert or cut.
#[derive(Clone, Debug)]
enum Edit {
    Overwrite(f64, Vec<u8>),
    Insert(f64, Vec<u8>),
    Cut(f64, usize),
}

fn edit() -> impl Strategy<Value = Edit> {
    let bytes = prop::collection::vec(any::<u8>(), 1..8);
    prop_oneof![
        (0.0..1.0f64, bytes.clone()).prop_map(|(at, b)| Edit::Overwrite(at, b)),
        (0.0..1.0f64, bytes).prop_map(|(at, b)| Edit::Insert(at, b)),
        (0.0..1.0f64, 1..16usize).prop_map(|(at, n)| Edit::Cut(at, n)),
    ]
}

fn apply(mut data: Vec<u8>, edit: &Edit) -> Vec<u8> {
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss
    )]
    let at = |f: f64, len: usize| ((len as f64) * f) as usize;
    match edit {
        Edit::Overwrite(f, bytes) => {
            let start = at(*f, data.len());
            for (i, b) in bytes.iter().enumerate() {
                if let Some(slot) = data.get_mut(start + i) {
                    *slot = *b;
                }
            }
        }
        Edit::Insert(f, bytes) => {
            let start = at(*f, data.len()).min(data.len());
            data.splice(start..start, bytes.iter().copied());
        }
        Edit::Cut(f, n) => {
            let start = at(*f, data.len()).min(data.len());
            let end = (start + n).min(data.len());
            data.drain(start..end);
        }
    }
    data
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn every_target_takes_random_bytes(
        target in 0..latch_fuzz::TARGETS.len(),
        data in prop::collection::vec(any::<u8>(), 0..600),
    ) {
        (latch_fuzz::TARGETS[target].1)(&data);
    }

    #[test]
    fn every_target_takes_its_seeds_edited(
        target in 0..latch_fuzz::TARGETS.len(),
        pick in any::<prop::sample::Index>(),
        edits in prop::collection::vec(edit(), 1..4),
    ) {
        let seeds = seeds();
        let of_target = &seeds[target];
        prop_assume!(!of_target.is_empty());
        let mut data = of_target[pick.index(of_target.len())].clone();
        for e in &edits {
            data = apply(data, e);
        }
        (latch_fuzz::TARGETS[target].1)(&data);
    }
}
