//! A quick reader for the payload most messages carry: one JSON object of scalar values under
//! plain names. It reads nothing else; every other payload goes to serde_json, which also words
//! every error, so the quick path changes what is accepted by nothing.

/// The top-level members of `payload` as (name, raw value) slices of it, in order, when it is
/// valid UTF-8 and a JSON object whose names hold no escapes and whose values are strings
/// without escapes, numbers, `true`, `false` or `null`. `None` for anything else (nested
/// values, escapes, or text that is not JSON at all): the caller then parses it in full. A raw
/// value is the value's own text, without the whitespace around it, as serde_json's
/// `RawValue` holds it.
pub fn members(payload: &[u8]) -> Option<Vec<(&str, &str)>> {
    let text = std::str::from_utf8(payload).ok()?;
    let mut scan = Scan {
        bytes: payload,
        at: 0,
    };
    let mut out = Vec::with_capacity(8);
    scan.whitespace();
    scan.expect(b'{')?;
    scan.whitespace();
    if scan.peek() == Some(b'}') {
        scan.at += 1;
    } else {
        loop {
            let name = scan.string()?;
            scan.whitespace();
            scan.expect(b':')?;
            scan.whitespace();
            let value = scan.scalar()?;
            // Both ranges lie on ASCII delimiters, so they are char boundaries of `text`.
            out.push((&text[name.0..name.1], &text[value.0..value.1]));
            scan.whitespace();
            match scan.next()? {
                b',' => scan.whitespace(),
                b'}' => break,
                _ => return None,
            }
        }
    }
    scan.whitespace();
    (scan.at == payload.len()).then_some(out)
}

