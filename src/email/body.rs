//! Body encoding for the wire, with a memory of the last body of each kind.
//!
//! A newsletter's messages differ from one recipient to the next in a few lines (the greeting,
//! the unsubscribe link); the rest, often tens of kilobytes, is the same for all of them. The
//! encoder produces exactly the body lettre would (its choice of 7bit, quoted-printable or
//! base64, CRLF line endings, quoted-printable from the same library), but it encodes line by
//! line and takes each line that is the same as the previous body's line at that place from
//! that body's encoding. Quoted-printable encodes each line on its own (a line break resets the
//! line, and what ends a line is encoded the same at the end of the text), so the result is
//! byte for byte what encoding the whole text at once gives, as the tests check against lettre.
//!
//! Tuned hot path: this code is measured by `bench/blast.sh` (messages a second and CPU per
//! message against a bare SMTP client in the same run, docs/benchmarks.md). It stays outside
//! the service layer and the shared job runner on purpose; measure before and after any change.

use std::ops::Range;

use lettre::message::header::ContentTransferEncoding;
use lettre::message::Body;

/// Bodies told apart by the encoder (a language and a part, say): one previous body is kept
/// for each.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BodyKind(pub &'static str, pub &'static str);

/// The last body of one kind: its text, and where each of its lines lies in the text and in
/// its quoted-printable form.
struct Previous {
    kind: BodyKind,
    text: String,
    encoded: String,
    lines: Vec<(Range<usize>, Range<usize>)>,
}

/// Encodes bodies as lettre's `Body::new` does, reusing the encoding of lines seen in the
/// previous body of the same kind. One per thread of work: it is not shared.
#[derive(Default)]
pub struct BodyEncoder {
    previous: Vec<Previous>,
}

/// Lettre's rule for a line too long for 7bit: 76 or more bytes from one line feed to the
/// next, counting the line feed; the first line counts from the start of the text.
const LONG_LINE: usize = 76;

impl BodyEncoder {
    pub fn new() -> Self {
        Self::default()
    }

    /// `text` ready for the wire, with its transfer encoding.
    pub fn encode(&mut self, kind: BodyKind, text: String) -> Body {
        let ascii = text.is_ascii();
        let mut too_long = false;
        for (i, line) in text.split('\n').enumerate() {
            too_long |= line.len() + usize::from(i > 0) >= LONG_LINE;
        }
        if ascii && !too_long {
            let mut out = String::with_capacity(text.len() + text.len() / 32);
            for (i, line) in lines(&text).enumerate() {
                if i > 0 {
                    out.push_str("\r\n");
                }
                out.push_str(line);
            }
            return Body::dangerous_pre_encoded(
                out.into_bytes(),
                ContentTransferEncoding::SevenBit,
            );
        }
        // Lettre's choice between quoted-printable and base64: base64 once more than a third of
        // the bytes would need escaping (text in a script quoted-printable would triple).
        let escaped = needing_escape(text.as_bytes());
        if escaped <= text.len() / 3 {
            self.quoted_printable(kind, text)
        } else {
            Body::new(text)
        }
    }

    fn quoted_printable(&mut self, kind: BodyKind, text: String) -> Body {
        let previous = self.previous.iter().position(|p| p.kind == kind);
        let mut encoded = String::with_capacity(text.len() + text.len() / 8);
        let mut spans = Vec::new();
        for (i, line) in lines(&text).enumerate() {
            // Where the line lies in `text` (it is a slice of it).
            let from = line.as_ptr() as usize - text.as_ptr() as usize;
            let source = from..from + line.len();
            if i > 0 {
                encoded.push_str("\r\n");
            }
            let at = encoded.len();
            let reused = previous.map(|p| &self.previous[p]).and_then(|p| {
                let (was, enc) = p.lines.get(i)?;
                (p.text.get(was.clone()) == Some(line)).then(|| &p.encoded[enc.clone()])
            });
            match reused {
                Some(same) => encoded.push_str(same),
                None => encoded.push_str(&quoted_printable::encode_to_str(line)),
            }
            spans.push((source, at..encoded.len()));
        }
        let body = Body::dangerous_pre_encoded(
            encoded.clone().into_bytes(),
            ContentTransferEncoding::QuotedPrintable,
        );
        let remembered = Previous {
            kind,
            text,
            encoded,
            lines: spans,
        };
        match previous {
            Some(p) => self.previous[p] = remembered,
            None => self.previous.push(remembered),
        }
        body
    }
}

