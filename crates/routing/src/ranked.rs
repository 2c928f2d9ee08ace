//! An ordered set that also answers "how many are ahead of this one?" in
//! well under a microsecond at 100,000 entries: queue positions for every
//! waiting contact. `BTreeSet` cannot count a range without walking it, so
//! this keeps sorted blocks of bounded size (the layout of Python's
//! `sortedcontainers`): find the block by binary search, count the blocks
//! before it, binary search inside it.

/// Blocks split when they reach twice this size.
const BLOCK: usize = 256;

#[derive(Debug, Clone)]
pub(crate) struct RankedSet<K> {
    blocks: Vec<Vec<K>>,
    len: usize,
}

impl<K: Ord + Copy> Default for RankedSet<K> {
    fn default() -> Self {
        RankedSet {
            blocks: Vec::new(),
            len: 0,
        }
    }
}

impl<K: Ord + Copy> RankedSet<K> {
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// The block that holds `key`, or would: the first whose last key is not
    /// below it (the last block for a key above every other).
    fn block_for(&self, key: &K) -> usize {
        let index = self
            .blocks
            .partition_point(|block| block.last().is_some_and(|last| last < key));
        index.min(self.blocks.len().saturating_sub(1))
    }

    /// Inserts `key`; returns false if it was already there.
    pub(crate) fn insert(&mut self, key: K) -> bool {
        if self.blocks.is_empty() {
            self.blocks.push(vec![key]);
            self.len = 1;
            return true;
        }
        let index = self.block_for(&key);
        let Some(block) = self.blocks.get_mut(index) else {
            return false;
        };
        let position = match block.binary_search(&key) {
            Ok(_) => return false,
            Err(position) => position,
        };
        block.insert(position, key);
        self.len += 1;
        if block.len() >= 2 * BLOCK {
            let upper = block.split_off(BLOCK);
            self.blocks.insert(index + 1, upper);
        }
        true
    }

    /// Removes `key`; returns false if it was not there.
    pub(crate) fn remove(&mut self, key: &K) -> bool {
        if self.blocks.is_empty() {
            return false;
        }
        let index = self.block_for(key);
        let Some(block) = self.blocks.get_mut(index) else {
            return false;
        };
        let Ok(position) = block.binary_search(key) else {
            return false;
        };
        block.remove(position);
        self.len -= 1;
        if block.is_empty() {
            self.blocks.remove(index);
        }
        true
    }

    /// How many keys sort before `key`, if it is in the set.
    pub(crate) fn rank(&self, key: &K) -> Option<usize> {
        if self.blocks.is_empty() {
            return None;
        }
        let index = self.block_for(key);
        let position = self.blocks.get(index)?.binary_search(key).ok()?;
        let before: usize = self.blocks.get(..index)?.iter().map(Vec::len).sum();
        Some(before + position)
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = &K> {
        self.blocks.iter().flatten()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    proptest! {
        #[test]
        fn matches_a_btreeset(ops in proptest::collection::vec((any::<bool>(), 0u32..2000), 0..3000)) {
            let mut ranked = RankedSet::default();
            let mut model = BTreeSet::new();
            for (insert, key) in ops {
                if insert {
                    prop_assert_eq!(ranked.insert(key), model.insert(key));
                } else {
                    prop_assert_eq!(ranked.remove(&key), model.remove(&key));
                }
                prop_assert_eq!(ranked.len(), model.len());
                let expected = model.iter().position(|k| *k == key);
                prop_assert_eq!(ranked.rank(&key), expected);
            }
            prop_assert!(ranked.iter().copied().eq(model.iter().copied()));
        }
    }
}
