//! Text helpers every layer shares: uploaded names made safe to show, "did you mean", and a
//! quick trim.

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
/// sequences) and no invisible format characters that reorder or hide text.
fn is_plain(c: char) -> bool {
    !c.is_control()
        && !matches!(c, '\u{200b}'..='\u{200f}' | '\u{2028}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{feff}')
}

/// Normalises a header name: case-insensitive, ignoring spaces and underscores.
pub fn norm_header(h: &str) -> String {
    h.chars()
        .filter(|c| !c.is_whitespace() && *c != '_')
        .flat_map(char::to_lowercase)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

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
