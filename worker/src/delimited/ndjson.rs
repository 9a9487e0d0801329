//! Field extraction from NDJSON records: one JSON object per line, fields by
//! name, nested fields by a dotted path (`req.latency_ms`).
//!
//! A small hand-written scanner rather than `serde_json`: it walks each
//! object once, compares keys as borrowed bytes, descends only into the
//! objects a wanted path goes through, and skips every other value without
//! building it. The wanted fields come out as spans into a reused buffer,
//! exactly the shape the delimited splitter produces, so the records go on
//! into the same [`Aggregator`](super::aggregator::Aggregator).
//!
//! Values: a string gives its unescaped text; a number, `true` or `false`
//! its text; `null` and a missing field give an empty field (a null); an
//! object or array gives its JSON text.

use memchr::memchr2;

use super::scan::Span;

/// Extracts the fields at fixed dotted paths from JSON object records.
pub(crate) struct FieldExtractor {
    /// Each wanted path, split at dots.
    paths: Vec<Vec<Vec<u8>>>,
    /// The extracted text of the current record.
    pub(crate) buf: Vec<u8>,
    /// One span into `buf` per path, in order; empty for null/missing.
    pub(crate) spans: Vec<Span>,
    /// Candidate paths, reused across levels.
    scratch: Vec<usize>,
}

/// Why a line is not a JSON object this scanner reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct JsonError {
    /// Byte offset within the line.
    pub(crate) at: usize,
    /// What was expected.
    pub(crate) what: &'static str,
}

type Parse<T> = Result<T, JsonError>;

/// Nesting deeper than this is refused (no unbounded recursion on input).
const MAX_DEPTH: usize = 64;

impl FieldExtractor {
    /// An extractor for `names` (dotted paths).
    pub(crate) fn new(names: &[String]) -> Self {
        FieldExtractor {
            paths: names
                .iter()
                .map(|n| n.split('.').map(|p| p.as_bytes().to_vec()).collect())
                .collect(),
            buf: Vec::new(),
            spans: vec![(0, 0); names.len()],
            scratch: Vec::new(),
        }
    }

    /// Extracts the wanted fields of one record (a line without its
    /// newline) into `self.buf` / `self.spans`.
    pub(crate) fn extract(&mut self, line: &[u8]) -> Parse<()> {
        self.buf.clear();
        for s in &mut self.spans {
            *s = (0, 0);
        }
        let mut pos = skip_ws(line, 0);
        if line.get(pos) != Some(&b'{') {
            return Err(JsonError {
                at: pos,
                what: "a JSON object (`{`) at the start of the record",
            });
        }
        let candidates: Vec<usize> = (0..self.paths.len()).collect();
        pos = self.object(line, pos, &candidates, 0)?;
        pos = skip_ws(line, pos);
        if pos != line.len() {
            return Err(JsonError {
                at: pos,
                what: "the end of the record after the object",
            });
        }
        Ok(())
    }

