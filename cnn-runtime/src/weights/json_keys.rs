//! The keys of a JSON document as written: serde_json's `Value` keeps only
//! the last of repeated keys, so the JSON weights loader reads the keys of
//! the root object, and of each object directly under it, with this scanner
//! to find repeats and stray fields.
//!
//! Takes text serde_json has already accepted, so it only walks structure;
//! on anything malformed it gives `None` rather than panicking. Iterative:
//! nesting depth costs no stack.

/// For each key of the root object, in document order with repeats kept,
/// the key (decoded) and, if its value is an object, that object's keys
/// (otherwise none). `None` if `text` is not a JSON object.
pub(super) fn object_keys(text: &str) -> Option<Vec<(String, Vec<String>)>> {
    let mut scan = Scanner {
        bytes: text.as_bytes(),
        pos: 0,
    };
    let mut out = Vec::new();
    scan.object(|scan, key| {
        scan.skip_space();
        let mut fields = Vec::new();
        if scan.peek()? == b'{' {
            scan.object(|scan, field| {
                fields.push(field);
                scan.skip_value()
            })?;
        } else {
            scan.skip_value()?;
        }
        out.push((key, fields));
        Some(())
    })?;
    scan.skip_space();
    (scan.pos == scan.bytes.len()).then_some(out)
}

struct Scanner<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl Scanner<'_> {
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn skip_space(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.pos += 1;
        }
    }

    /// Consumes `byte` (after whitespace), or fails.
    fn expect(&mut self, byte: u8) -> Option<()> {
        self.skip_space();
        (self.peek()? == byte).then(|| self.pos += 1)
    }

    /// Consumes a string literal; returns its text with the quotes.
    fn raw_string(&mut self) -> Option<&[u8]> {
        let start = self.pos;
        self.expect(b'"')?;
        loop {
            match self.peek()? {
                b'"' => break,
                // The escaped character cannot end the string.
                b'\\' => self.pos += 2,
                _ => self.pos += 1,
            }
        }
        self.pos += 1;
        self.bytes.get(start..self.pos)
    }

    /// Consumes a string literal and decodes it (escapes and all).
    fn string(&mut self) -> Option<String> {
        let raw = self.raw_string()?;
        serde_json::from_slice(raw).ok()
    }

    /// Consumes an object, calling `each` with every key; `each` must
    /// consume the key's value.
    fn object(&mut self, mut each: impl FnMut(&mut Self, String) -> Option<()>) -> Option<()> {
        self.expect(b'{')?;
        self.skip_space();
        if self.peek()? == b'}' {
            self.pos += 1;
            return Some(());
        }
        loop {
            self.skip_space();
            let key = self.string()?;
            self.expect(b':')?;
            each(self, key)?;
            self.skip_space();
            match self.peek()? {
                b',' => self.pos += 1,
                b'}' => {
                    self.pos += 1;
                    return Some(());
                }
                _ => return None,
            }
        }
    }

    /// Consumes one value of any kind.
    fn skip_value(&mut self) -> Option<()> {
        let mut depth = 0usize;
        loop {
            self.skip_space();
            match self.peek()? {
                b'"' => {
                    self.raw_string()?;
                }
                b'{' | b'[' => {
                    depth += 1;
                    self.pos += 1;
                    continue;
                }
                b'}' | b']' => {
                    depth = depth.checked_sub(1)?;
                    self.pos += 1;
                }
                b',' | b':' if depth > 0 => {
                    self.pos += 1;
                    continue;
                }
                b',' | b':' => return None,
                _ => {
                    // A number or a literal: up to the next delimiter.
                    let start = self.pos;
                    while let Some(b) = self.peek() {
                        if matches!(b, b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r') {
                            break;
                        }
                        self.pos += 1;
                    }
                    if self.pos == start {
                        return None;
                    }
                }
            }
            if depth == 0 {
                return Some(());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::object_keys;

    fn keys(text: &str) -> Option<Vec<(String, Vec<String>)>> {
        object_keys(text)
    }

    fn owned(pairs: &[(&str, &[&str])]) -> Vec<(String, Vec<String>)> {
        pairs
            .iter()
            .map(|(k, fs)| (k.to_string(), fs.iter().map(|f| f.to_string()).collect()))
            .collect()
    }

    #[test]
    fn keys_as_written() {
        assert_eq!(keys("{}"), Some(vec![]));
        assert_eq!(keys(" { } \n"), Some(vec![]));
        assert_eq!(
            keys(r#"{"a": {"x": 1, "y": [1, {"z": 2}], "x": "}"}, "b": 3, "a": {}}"#),
            Some(owned(&[("a", &["x", "y", "x"]), ("b", &[]), ("a", &[])]))
        );
        // Escapes are decoded; quotes and brackets in strings are text.
        assert_eq!(
            keys(r#"{"\u0061\"{": {"[\\": null}, "c": "]}\"", "d": [[], {}, -1.5e3, true]}"#),
            Some(owned(&[("a\"{", &["[\\"]), ("c", &[]), ("d", &[])]))
        );
    }

    #[test]
    fn malformed_text_gives_none_not_a_panic() {
        for text in [
            "",
            "[]",
            "{",
            "{\"a\"",
            "{\"a\":",
            "{\"a\": 1",
            "{\"a\": 1,",
            "{\"a\": 1} x",
            "{\"a\": [}",
            "{\"a\": ]}",
            "{\"a\": \"\\",
            "{a: 1}",
            "{\"a\" 1}",
            "{\"a\": ,}",
            "{\"a\": {\"b\"}}",
        ] {
            assert_eq!(keys(text), None, "{text:?}");
        }
    }
}