/// How many bytes quoted-printable escapes (all but tab and printable ASCII). Counted in
/// chunks of at most 255 bytes into a `u8`, which the compiler turns into wide vector sums.
fn needing_escape(bytes: &[u8]) -> usize {
    bytes
        .chunks(255)
        .map(|chunk| {
            let n: u8 = chunk
                .iter()
                .map(|&b| u8::from(!matches!(b, b'\t' | b' '..=b'~')))
                .sum();
            usize::from(n)
        })
        .sum()
}

/// The lines of `text` as lettre reads them: a line feed, with the carriage return before it
/// if there is one, ends a line; a lone carriage return is part of its line.
fn lines(text: &str) -> impl Iterator<Item = &str> {
    let mut pieces = text.split('\n').peekable();
    std::iter::from_fn(move || {
        let piece = pieces.next()?;
        Some(match pieces.peek() {
            Some(_) => piece.strip_suffix('\r').unwrap_or(piece),
            None => piece,
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn lettre(text: &str) -> (Vec<u8>, ContentTransferEncoding) {
        let body = Body::new(text.to_owned());
        (body.as_ref().to_vec(), body.encoding())
    }

    fn ours(
        encoder: &mut BodyEncoder,
        kind: &'static str,
        text: &str,
    ) -> (Vec<u8>, ContentTransferEncoding) {
        let body = encoder.encode(BodyKind("en", kind), text.to_owned());
        (body.as_ref().to_vec(), body.encoding())
    }

    #[test]
    fn a_newsletter_body_is_encoded_as_lettre_encodes_it() {
        let shared = "<p style=\"font-family:Arial,sans-serif;font-size:15px;line-height:1.5\">Gracias por todo: sin personas como tú nada de esto ocurre, y la campaña sigue.</p>\n".repeat(40);
        let mut encoder = BodyEncoder::new();
        for name in ["Ana", "José", "Li", "Ana"] {
            for text in [
                format!("<p>Hola {name} =)</p>\n{shared}<a href=\"https://x.example/u/{name}\">Baja</a>\n"),
                format!("Hello {name}\r\n\r\nshort lines only\r\n"),
                format!("{shared}trailing space \n\tand tab\t\r\nbare\rcarriage {name}"),
                // A carriage return at the very end belongs to the last line.
                format!("Hello {name}\n{shared}\r"),
                format!("short {name}\r"),
                // Mostly escaped bytes: lettre's base64, past 255 bytes of them in a row.
                format!("Здравствуйте, {name}! Спасибо.\n").repeat(40),
            ] {
                assert_eq!(ours(&mut encoder, "html", &text), lettre(&text), "{text:?}");
            }
        }
    }

    proptest! {
        /// Texts made of the same few lines in different orders, so that lines are reused.
        #[test]
        fn any_text_is_encoded_as_lettre_encodes_it(
            pool in proptest::collection::vec("[ -~\t\r=ñé€]{0,90}", 4),
            texts in proptest::collection::vec(
                (proptest::collection::vec(0..4usize, 0..8), any::<bool>(), any::<bool>()),
                1..6,
            ),
        ) {
            let mut encoder = BodyEncoder::new();
            for (picks, crlf, last_break) in &texts {
                let lines: Vec<&str> = picks.iter().map(|&i| pool[i].as_str()).collect();
                let mut text = lines.join(if *crlf { "\r\n" } else { "\n" });
                if *last_break {
                    text.push('\n');
                }
                prop_assert_eq!(ours(&mut encoder, "a", &text), lettre(&text));
            }
        }
    }
}