    /// Reads the object at `line[pos] == b'{'`; returns the position after
    /// it. `candidates` are the paths whose first `depth` parts led here.
    fn object(
        &mut self,
        line: &[u8],
        pos: usize,
        candidates: &[usize],
        depth: usize,
    ) -> Parse<usize> {
        if depth >= MAX_DEPTH {
            return Err(JsonError {
                at: pos,
                what: "less deeply nested objects",
            });
        }
        let mut pos = skip_ws(line, pos + 1);
        if line.get(pos) == Some(&b'}') {
            return Ok(pos + 1);
        }
        loop {
            if line.get(pos) != Some(&b'"') {
                return Err(JsonError {
                    at: pos,
                    what: "a string key",
                });
            }
            let (key_start, key_end, escaped) = string_bounds(line, pos)?;
            pos = skip_ws(line, key_end + 1);
            if line.get(pos) != Some(&b':') {
                return Err(JsonError {
                    at: pos,
                    what: "`:`",
                });
            }
            pos = skip_ws(line, pos + 1);
            let raw_key = line.get(key_start..key_end).unwrap_or_default();
            let mut unescaped = Vec::new();
            let key: &[u8] = if escaped {
                unescape(raw_key, &mut unescaped);
                &unescaped
            } else {
                raw_key
            };
            // Paths that go through this key.
            let mut here = std::mem::take(&mut self.scratch);
            here.clear();
            here.extend(candidates.iter().copied().filter(|&i| {
                self.paths
                    .get(i)
                    .and_then(|p| p.get(depth))
                    .is_some_and(|part| part.as_slice() == key)
            }));
            let end = if here.is_empty() {
                skip_value(line, pos, depth)?
            } else {
                let (ends_here, deeper): (Vec<usize>, Vec<usize>) = here
                    .iter()
                    .partition(|&&i| self.paths.get(i).map_or(0, Vec::len) == depth + 1);
                // (A path and a longer one through the same object: read
                // inside, then capture the object's text too.)
                let end = if !deeper.is_empty() && line.get(pos) == Some(&b'{') {
                    self.object(line, pos, &deeper, depth + 1)?
                } else {
                    skip_value(line, pos, depth)?
                };
                if !ends_here.is_empty() {
                    let span = self.capture(line, pos, end)?;
                    for i in ends_here {
                        if let Some(s) = self.spans.get_mut(i) {
                            *s = span;
                        }
                    }
                }
                end
            };
            self.scratch = here;
            pos = skip_ws(line, end);
            match line.get(pos) {
                Some(b',') => pos = skip_ws(line, pos + 1),
                Some(b'}') => return Ok(pos + 1),
                _ => {
                    return Err(JsonError {
                        at: pos,
                        what: "`,` or `}`",
                    })
                }
            }
        }
    }

    /// Copies the value `line[start..end]` into `buf` as field text.
    fn capture(&mut self, line: &[u8], start: usize, end: usize) -> Parse<Span> {
        let raw = line.get(start..end).unwrap_or_default();
        let from = self.buf.len();
        match raw.first() {
            Some(b'"') => {
                let inner = raw.get(1..raw.len().saturating_sub(1)).unwrap_or_default();
                if inner.contains(&b'\\') {
                    unescape(inner, &mut self.buf);
                } else {
                    self.buf.extend_from_slice(inner);
                }
            }
            Some(b'n') if raw == b"null" => {}
            _ => self.buf.extend_from_slice(raw),
        }
        Ok((from, self.buf.len()))
    }
}

fn skip_ws(line: &[u8], mut pos: usize) -> usize {
    while let Some(b' ' | b'\t' | b'\r' | b'\n') = line.get(pos) {
        pos += 1;
    }
    pos
}

/// The string starting at `line[pos] == b'"'`: (content start, position of
/// the closing quote, whether it has escapes).
fn string_bounds(line: &[u8], pos: usize) -> Parse<(usize, usize, bool)> {
    let start = pos + 1;
    let mut p = start;
    let mut escaped = false;
    loop {
        let rest = line.get(p..).unwrap_or_default();
        match memchr2(b'"', b'\\', rest) {
            Some(i) if rest.get(i) == Some(&b'"') => return Ok((start, p + i, escaped)),
            Some(i) => {
                escaped = true;
                p += i + 2;
            }
            None => {
                return Err(JsonError {
                    at: pos,
                    what: "a closing `\"`",
                })
            }
        }
    }
}

/// Skips the value at `pos`; returns the position after it.
fn skip_value(line: &[u8], pos: usize, depth: usize) -> Parse<usize> {
    match line.get(pos) {
        Some(b'"') => Ok(string_bounds(line, pos)?.1 + 1),
        Some(b'{') | Some(b'[') => {
            // Depth-count brackets outside strings.
            let mut level = 0usize;
            let mut p = pos;
            loop {
                match line.get(p) {
                    Some(b'"') => p = string_bounds(line, p)?.1 + 1,
                    Some(b'{' | b'[') => {
                        level += 1;
                        if depth + level > MAX_DEPTH {
                            return Err(JsonError {
                                at: p,
                                what: "less deeply nested values",
                            });
                        }
                        p += 1;
                    }
                    Some(b'}' | b']') => {
                        level -= 1;
                        p += 1;
                        if level == 0 {
                            return Ok(p);
                        }
                    }
                    Some(_) => p += 1,
                    None => {
                        return Err(JsonError {
                            at: pos,
                            what: "a closing bracket",
                        })
                    }
                }
            }
        }
        Some(b) if b.is_ascii_digit() || matches!(b, b'-' | b't' | b'f' | b'n') => {
            let mut p = pos;
            while let Some(&b) = line.get(p) {
                if matches!(b, b',' | b'}' | b']' | b' ' | b'\t' | b'\r' | b'\n') {
                    break;
                }
                p += 1;
            }
            Ok(p)
        }
        _ => Err(JsonError {
            at: pos,
            what: "a JSON value",
        }),
    }
}

