//! Prompt lookup: draft the tokens that followed the most recent earlier
//! occurrence of the text's last few tokens. Text that repeats its input
//! (edits, renames, quotes) continues the way it did before, and the
//! model only has to confirm it.

/// Longest n-gram matched; shorter ones are tried when it is not found.
const NGRAM_MAX: usize = 3;

/// Up to `max` tokens that followed the latest earlier match of the last
/// `n` tokens of `history`, trying `n` from 3 down to 1.
pub(crate) fn draft(history: &[u32], max: usize) -> Vec<u32> {
    if max == 0 {
        return Vec::new();
    }
    let len = history.len();
    for n in (1..=NGRAM_MAX.min(len.saturating_sub(1))).rev() {
        let tail = &history[len - n..];
        // Latest match first; a match must end before the tail starts.
        for start in (0..len - n).rev() {
            if &history[start..start + n] == tail {
                let from = start + n;
                let to = (from + max).min(len);
                if to > from {
                    return history[from..to].to_vec();
                }
            }
        }
    }
    Vec::new()
}

#[cfg(test)]
mod tests {
    use super::draft;

    #[test]
    fn drafts_what_followed_the_latest_match() {
        //        0  1  2  3  4  5  6  7  8  9
        let h = [1, 2, 3, 9, 8, 1, 2, 3, 7, 1];
        // Tail [3, 7, 1]? not seen before; [7, 1] no; [1] at 5 -> [2, 3, 7].
        assert_eq!(draft(&h, 3), vec![2, 3, 7]);
        let h = [5, 6, 7, 8, 5, 6, 7];
        assert_eq!(draft(&h, 4), vec![8, 5, 6, 7]);
        assert_eq!(draft(&h, 1), vec![8]);
        assert!(draft(&[1, 2, 3], 4).is_empty());
        assert!(draft(&h, 0).is_empty());
    }
}
