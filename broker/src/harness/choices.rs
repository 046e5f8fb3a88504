//! Where the generators' random decisions come from: a seeded RNG, or a fuzzer's input bytes.
//!
//! Taking decisions from the fuzzer's bytes (rather than parsing the bytes as commands) makes
//! a coverage-guided fuzzer structure-aware for free: every mutation of the input is still a
//! valid-looking command sequence, and a shorter input is a simpler one.

/// A source of decisions. When a byte source runs dry every decision is 0, which every
/// generator maps to its simplest case, so generation always terminates.
pub trait Choices {
    /// Uniform-ish in `0..n` (0 when `n <= 1`).
    fn below(&mut self, n: usize) -> usize;
    /// True once a finite source is used up (a sequence generator stops adding steps).
    fn exhausted(&self) -> bool;

    /// True with probability `percent`/100.
    fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }

    fn byte(&mut self) -> u8 {
        self.below(256) as u8
    }

    /// One of `items` (which must not be empty).
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }

    /// Up to `max` random bytes.
    fn bytes(&mut self, max: usize) -> Vec<u8> {
        let n = self.below(max + 1);
        (0..n).map(|_| self.byte()).collect()
    }
}

/// Decisions read from a fuzzer's input: one byte for a choice among at most 256, four
/// otherwise.
#[derive(Debug)]
pub struct ByteChoices<'a> {
    data: &'a [u8],
}

impl<'a> ByteChoices<'a> {
    pub fn new(data: &'a [u8]) -> ByteChoices<'a> {
        ByteChoices { data }
    }

    /// The bytes not consumed yet (e.g. raw parser input after its settings).
    pub fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.data)
    }
}

impl Choices for ByteChoices<'_> {
    fn below(&mut self, n: usize) -> usize {
        if n <= 1 {
            return 0;
        }
        let width = if n <= 256 { 1 } else { 4 };
        let take = width.min(self.data.len());
        let (head, tail) = self.data.split_at(take);
        self.data = tail;
        let v = head.iter().fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
        v % n
    }

    fn exhausted(&self) -> bool {
        self.data.is_empty()
    }
}

/// Decisions from a seeded RNG: the same seed gives the same inputs.
#[derive(Debug)]
pub struct RngChoices<R> {
    rng: R,
}

impl<R: rand::RngCore> RngChoices<R> {
    pub fn new(rng: R) -> RngChoices<R> {
        RngChoices { rng }
    }
}

impl<R: rand::RngCore> Choices for RngChoices<R> {
    fn below(&mut self, n: usize) -> usize {
        if n <= 1 {
            0
        } else {
            (self.rng.next_u64() % n as u64) as usize
        }
    }

    fn exhausted(&self) -> bool {
        false
    }
}
