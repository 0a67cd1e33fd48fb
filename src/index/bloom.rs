//! A Bloom filter over a segment's trace ids: trace fetch skips segments
//! whose filter says "absent" without touching their trace table. 10 bits
//! per id and 7 probes give about 1% false positives.

use super::codec::{Reader, Writer};
use crate::error::{Error, Result};
use crate::model::TraceId;

const BITS_PER_ID: usize = 10;
const PROBES: u32 = 7;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Bloom {
    words: Vec<u64>,
}

fn hashes(id: &TraceId) -> (u64, u64) {
    let h = xxhash_rust::xxh3::xxh3_128(&id.0);
    (h as u64, ((h >> 64) as u64) | 1)
}

impl Bloom {
    pub fn from_ids<'a>(ids: impl ExactSizeIterator<Item = &'a TraceId>) -> Bloom {
        let nbits = (ids.len() * BITS_PER_ID).max(64);
        let mut b = Bloom {
            words: vec![0; nbits.div_ceil(64)],
        };
        for id in ids {
            b.insert(id);
        }
        b
    }

    fn bits(&self) -> u64 {
        self.words.len() as u64 * 64
    }

    fn insert(&mut self, id: &TraceId) {
        let (h1, h2) = hashes(id);
        let m = self.bits();
        for i in 0..PROBES {
            let bit = h1.wrapping_add(u64::from(i).wrapping_mul(h2)) % m;
            if let Some(w) = self.words.get_mut((bit / 64) as usize) {
                *w |= 1 << (bit % 64);
            }
        }
    }

    pub fn may_contain(&self, id: &TraceId) -> bool {
        let m = self.bits();
        if m == 0 {
            return false;
        }
        let (h1, h2) = hashes(id);
        (0..PROBES).all(|i| {
            let bit = h1.wrapping_add(u64::from(i).wrapping_mul(h2)) % m;
            self.words
                .get((bit / 64) as usize)
                .is_some_and(|w| w & (1 << (bit % 64)) != 0)
        })
    }

    pub fn encode(&self, w: &mut Writer) {
        w.u32(self.words.len() as u32);
        for x in &self.words {
            w.u64(*x);
        }
    }

    pub fn decode(r: &mut Reader) -> Result<Bloom> {
        let n = r.count(8)?;
        if n == 0 {
            return Err(Error::Corrupt("index: empty bloom filter".into()));
        }
        let words = (0..n).map(|_| r.u64()).collect::<Result<Vec<u64>>>()?;
        Ok(Bloom { words })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_false_negatives_and_few_false_positives() {
        let ids: Vec<TraceId> = (0u32..1000)
            .map(|i| TraceId(xxhash_rust::xxh3::xxh3_128(&i.to_le_bytes()).to_le_bytes()))
            .collect();
        let b = Bloom::from_ids(ids.iter());
        assert!(ids.iter().all(|id| b.may_contain(id)));
        let fp = (5000u32..15000)
            .filter(|i| {
                b.may_contain(&TraceId(
                    xxhash_rust::xxh3::xxh3_128(&i.to_le_bytes()).to_le_bytes(),
                ))
            })
            .count();
        assert!(fp < 300, "false positives {fp}/10000");
    }
}
