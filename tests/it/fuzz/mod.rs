//! Fuzzed inputs (issue 18): the file readers, the table page parameters, the read-only SQL
//! endpoint, the JSON bodies of row appends and predictions, and bearer tokens.
//!
//! Each target is a proptest strategy run by [`fuzz`] in rounds until a time budget is spent:
//! coverage-free fuzzing on stable Rust. Mutating targets start from a committed seed corpus
//! (`tests/fuzz/corpus/<target>/`), run every entry as it is, then mutate entries (bit flips,
//! tokens the parsers care about inserted, bytes deleted or repeated, entries spliced together).
//! A failure is shrunk by proptest and reported with the seed that replays it.
//!
//! ```sh
//! cargo test --test it fuzz                                           # CI: a few hundred per target
//! STRATA_FUZZ_SECONDS=60 cargo test --release --test it fuzz -- --nocapture --test-threads 1
//! STRATA_FUZZ_SEED=<seed> cargo test --test it fuzz_<target>          # replay a printed seed
//! ```

mod http;
mod readers;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestCaseError, TestRng, TestRunner};

/// Cases per proptest round; the budget is checked between rounds.
const ROUND_CASES: u32 = 256;

/// Runs `test` on values of `strategy`: `ci_rounds` rounds of [`ROUND_CASES`] cases, or rounds
/// until `STRATA_FUZZ_SECONDS` have passed when that is set. Prints the inputs tried per second;
/// panics with the seed and the shrunk input on the first failure.
pub(crate) fn fuzz<S: Strategy>(
    target: &str,
    ci_rounds: u32,
    strategy: S,
    test: impl Fn(S::Value) -> Result<(), TestCaseError>,
) -> u64 {
    let seed: u64 = match std::env::var("STRATA_FUZZ_SEED") {
        Ok(s) => s.parse().expect("STRATA_FUZZ_SEED must be an integer"),
        Err(_) => rand_seed(),
    };
    let budget = std::env::var("STRATA_FUZZ_SECONDS")
        .ok()
        .map(|s| Duration::from_secs(s.parse().expect("STRATA_FUZZ_SECONDS: whole seconds")));
    let started = Instant::now();
    let mut tried = 0u64;
    for round in 0u64.. {
        let done = match budget {
            Some(budget) => started.elapsed() >= budget,
            None => round >= u64::from(ci_rounds),
        };
        if done {
            break;
        }
        let mut rng_seed = [0u8; 32];
        rng_seed[..8].copy_from_slice(&seed.to_le_bytes());
        rng_seed[8..16].copy_from_slice(&round.to_le_bytes());
        let config = Config {
            cases: ROUND_CASES,
            failure_persistence: None,
            // Shrinking a failure found by a long run must not take as long again.
            max_shrink_time: 60_000,
            ..Config::default()
        };
        let rng = TestRng::from_seed(RngAlgorithm::ChaCha, &rng_seed);
        let mut runner = TestRunner::new_with_rng(config, rng);
        if let Err(failure) = runner.run(&strategy, &test) {
            panic!(
                "fuzz {target} failed (replay: STRATA_FUZZ_SEED={seed}, round {round}): {failure}"
            );
        }
        tried += u64::from(ROUND_CASES);
    }
    let seconds = started.elapsed().as_secs_f64();
    eprintln!(
        "fuzz {target}: {tried} inputs in {seconds:.1} s ({:.0}/s), seed {seed}",
        tried as f64 / seconds.max(1e-9)
    );
    tried
}

fn rand_seed() -> u64 {
    use std::hash::{BuildHasher, RandomState};
    RandomState::new().hash_one(Instant::now())
}

/// The committed seed inputs of `target`, in file-name order.
pub(crate) fn corpus(target: &str) -> Vec<Vec<u8>> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fuzz/corpus")
        .join(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .collect();
    files.sort();
    let entries: Vec<Vec<u8>> = files.iter().map(|f| std::fs::read(f).unwrap()).collect();
    assert!(!entries.is_empty(), "{}: no seed inputs", dir.display());
    entries
}