struct Scan<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Scan<'_> {
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.at).copied()
    }

    fn next(&mut self) -> Option<u8> {
        let b = self.peek()?;
        self.at += 1;
        Some(b)
    }

    fn expect(&mut self, want: u8) -> Option<()> {
        (self.next()? == want).then_some(())
    }

    fn whitespace(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.at += 1;
        }
    }

    /// A string without escapes or control characters; the range of its contents.
    fn string(&mut self) -> Option<(usize, usize)> {
        self.expect(b'"')?;
        let start = self.at;
        loop {
            match self.next()? {
                b'"' => return Some((start, self.at - 1)),
                b'\\' => return None,
                c if c < 0x20 => return None,
                _ => {}
            }
        }
    }

    /// A scalar value; the range of its text.
    fn scalar(&mut self) -> Option<(usize, usize)> {
        let start = self.at;
        match self.peek()? {
            b'"' => {
                self.string()?;
            }
            b't' => self.literal(b"true")?,
            b'f' => self.literal(b"false")?,
            b'n' => self.literal(b"null")?,
            b'-' | b'0'..=b'9' => self.number()?,
            _ => return None,
        }
        Some((start, self.at))
    }

    fn literal(&mut self, word: &[u8]) -> Option<()> {
        let end = self.at.checked_add(word.len())?;
        (self.bytes.get(self.at..end)? == word).then(|| self.at = end)
    }

    fn digits(&mut self) -> usize {
        let start = self.at;
        while matches!(self.peek(), Some(b'0'..=b'9')) {
            self.at += 1;
        }
        self.at - start
    }

    /// JSON's number grammar: `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`.
    fn number(&mut self) -> Option<()> {
        if self.peek() == Some(b'-') {
            self.at += 1;
        }
        match self.peek()? {
            b'0' => self.at += 1,
            b'1'..=b'9' => {
                self.digits();
            }
            _ => return None,
        }
        if self.peek() == Some(b'.') {
            self.at += 1;
            if self.digits() == 0 {
                return None;
            }
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.at += 1;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.at += 1;
            }
            if self.digits() == 0 {
                return None;
            }
        }
        // A number runs up to a delimiter: `01` or `1x` is not JSON.
        match self.peek() {
            None | Some(b',' | b'}' | b' ' | b'\t' | b'\n' | b'\r') => Some(()),
            Some(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the full parser makes of a payload, owned: `None` when it refuses it.
    fn by_serde(payload: &[u8]) -> Option<Vec<(String, String)>> {
        let members = crate::validate::parse_members(payload).ok()?;
        Some(
            members
                .into_iter()
                .map(|(k, v)| (k.into_owned(), v.to_owned()))
                .collect(),
        )
    }

    fn owned(members: Vec<(&str, &str)>) -> Vec<(String, String)> {
        members
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect()
    }

    #[test]
    fn a_flat_object_is_read_member_by_member() {
        let payload =
            r#" { "deviceid":"3", "temp" : 21.5 ,"ok":true,"n":null,"neg":-0e+1,"s":"A é"} "#;
        let got = members(payload.as_bytes()).unwrap();
        assert_eq!(
            got,
            [
                ("deviceid", "\"3\""),
                ("temp", "21.5"),
                ("ok", "true"),
                ("n", "null"),
                ("neg", "-0e+1"),
                ("s", "\"A é\""),
            ]
        );
        assert_eq!(members(b"{}").unwrap(), []);
    }

    #[test]
    fn what_the_quick_path_accepts_serde_json_reads_the_same() {
        let accepted: [&[u8]; 6] = [
            br#"{"a":1,"b":"x","c":false}"#,
            b"{\"a\"\t:\r\n0.5E-3}",
            br#"{"a":"1,}:{"}"#,
            br#"{"_row":123456789012345678901234567890}"#,
            br#"{"a":-12.0e7 }"#,
            "{\"n\u{e9}\":\"\u{1F600}\"}".as_bytes(),
        ];
        for payload in accepted {
            let quick = members(payload)
                .unwrap_or_else(|| panic!("{} not read", String::from_utf8_lossy(payload)));
            assert_eq!(owned(quick), by_serde(payload).unwrap());
        }
    }

    #[test]
    fn anything_else_is_left_to_the_full_parser() {
        let refused: [&[u8]; 22] = [
            b"",
            b"[1,2]",
            b"{",
            b"{\"a\":1",
            b"{\"a\":1,}",
            b"{,}",
            b"{\"a\" 1}",
            b"{\"a\":01}",
            b"{\"a\":1.}",
            b"{\"a\":.5}",
            b"{\"a\":1e}",
            b"{\"a\":-}",
            b"{\"a\":1x}",
            b"{\"a\":tru}",
            b"{\"a\":True}",
            b"{\"a\":{\"b\":1}}",
            b"{\"a\":[1]}",
            b"{\"a\\u0062\":1}",
            b"{\"a\":\"x\\\"y\"}",
            b"{\"a\":\"tab\there\"}",
            b"{\"a\":1} x",
            b"{\"a\":\"\xff\"}",
        ];
        for payload in refused {
            assert!(
                members(payload).is_none(),
                "{} was read",
                String::from_utf8_lossy(payload)
            );
        }
    }

    #[test]
    fn generated_payloads_agree_with_serde_json() {
        // Every string over a small alphabet of JSON's delimiters, escapes and value starts,
        // up to four characters, alone and inside an object: the quick path reads a payload
        // only where serde_json reads the same members.
        let alphabet: &[u8] = b"{}[]\":,01-.eE+tnk a\\\t";
        let (mut checked, mut read) = (0, 0);
        let mut stack: Vec<Vec<u8>> = vec![Vec::new()];
        while let Some(body) = stack.pop() {
            for wrapped in [
                body.clone(),
                [&b"{\"k\":"[..], &body, b"}"].concat(),
                [&b"{\"k\":1,"[..], &body, b"}"].concat(),
            ] {
                checked += 1;
                if let Some(quick) = members(&wrapped) {
                    read += 1;
                    assert_eq!(
                        Some(owned(quick)),
                        by_serde(&wrapped),
                        "{}",
                        String::from_utf8_lossy(&wrapped)
                    );
                }
            }
            if body.len() < 4 {
                for &c in alphabet {
                    let mut next = body.clone();
                    next.push(c);
                    stack.push(next);
                }
            }
        }
        assert!(checked > 300_000);
        // Numbers, literals, strings and empty objects among them.
        assert!(read > 500, "only {read} payloads were read");
    }
}
