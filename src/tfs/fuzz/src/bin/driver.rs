//! A plain-Rust random-mutation fuzzer for stable toolchains: mutates the
//! corpus of a target (bit flips, byte writes, inserts, deletes, splices),
//! runs the target under `catch_unwind`, and saves inputs that panic to
//! `artifacts/<target>/`.
//!
//! Usage: driver <log_replay|manifest> [iterations] [seed]

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::PathBuf;

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

fn mutate(rng: &mut Rng, input: &mut Vec<u8>, corpus: &[Vec<u8>]) {
    for _ in 0..1 + rng.below(4) {
        match rng.below(6) {
            0 if !input.is_empty() => {
                let i = rng.below(input.len());
                input[i] ^= 1 << rng.below(8);
            }
            1 if !input.is_empty() => {
                let i = rng.below(input.len());
                input[i] = [0, 1, 2, 3, 4, 5, 0x7f, 0x80, 0xff, b'(', b')', b':'][rng.below(12)];
            }
            2 => {
                let i = rng.below(input.len() + 1);
                input.insert(i, rng.next() as u8);
            }
            3 if !input.is_empty() => {
                let i = rng.below(input.len());
                let n = 1 + rng.below(8.min(input.len() - i));
                input.drain(i..i + n);
            }
            4 if !corpus.is_empty() => {
                let other = &corpus[rng.below(corpus.len())];
                if !other.is_empty() {
                    let a = rng.below(other.len());
                    let b = a + rng.below(other.len() - a);
                    let i = rng.below(input.len() + 1);
                    input.splice(i..i, other[a..b].iter().copied());
                }
            }
            _ => {
                let i = rng.below(input.len() + 1);
                input.truncate(i);
            }
        }
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let target = args.get(1).map(String::as_str).unwrap_or("log_replay");
    let iterations: u64 = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(100_000);
    let seed: u64 = args
        .get(3)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x9e37_79b9_7f4a_7c15);
    let run: fn(&[u8]) = match target {
        "log_replay" => cairn_tfs::fuzz_targets::log_replay,
        "manifest" => cairn_tfs::fuzz_targets::manifest,
        other => {
            eprintln!("unknown target {other}; use log_replay or manifest");
            std::process::exit(2);
        }
    };
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let mut corpus: Vec<Vec<u8>> = std::fs::read_dir(dir.join("corpus").join(target))
        .map(|rd| {
            rd.filter_map(Result::ok)
                .filter_map(|e| std::fs::read(e.path()).ok())
                .collect()
        })
        .unwrap_or_default();
    if corpus.is_empty() {
        corpus.push(Vec::new());
    }
    std::panic::set_hook(Box::new(|_| {}));
    let mut rng = Rng(seed | 1);
    let mut crashes = 0;
    for i in 0..iterations {
        let mut input = corpus[rng.below(corpus.len())].clone();
        mutate(&mut rng, &mut input, &corpus);
        if catch_unwind(AssertUnwindSafe(|| run(&input))).is_err() {
            crashes += 1;
            let out = dir.join("artifacts").join(target);
            let _ = std::fs::create_dir_all(&out);
            let path = out.join(format!("crash-{seed:x}-{i}"));
            let _ = std::fs::write(&path, &input);
            eprintln!("panic on input saved to {}", path.display());
        }
        if i % 10_000 == 0 {
            eprintln!("{target}: {i} runs, {crashes} crashes");
        }
    }
    eprintln!("{target}: {iterations} runs, {crashes} crashes");
    if crashes > 0 {
        std::process::exit(1);
    }
}
