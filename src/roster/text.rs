//! Text helpers every layer shares: uploaded names made safe to show, "did you mean", a
//! quick trim, and a fast order of ids.

/// `str::trim` with a fast path for the common value, which starts and ends with printable
/// ASCII and so has nothing to trim (the engine trims every identifier and most values).
pub trait Trimmed {
    fn trimmed(&self) -> &str;
}

impl Trimmed for str {
    #[inline]
    fn trimmed(&self) -> &str {
        let printable = |b: &u8| (0x21..0x7f).contains(b);
        let b = self.as_bytes();
        if b.first().is_some_and(printable) && b.last().is_some_and(printable) {
            self
        } else {
            self.trim()
        }
    }
}

/// An uploaded name or value as it may appear in a line of `summary.txt`, an email or a log:
/// control characters (line breaks included) and Unicode format characters are shown as
/// escapes, so that no upload can write lines of its own, and the text is cut at 200
/// characters.
pub fn escape(s: &str) -> std::borrow::Cow<'_, str> {
    escape_upto(s, 200)
}

/// A whole message built from uploaded names (a note, an error, a detail): like [`escape`],
/// without the length cut, so nothing it says is lost.
pub fn escape_line(s: &str) -> std::borrow::Cow<'_, str> {
    escape_upto(s, usize::MAX)
}

/// The candidate whose name is nearest to `word` within two edits ("did you mean"), the
/// first of equals; each candidate is (name compared, what to return).
pub fn near_miss<K: AsRef<str>, T>(
    word: &str,
    candidates: impl IntoIterator<Item = (K, T)>,
) -> Option<T> {
    candidates
        .into_iter()
        .map(|(k, t)| (strsim::levenshtein(word, k.as_ref()), t))
        .filter(|&(d, _)| d <= 2)
        .min_by_key(|&(d, _)| d)
        .map(|(_, t)| t)
}

/// `s` with every character that is not [`is_plain`] shown as an escape, cut after `max`
/// characters (`...` marks the cut). Borrowed when nothing needs changing.
fn escape_upto(s: &str, max: usize) -> std::borrow::Cow<'_, str> {
    let mut chars = 0usize;
    if s.chars().all(|c| {
        chars += 1;
        is_plain(c)
    }) && chars <= max
    {
        return std::borrow::Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for (i, c) in s.chars().enumerate() {
        if i == max {
            out.push_str("...");
            break;
        }
        if is_plain(c) {
            out.push(c);
        } else {
            out.extend(c.escape_default());
        }
    }
    std::borrow::Cow::Owned(out)
}

/// A character that shows as itself on one line: no control characters (line breaks, escape
/// sequences) and no invisible format characters that reorder or hide text: the bidi marks,
/// embeddings, overrides and isolates (U+061C, U+200E-200F, U+202A-202E, U+2066-2069), the
/// zero-width and invisible ones (U+00AD, U+180E, U+200B-200D, U+2060-2064, U+206A-206F,
/// U+FEFF), the interlinear annotation marks that hide text (U+FFF9-FFFB), the tag characters
/// (U+E0001, U+E0020-E007F) and the line and paragraph separators (U+2028-2029).
pub fn is_plain(c: char) -> bool {
    !c.is_control()
        && !matches!(
            c,
            '\u{ad}'
                | '\u{61c}'
                | '\u{180e}'
                | '\u{200b}'..='\u{200f}'
                | '\u{2028}'..='\u{202e}'
                | '\u{2060}'..='\u{2064}'
                | '\u{2066}'..='\u{206f}'
                | '\u{feff}'
                | '\u{fff9}'..='\u{fffb}'
                | '\u{e0001}'
                | '\u{e0020}'..='\u{e007f}'
        )
}

/// Normalises a header name: case-insensitive, ignoring spaces and underscores.
pub fn norm_header(h: &str) -> String {
    h.chars()
        .filter(|c| !c.is_whitespace() && *c != '_')
        .flat_map(char::to_lowercase)
        .collect()
}

/// A header cell with no name: empty, or only spaces and underscores (nothing
/// [`norm_header`] keeps). Its column's values are not part of the roster: no export or API
/// could name them.
pub fn is_unnamed(h: &str) -> bool {
    h.chars().all(|c| c.is_whitespace() || c == '_')
}

/// The length of the prefix all `ids` share.
pub fn shared_prefix<'a>(ids: impl IntoIterator<Item = &'a [u8]>) -> usize {
    let mut ids = ids.into_iter();
    let Some(first) = ids.next() else {
        return 0;
    };
    ids.fold(first.len(), |n, id| {
        first[..n]
            .iter()
            .zip(id.iter())
            .take_while(|(a, b)| a == b)
            .count()
    })
}

/// Eight bytes of `id` after its first `skip`, big-endian, zero-padded: for ids that share
/// their first `skip` bytes and hold no NUL (the engine refuses NUL), a smaller word is a
/// smaller id, and equal words leave the order to the bytes after them.
pub fn sort_word(id: &[u8], skip: usize) -> u64 {
    let mut word = [0u8; 8];
    let rest = id.get(skip..).unwrap_or_default();
    let n = rest.len().min(8);
    word[..n].copy_from_slice(&rest[..n]);
    u64::from_be_bytes(word)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_sorted_by_their_words_are_sorted_by_their_bytes() {
        let ids: Vec<&[u8]> = vec![
            b"R0001",
            b"R000",
            b"R0001\x01",
            b"R00010000000",
            b"R0001000000",
            b"R00010000001",
            b"R0002",
            b"R001",
            b"R00",
            b"R00019999999z",
            b"R00019999999",
            b"R0",
        ];
        let shared = shared_prefix(ids.iter().copied());
        assert_eq!(shared, 2);
        let mut by_word = ids.clone();
        by_word.sort_by(|x, y| {
            sort_word(x, shared)
                .cmp(&sort_word(y, shared))
                .then_with(|| x.cmp(y))
        });
        let mut by_bytes = ids.clone();
        by_bytes.sort();
        assert_eq!(by_word, by_bytes);
        // Words alone already order ids that differ in their first eight bytes after the
        // shared prefix.
        assert!(sort_word(b"R0001", shared) < sort_word(b"R0002", shared));
        assert!(sort_word(b"R0", shared) < sort_word(b"R00", shared));
        assert_eq!(shared_prefix([]), 0);
        assert_eq!(shared_prefix([b"abc".as_slice(), b"abd"]), 2);
        assert_eq!(shared_prefix([b"abc".as_slice(), b""]), 0);
    }

    #[test]
    fn escape_shows_every_invisible_or_reordering_character() {
        assert_eq!(escape("L9 élèves שלום"), "L9 élèves שלום");
        assert_eq!(escape("a\u{61c}b"), "a\\u{61c}b");
        assert_eq!(
            escape("x\u{202e}y\u{2060}z\u{ad}"),
            "x\\u{202e}y\\u{2060}z\\u{ad}"
        );
        assert_eq!(escape("tag\u{e0041}"), "tag\\u{e0041}");
        assert_eq!(escape("line\nbreak\u{1b}[2J"), "line\\nbreak\\u{1b}[2J");
    }

    #[test]
    fn trimmed_is_str_trim() {
        for s in [
            "",
            " ",
            "a",
            " a",
            "a ",
            "\ta\r\n",
            "S0001",
            "\u{a0}S1",
            "S1\u{3000}",
            "\u{85}x\u{85}",
            "\u{1f}S1\u{1c}",
            "é",
            " é ",
            "a b",
            "\u{feff}a",
            "~",
            "!",
        ] {
            assert_eq!(s.trimmed(), s.trim(), "{s:?}");
        }
    }
}
