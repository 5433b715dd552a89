//! A small bounded cache of the token ids of message contents.
//!
//! Every turn of a conversation sends the whole history again (the server
//! is stateless: system prompt, up to 20 earlier messages, the new one), so
//! without a cache the same texts are tokenized again on every turn — up
//! to 20 × 50,000 characters for a long thread. The cache keeps the ids of
//! recently seen contents; the new message of one turn is history in the
//! next, so a conversation's prompt is mostly cache hits after its first
//! turn.
//!
//! Keyed by the content alone: a content's tokens do not depend on its
//! role (contents are always tokenized as plain text, and the template's
//! own text around them is tokenized separately). The key is a hash with
//! a per-process random seed, and the stored content is compared on a hit,
//! so a collision can only cost a miss, never give one message another's
//! tokens.
//!
//! Bounded in entries and in bytes, least recently used evicted first. An
//! eviction scans the entries (at most [`MAX_ENTRIES`]), which costs far
//! less than tokenizing one message.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::Arc;

/// At most this many contents are kept (a dozen conversations' histories).
pub(crate) const MAX_ENTRIES: usize = 256;
/// At most this many bytes of contents and ids are kept. One maximal
/// message (50,000 characters of up to 4 bytes, plus its ids) is well
/// under a tenth of it.
pub(crate) const MAX_BYTES: usize = 8 << 20;

struct Entry {
    content: Box<str>,
    ids: Arc<[u32]>,
    /// The value of `clock` when the entry was last used.
    used: u64,
}

impl Entry {
    fn bytes(&self) -> usize {
        self.content.len() + std::mem::size_of_val(&*self.ids)
    }
}

/// See the module documentation.
pub(crate) struct TokenCache {
    entries: HashMap<u64, Entry>,
    hasher: RandomState,
    clock: u64,
    bytes: usize,
}

impl Default for TokenCache {
    fn default() -> Self {
        TokenCache {
            entries: HashMap::new(),
            hasher: RandomState::new(),
            clock: 0,
            bytes: 0,
        }
    }
}

impl TokenCache {
    /// The cached ids of `content`, marking it as recently used.
    pub(crate) fn get(&mut self, content: &str) -> Option<Arc<[u32]>> {
        let key = self.hasher.hash_one(content);
        self.clock += 1;
        let entry = self.entries.get_mut(&key)?;
        if &*entry.content != content {
            return None;
        }
        entry.used = self.clock;
        Some(entry.ids.clone())
    }

    /// Remembers the ids of `content`, evicting the least recently used
    /// entries beyond the bounds. A content too big for the cache on its
    /// own is not kept.
    pub(crate) fn insert(&mut self, content: &str, ids: Arc<[u32]>) {
        self.clock += 1;
        let entry = Entry {
            content: content.into(),
            ids,
            used: self.clock,
        };
        if entry.bytes() > MAX_BYTES {
            return;
        }
        self.bytes += entry.bytes();
        let key = self.hasher.hash_one(content);
        if let Some(replaced) = self.entries.insert(key, entry) {
            self.bytes -= replaced.bytes();
        }
        while self.entries.len() > MAX_ENTRIES || self.bytes > MAX_BYTES {
            let Some(oldest) = self
                .entries
                .iter()
                .min_by_key(|(_, entry)| entry.used)
                .map(|(&key, _)| key)
            else {
                break;
            };
            if let Some(evicted) = self.entries.remove(&oldest) {
                self.bytes -= evicted.bytes();
            }
        }
    }

    /// Forgets everything.
    pub(crate) fn clear(&mut self) {
        self.entries.clear();
        self.bytes = 0;
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.entries.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(n: u32) -> Arc<[u32]> {
        (0..n).collect()
    }

    #[test]
    fn hits_misses_and_least_recently_used_eviction() {
        let mut cache = TokenCache::default();
        assert!(cache.get("hello").is_none());
        cache.insert("hello", ids(2));
        assert_eq!(cache.get("hello").as_deref(), Some(&[0, 1][..]));
        for n in 0..MAX_ENTRIES {
            cache.insert(&format!("message {n}"), ids(1));
            // "hello" stays in use, so it is never the oldest.
            assert!(cache.get("hello").is_some());
        }
        assert_eq!(cache.len(), MAX_ENTRIES);
        assert!(cache.get("message 0").is_none(), "the oldest was evicted");
        assert!(cache.get("message 1").is_some());
    }

    #[test]
    fn bytes_are_bounded() {
        let mut cache = TokenCache::default();
        let big = "x".repeat(MAX_BYTES / 3);
        for n in 0..5 {
            cache.insert(&format!("{n}{big}"), ids(10));
        }
        assert!(cache.bytes <= MAX_BYTES);
        assert_eq!(cache.len(), 2);
        assert!(cache.get(&format!("4{big}")).is_some());
        // Too big on its own: not kept, nothing evicted for it.
        cache.insert(&"y".repeat(MAX_BYTES + 1), ids(1));
        assert_eq!(cache.len(), 2);
        cache.clear();
        assert_eq!((cache.len(), cache.bytes), (0, 0));
    }
}