/// One edit of a seed input.
#[derive(Debug, Clone)]
enum Mutation {
    FlipBit {
        at: usize,
        bit: u8,
    },
    Insert {
        at: usize,
        token: &'static [u8],
    },
    Delete {
        at: usize,
        len: usize,
    },
    Repeat {
        at: usize,
        len: usize,
        times: usize,
    },
    Splice {
        at: usize,
        other: usize,
        from: usize,
    },
}

/// Byte strings the readers and parsers give meaning to.
const TOKENS: &[&[u8]] = &[
    b"\n",
    b"\r\n",
    b"\r",
    b"\"",
    b"\"\"",
    b",",
    b"::",
    b":",
    b"\t",
    b" ",
    b"\xff",
    b"\xc3",
    b"\xe9",
    b"\xef\xbb\xbf",
    b"\0",
    b"{",
    b"}",
    b"[",
    b"]",
    b"null",
    b"true",
    b"-",
    b"0",
    b"99999999999999999999999",
    b"1e400",
    b"NaN",
    b"-inf",
    b"2026-02-30",
    b"\\",
    b"\\u0000",
    b"\"a\":",
    b"%",
    b"'",
    b";",
    b"..",
    b"/",
    b"%2F",
    b"|",
];

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), 0u8..8).prop_map(|(at, bit)| Mutation::FlipBit { at, bit }),
        (any::<usize>(), prop::sample::select(TOKENS))
            .prop_map(|(at, token)| Mutation::Insert { at, token }),
        (any::<usize>(), 1usize..16).prop_map(|(at, len)| Mutation::Delete { at, len }),
        (any::<usize>(), 1usize..24, 1usize..8).prop_map(|(at, len, times)| Mutation::Repeat {
            at,
            len,
            times
        }),
        (any::<usize>(), any::<usize>(), any::<usize>())
            .prop_map(|(at, other, from)| Mutation::Splice { at, other, from }),
    ]
}

/// A seed input from `corpus` with up to `max_edits` mutations applied (none: the seed itself).
pub(crate) fn mutated(corpus: Vec<Vec<u8>>, max_edits: usize) -> impl Strategy<Value = Vec<u8>> {
    let count = corpus.len();
    (0..count, prop::collection::vec(mutation(), 0..=max_edits)).prop_map(move |(pick, edits)| {
        let mut bytes = corpus[pick].clone();
        for edit in edits {
            apply(&mut bytes, &edit, &corpus);
        }
        bytes
    })
}

fn apply(bytes: &mut Vec<u8>, edit: &Mutation, corpus: &[Vec<u8>]) {
    let at = |i: usize, len: usize| if len == 0 { 0 } else { i % (len + 1) };
    match *edit {
        Mutation::FlipBit { at: i, bit } => {
            if !bytes.is_empty() {
                let i = i % bytes.len();
                bytes[i] ^= 1 << bit;
            }
        }
        Mutation::Insert { at: i, token } => {
            let i = at(i, bytes.len());
            bytes.splice(i..i, token.iter().copied());
        }
        Mutation::Delete { at: i, len } => {
            let i = at(i, bytes.len());
            let end = (i + len).min(bytes.len());
            bytes.drain(i..end);
        }
        Mutation::Repeat { at: i, len, times } => {
            let i = at(i, bytes.len());
            let end = (i + len).min(bytes.len());
            let piece = bytes[i..end].to_vec();
            for _ in 0..times {
                bytes.splice(end..end, piece.iter().copied());
            }
        }
        Mutation::Splice { at: i, other, from } => {
            let donor = &corpus[other % corpus.len()];
            let from = at(from, donor.len());
            let i = at(i, bytes.len());
            bytes.truncate(i);
            bytes.extend_from_slice(&donor[from..]);
        }
    }
}
