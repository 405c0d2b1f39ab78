//! Encoding for exports: CSV records (RFC 4180, formulas defanged) or NDJSON lines, a chunk at a
//! time.

use std::borrow::Cow;

use chrono::NaiveDateTime;
use serde_json::Value;

use super::{Format, CHUNK};
use crate::db::subscribers::Subscriber;
use crate::views::{time, SubscriberView};

/// Turns subscribers into CSV records or NDJSON lines, buffering one chunk.
pub(super) struct Encoder {
    format: Format,
    fields: Vec<String>,
    csv: csv::Writer<Vec<u8>>,
    lines: Vec<u8>,
    header_written: bool,
}

/// The fixed CSV columns, before one `attributes.<key>` column per declared custom field.
const CSV_COLUMNS: &[&str] = &[
    "id",
    "email",
    "name",
    "language",
    "status",
    "interests",
    "source",
    "created_at",
    "confirmed_at",
    "unsubscribed_at",
    "updated_at",
];

impl Encoder {
    pub(super) fn new(format: Format, fields: Vec<String>) -> Self {
        Self {
            format,
            fields,
            csv: Self::csv_writer(format),
            lines: Vec::new(),
            header_written: false,
        }
    }

    /// RFC 4180: CRLF line ends, fields quoted when they hold a quote, the delimiter or a line
    /// break.
    fn csv_writer(format: Format) -> csv::Writer<Vec<u8>> {
        let delimiter = match format {
            Format::Csv(delimiter) => delimiter,
            Format::Ndjson => b',',
        };
        csv::WriterBuilder::new()
            .delimiter(delimiter)
            .terminator(csv::Terminator::CRLF)
            .from_writer(Vec::with_capacity(256 * CHUNK as usize))
    }

    pub(super) fn row(&mut self, s: &Subscriber, interests: &[String]) -> anyhow::Result<()> {
        match self.format {
            Format::Ndjson => {
                // The object `GET /api/v1/subscribers/{id}` answers, on one line.
                serde_json::to_writer(&mut self.lines, &SubscriberView::new(s, interests))?;
                self.lines.push(b'\n');
            }
            Format::Csv(_) => {
                self.write_header()?;
                let attributes: serde_json::Map<String, Value> =
                    serde_json::from_str(&s.attributes).unwrap_or_default();
                let time = |t: Option<NaiveDateTime>| t.map(time).unwrap_or_default();
                let (created, confirmed) = (time(Some(s.created_at)), time(s.confirmed_at));
                let (unsubscribed, updated) = (time(s.unsubscribed_at), time(Some(s.updated_at)));
                let interests = interests.join(";");
                for cell in [
                    s.id.as_str(),
                    &s.email,
                    s.name.as_deref().unwrap_or_default(),
                    &s.language,
                    s.status.as_str(),
                    &interests,
                    s.source.as_deref().unwrap_or_default(),
                    &created,
                    &confirmed,
                    &unsubscribed,
                    &updated,
                ] {
                    self.csv.write_field(&*defang(cell))?;
                }
                for key in &self.fields {
                    let value = match attributes.get(key) {
                        None | Some(Value::Null) => Cow::Borrowed(""),
                        Some(Value::String(text)) => Cow::Borrowed(text.as_str()),
                        Some(other) => Cow::Owned(other.to_string()),
                    };
                    self.csv.write_field(&*defang(&value))?;
                }
                // Ends the record (the fields are written).
                self.csv.write_record(None::<&[u8]>)?;
            }
        }
        Ok(())
    }

    fn write_header(&mut self) -> anyhow::Result<()> {
        if !self.header_written && matches!(self.format, Format::Csv(_)) {
            let attribute_columns = self.fields.iter().map(|k| format!("attributes.{k}"));
            let header: Vec<String> = CSV_COLUMNS
                .iter()
                .map(|c| (*c).to_owned())
                .chain(attribute_columns)
                .map(|c| defang(&c).into_owned())
                .collect();
            self.csv.write_record(&header)?;
            self.header_written = true;
        }
        Ok(())
    }

    /// The bytes encoded since the last call.
    pub(super) fn take(&mut self) -> Vec<u8> {
        match self.format {
            Format::Ndjson => std::mem::take(&mut self.lines),
            Format::Csv(_) => {
                if self.write_header().is_err() {
                    return Vec::new();
                }
                let full = std::mem::replace(&mut self.csv, Self::csv_writer(self.format));
                full.into_inner().unwrap_or_default()
            }
        }
    }
}

/// What starts a formula in some spreadsheet: = + - @ (and their full-width forms, which some
/// read as the ASCII ones), or a tab or carriage return before one.
const FORMULA_STARTS: &[char] = &['=', '+', '-', '@', '\t', '\r', '＝', '＋', '－', '＠'];
/// Where a spreadsheet may cut a cell into cells: the delimiters people configure (`,` and `;` —
/// the default in Spanish, French and German Excel — and tab) and line breaks.
const SPLITS: &[char] = &[',', ';', '\t', '\r', '\n'];

/// Every fragment of a cell that a spreadsheet could run as a formula, whatever delimiter it
/// splits on, gets a leading apostrophe, which shows the text as typed (OWASP "CSV injection").
fn defang(cell: &str) -> Cow<'_, str> {
    // The byte offsets where a fragment starts, after any spaces.
    let starts = std::iter::once(0)
        .chain(cell.match_indices(SPLITS).map(|(i, split)| i + split.len()))
        .map(|start| start + (cell.len() - start - cell[start..].trim_start_matches(' ').len()))
        .filter(|&at| cell[at..].starts_with(FORMULA_STARTS));
    let mut out: Option<String> = None;
    let mut copied = 0;
    for at in starts {
        let out = out.get_or_insert_with(|| String::with_capacity(cell.len() + 4));
        out.push_str(&cell[copied..at]);
        out.push('\'');
        copied = at;
    }
    match out {
        None => Cow::Borrowed(cell),
        Some(mut out) => {
            out.push_str(&cell[copied..]);
            Cow::Owned(out)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::defang;

    #[test]
    fn formulas_are_defanged_and_text_is_kept() {
        for (cell, out) in [
            ("=HYPERLINK(\"x\")", "'=HYPERLINK(\"x\")"),
            ("+1", "'+1"),
            ("-2", "'-2"),
            ("@SUM(A1)", "'@SUM(A1)"),
            ("\tx", "'\tx"),
            ("\rx", "'\rx"),
            ("Ana", "Ana"),
            ("", ""),
            ("a=b", "a=b"),
            ("x;=cmd|' /C calc'!A0;", "x;'=cmd|' /C calc'!A0;"),
            ("x,=1", "x,'=1"),
            ("x; =1", "x; '=1"),
            ("x\t@y", "x\t'@y"),
            ("x\n-1", "x\n'-1"),
            ("a;b;+c;d", "a;b;'+c;d"),
            ("＝1+1", "'＝1+1"),
            ("López; María", "López; María"),
            ("x;;=1", "x;;'=1"),
            ("x;\t=1", "x;'\t'=1"),
        ] {
            assert_eq!(defang(cell), out);
        }
    }
}
