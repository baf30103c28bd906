//! Random ids of records (apps, calls, web calls, tokens): a leaf, so the layers that
//! mint ids need not reach into the store for them.

/// A random id `<prefix>-<14 base-36 characters>`, e.g. `ap-3k9x…`.
pub fn new_id(prefix: &str) -> String {
    const ALPHABET: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let bytes: [u8; 14] = rand::random();
    let tail: String = bytes
        .iter()
        .map(|b| ALPHABET[*b as usize % ALPHABET.len()] as char)
        .collect();
    format!("{prefix}-{tail}")
}

#[cfg(test)]
mod tests {
    #[test]
    fn ids_carry_their_prefix_and_differ() {
        let (a, b) = (super::new_id("fc"), super::new_id("fc"));
        assert!(a.starts_with("fc-") && a.len() == 17, "{a}");
        assert_ne!(a, b);
    }
}