/// Appends the unescaped text of a JSON string body to `out`. Invalid
/// escapes are kept as written; `\u` escapes become UTF-8 (lone surrogates
/// become U+FFFD).
fn unescape(raw: &[u8], out: &mut Vec<u8>) {
    let mut i = 0;
    while i < raw.len() {
        let b = raw.get(i).copied().unwrap_or(0);
        if b != b'\\' {
            out.push(b);
            i += 1;
            continue;
        }
        let e = raw.get(i + 1).copied().unwrap_or(b'\\');
        i += 2;
        let c = match e {
            b'n' => b'\n',
            b't' => b'\t',
            b'r' => b'\r',
            b'b' => 8,
            b'f' => 12,
            b'u' => {
                let hex = |at: usize| {
                    raw.get(at..at + 4)
                        .and_then(|h| std::str::from_utf8(h).ok())
                        .and_then(|h| u32::from_str_radix(h, 16).ok())
                };
                let Some(mut cp) = hex(i) else {
                    out.extend_from_slice(b"\\u");
                    continue;
                };
                i += 4;
                if (0xD800..0xDC00).contains(&cp) && raw.get(i..i + 2) == Some(b"\\u") {
                    if let Some(lo) = hex(i + 2).filter(|lo| (0xDC00..0xE000).contains(lo)) {
                        cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                        i += 6;
                    }
                }
                let ch = char::from_u32(cp).unwrap_or('\u{FFFD}');
                let mut tmp = [0u8; 4];
                out.extend_from_slice(ch.encode_utf8(&mut tmp).as_bytes());
                continue;
            }
            other => other,
        };
        out.push(c);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(names: &[&str], line: &str) -> Result<Vec<String>, JsonError> {
        let names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
        let mut x = FieldExtractor::new(&names);
        x.extract(line.as_bytes())?;
        Ok(x.spans
            .iter()
            .map(|&(a, b)| String::from_utf8_lossy(&x.buf[a..b]).into_owned())
            .collect())
    }

    #[test]
    fn flat_nested_and_missing() {
        let line = r#" {"ts": 12.5, "user": {"country": "NO", "id": 7}, "skip": [1, {"a": "}"}], "lat": -3e2, "n": null, "ok": true} "#;
        assert_eq!(
            fields(
                &[
                    "user.country",
                    "lat",
                    "ts",
                    "missing",
                    "n",
                    "ok",
                    "user.id",
                    "user"
                ],
                line
            )
            .unwrap(),
            [
                "NO",
                "-3e2",
                "12.5",
                "",
                "",
                "true",
                "7",
                r#"{"country": "NO", "id": 7}"#
            ]
        );
    }

    #[test]
    fn escapes() {
        let line = r#"{"k\"ey": "a\"b\\c\u00e9\ud83d\ude00", "x": "\n"}"#;
        assert_eq!(
            fields(&["k\"ey", "x"], line).unwrap(),
            ["a\"b\\c\u{e9}\u{1F600}", "\n"]
        );
    }

    #[test]
    fn malformed_records_are_errors_not_panics() {
        for bad in [
            "",
            "[1]",
            "{",
            "{\"a\"",
            "{\"a\":}",
            "{\"a\":1,}",
            "{\"a\":1} x",
            "{\"a\":\"x",
            "{\"a\":[1,2",
            "{\"a\" 1}",
        ] {
            assert!(fields(&["a"], bad).is_err(), "{bad:?}");
        }
        let deep = format!("{{\"a\":{}{}}}", "[".repeat(100), "]".repeat(100));
        assert!(fields(&["a"], &deep).is_err());
        assert_eq!(fields(&["a"], "{}").unwrap(), [""]);
    }
}
