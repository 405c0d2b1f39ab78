//! Reading an uploaded CSV before anything is queued: its encoding and structure, which column
//! feeds which field (`columns`), how many rows it has, which lines repeat an earlier address,
//! and the parts (runs of whole records) the worker imports one transaction at a time.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::columns::plan_columns;
pub use super::columns::{Column, Field};
use crate::domain::{Email, FieldDeclaration, InterestSlug, Language};
use crate::error::FieldErrors;

/// Records per part: each part is imported in one transaction.
pub const PART_ROWS: usize = 300;
/// A part also ends once it holds this many bytes (rows with long notes).
const PART_BYTES: usize = 512 * 1024;

/// Everything the worker needs besides the file itself; stored with the import as JSON.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Plan {
    pub columns: Vec<Column>,
    pub delimiter: u8,
    /// For rows without a language of their own.
    pub language: Language,
    /// Interest slugs given to every row, besides the row's own.
    pub interests: Vec<String>,
}

impl Plan {
    pub fn column(&self, field: &Field) -> Option<&Column> {
        self.columns.iter().find(|c| &c.field == field)
    }

    /// What a stored plan says, for the import's view; `None` when the text is not a plan.
    pub fn summary_of(stored: &str) -> Option<crate::views::imports::PlanSummary> {
        let plan: Plan = serde_json::from_str(stored).ok()?;
        Some(crate::views::imports::PlanSummary {
            columns: plan
                .columns
                .iter()
                .map(|c| (c.header.clone(), c.field.label()))
                .collect(),
            interests: plan.interests,
            language: plan.language.as_str(),
        })
    }
}

/// What the request says besides the file.
pub struct Options {
    pub language: Language,
    pub interests: Vec<InterestSlug>,
    /// (column header, target) pairs from `map=Column:target`.
    pub map: Vec<(String, String)>,
    pub delimiter: Option<u8>,
}

/// What the service knows that an upload refers to.
pub struct Catalog {
    pub interests: Vec<String>,
    pub fields: Vec<FieldDeclaration>,
}

/// A part of the file as stored: whole records, the line the first starts on, and the lines in
/// it that repeat an address first seen on an earlier line.
pub struct Part {
    pub first_line: i64,
    pub body: String,
    pub duplicates: Vec<(i64, i64)>,
}

pub struct Prepared {
    pub plan: Plan,
    pub parts: Vec<Part>,
    pub rows: i64,
    pub sha256: String,
    pub bytes: i64,
}

/// Why an upload is refused before anything is stored: field → messages, for a 422.
pub type Refusal = FieldErrors;

fn refuse(field: &str, message: impl Into<String>) -> Refusal {
    FieldErrors::one(field, message)
}

/// The delimiter of the header line: the most frequent of `,` `;` and tab outside quotes
/// (spreadsheets in Spanish locales save with `;`).
fn sniff_delimiter(text: &str) -> u8 {
    let mut counts = [(b',', 0usize), (b';', 0), (b'\t', 0)];
    let mut quoted = false;
    for b in text.bytes() {
        match b {
            b'"' => quoted = !quoted,
            b'\n' if !quoted => break,
            _ if !quoted => {
                if let Some(entry) = counts.iter_mut().find(|(d, _)| *d == b) {
                    entry.1 += 1;
                }
            }
            _ => {}
        }
    }
    counts
        .iter()
        .filter(|(_, n)| *n > 0)
        .max_by_key(|(_, n)| *n)
        .map(|(d, _)| *d)
        .unwrap_or(b',')
}

pub fn reader(body: &str, delimiter: u8, headers: bool) -> csv::Reader<&[u8]> {
    csv::ReaderBuilder::new()
        .delimiter(delimiter)
        .has_headers(headers)
        .flexible(false)
        .from_reader(body.as_bytes())
}

/// Finds where each record of `text` starts, and on which line. The CSV reader's own count
/// slips on CRLF line ends (its line number is one short, and its offset may point at the `\n`
/// of the line before), so both come from the text itself. Records are located in order.
pub struct Lines<'a> {
    text: &'a [u8],
    counted_to: usize,
    line: i64,
}

impl<'a> Lines<'a> {
    pub fn new(text: &'a str) -> Self {
        Self {
            text: text.as_bytes(),
            counted_to: 0,
            line: 1,
        }
    }

    /// The start and the line (1-based) of the record the reader says begins at `byte`.
    pub fn locate(&mut self, byte: u64) -> (usize, i64) {
        let mut start = usize::try_from(byte)
            .unwrap_or(usize::MAX)
            .min(self.text.len());
        // No record starts with a line break: one there ends the line before.
        while start < self.text.len() && matches!(self.text[start], b'\r' | b'\n') {
            start += 1;
        }
        if start < self.counted_to {
            (self.counted_to, self.line) = (0, 1);
        }
        // A line ends at `\n`, and at a `\r` not followed by one: files saved as "CSV
        // (Macintosh)" end their lines with a lone CR, which the CSV reader also takes as one.
        let text = self.text;
        let newlines = (self.counted_to..start)
            .filter(|&i| match text[i] {
                b'\n' => true,
                b'\r' => text.get(i + 1) != Some(&b'\n'),
                _ => false,
            })
            .count();
        self.line += newlines as i64;
        self.counted_to = start;
        (start, self.line)
    }
}

/// Whether a record holds nothing at all (spreadsheets save trailing empty rows as `,,,`).
pub fn is_blank(record: &csv::StringRecord) -> bool {
    record.iter().all(|cell| cell.trim().is_empty())
}

fn describe(error: &csv::Error, columns: usize, text: &str) -> String {
    match error.kind() {
        csv::ErrorKind::UnequalLengths { pos, len, .. } => format!(
            "line {} has {len} field{} where the header has {columns}: check for a quote left open or a stray delimiter",
            pos.as_ref().map(|p| Lines::new(text).locate(p.byte()).1).unwrap_or_default(),
            if *len == 1 { "" } else { "s" },
        ),
        _ => format!("is not a readable CSV file: {error}"),
    }
}

/// The line of a quote that opens a cell and is never closed. The CSV reader would take the rest
/// of the file as that one cell; a file cut short or a stray quote says so instead. Quotes count
/// only at the start of a cell, as the reader treats them.
fn unclosed_quote(text: &str, delimiter: u8) -> Option<usize> {
    let bytes = text.as_bytes();
    let (mut line, mut opened_on) = (1, 0);
    let (mut quoted, mut cell_start) = (false, true);
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'\n' {
            line += 1;
        }
        if quoted {
            if b == b'"' {
                if bytes.get(i + 1) == Some(&b'"') {
                    i += 1;
                } else {
                    quoted = false;
                }
            }
        } else if b == b'"' && cell_start {
            quoted = true;
            opened_on = line;
            cell_start = false;
        } else {
            cell_start = b == delimiter || b == b'\n' || b == b'\r';
        }
        i += 1;
    }
    quoted.then_some(opened_on)
}

/// Checks a whole upload and cuts it into parts. Nothing here touches the database.
/// The file as UTF-8 text without its byte order mark, refused when it is not text.
fn text_of(body: &[u8]) -> Result<&str, Refusal> {
    let body = body.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(body);
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(refuse(
            "file",
            "is empty: send the CSV file as the request body",
        ));
    }
    let text = std::str::from_utf8(body).map_err(|e| {
        let line = body[..e.valid_up_to()].iter().filter(|&&b| b == b'\n').count() + 1;
        refuse(
            "file",
            format!("is not UTF-8 text (line {line}): save the sheet as \"CSV UTF-8\" and send it again"),
        )
    })?;
    if text.contains('\0') {
        return Err(refuse("file", "holds NUL bytes: it is not a CSV text file"));
    }
    Ok(text)
}

/// The header row of a file, each column with the field its name suggests (English or Spanish,
/// any case, or a declared custom field's key), for a form that lets staff map them.
pub fn detect_columns(
    body: &[u8],
    catalog: &Catalog,
) -> Result<Vec<(String, Option<Field>)>, Refusal> {
    let text = text_of(body)?;
    let delimiter = sniff_delimiter(text);
    let mut csv = reader(text, delimiter, true);
    let headers = csv
        .headers()
        .map_err(|e| refuse("file", describe(&e, 0, text)))?;
    Ok(headers
        .iter()
        .map(|h| {
            (
                h.trim().to_owned(),
                super::columns::field_for_header(h, catalog),
            )
        })
        .collect())
}

pub fn prepare(body: &[u8], options: &Options, catalog: &Catalog) -> Result<Prepared, Refusal> {
    let sha256 = crate::tokens::hex(&Sha256::digest(body));
    let bytes = body.len() as i64;
    let text = text_of(body)?;
    let delimiter = options.delimiter.unwrap_or_else(|| sniff_delimiter(text));
    if let Some(line) = unclosed_quote(text, delimiter) {
        return Err(refuse(
            "file",
            format!("a quote opened on line {line} is never closed: the file may be cut short"),
        ));
    }
    let mut csv = reader(text, delimiter, true);
    let headers = csv
        .headers()
        .map_err(|e| refuse("file", describe(&e, 0, text)))?
        .clone();
    let columns = plan_columns(&headers, options, catalog)?;
    let email_index = columns
        .iter()
        .find(|c| c.field == Field::Email)
        .map(|c| c.index)
        .unwrap_or_default();

    let mut parts: Vec<Part> = Vec::new();
    let mut first_seen: HashMap<String, i64> = HashMap::new();
    let mut rows = 0i64;
    // The part being gathered: where it starts in `text`, its first line, rows and repeats.
    let mut start: Option<(usize, i64)> = None;
    let mut in_part = 0usize;
    let mut duplicates = Vec::new();
    let mut record = csv::StringRecord::new();
    let mut lines = Lines::new(text);
    loop {
        let at = csv.position().clone();
        match csv.read_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {}
            Err(e) => return Err(refuse("file", describe(&e, headers.len(), text))),
        }
        if is_blank(&record) {
            continue;
        }
        let (begin, line) = lines.locate(record.position().unwrap_or(&at).byte());
        let (part_start, _) = *start.get_or_insert((begin, line));
        rows += 1;
        in_part += 1;
        if let Ok(email) = Email::parse(record.get(email_index).unwrap_or_default()) {
            match first_seen.get(email.as_str()) {
                Some(&first) => duplicates.push((line, first)),
                None => {
                    first_seen.insert(email.as_str().to_owned(), line);
                }
            }
        }
        let end = csv.position().byte() as usize;
        if in_part >= PART_ROWS || end - part_start >= PART_BYTES {
            let (from, first_line) = start.take().unwrap_or((begin, line));
            parts.push(Part {
                first_line,
                body: text[from..end].to_owned(),
                duplicates: std::mem::take(&mut duplicates),
            });
            in_part = 0;
        }
    }
    if let Some((from, first_line)) = start {
        parts.push(Part {
            first_line,
            body: text[from..].to_owned(),
            duplicates,
        });
    }
    if rows == 0 {
        return Err(refuse("file", "has a header row but no rows to import"));
    }
    Ok(Prepared {
        plan: Plan {
            columns,
            delimiter,
            language: options.language,
            interests: options
                .interests
                .iter()
                .map(|s| s.as_str().to_owned())
                .collect(),
        },
        parts,
        rows,
        sha256,
        bytes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn catalog() -> Catalog {
        Catalog {
            interests: vec!["news".into()],
            fields: vec![FieldDeclaration {
                key: "home_city".into(),
                field_type: crate::domain::FieldType::Text,
                allowed_values: vec![],
                public: false,
            }],
        }
    }

    fn options(map: &[(&str, &str)]) -> Options {
        Options {
            language: Language::En,
            interests: vec![],
            map: map
                .iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect(),
            delimiter: None,
        }
    }

    #[test]
    fn headers_match_fields_in_either_language_and_any_case() {
        let file =
            "\u{feff}Correo Electrónico;Nombre;IDIOMA;Home City\nana@example.org;Ana;es;Tucson\n";
        let prepared = prepare(file.as_bytes(), &options(&[]), &catalog()).unwrap();
        let fields: Vec<String> = prepared
            .plan
            .columns
            .iter()
            .map(|c| c.field.label())
            .collect();
        assert_eq!(
            fields,
            ["email", "name", "language", "attributes.home_city"]
        );
        assert_eq!(prepared.plan.delimiter, b';');
        assert_eq!(prepared.rows, 1);
        assert_eq!(prepared.parts[0].first_line, 2);
    }

    #[test]
    fn unknown_columns_and_a_missing_email_are_refused() {
        let err = prepare(b"who,colour\na,b\n", &options(&[]), &catalog())
            .err()
            .expect("refused");
        assert!(err["columns"][0].contains("\"who\", \"colour\""), "{err:?}");
        let many: Vec<String> = (0..15).map(|i| format!("c{i}")).collect();
        let file = format!("email,{}\na@b.org{}\n", many.join(","), ",x".repeat(15));
        let err = prepare(file.as_bytes(), &options(&[]), &catalog())
            .err()
            .expect("refused");
        assert!(err["columns"][0].contains("and 5 more"), "{err:?}");
        let err = prepare(b"name\nAna\n", &options(&[]), &catalog())
            .err()
            .expect("refused");
        assert!(err["columns"][0].contains("e-mail"), "{err:?}");
        let ok = prepare(
            b"who,colour\na@b.org,red\n",
            &options(&[("who", "email"), ("Colour", "ignore")]),
            &catalog(),
        );
        assert!(ok.is_ok());
        let err = prepare(b"email\na@b.org\n", &options(&[("x", "email")]), &catalog())
            .err()
            .expect("refused");
        assert!(err["map"][0].contains("no column"));
    }

    #[test]
    fn parts_hold_whole_records_and_repeats_point_at_the_first_line() {
        let mut file = String::from("email,name\n");
        for i in 0..(PART_ROWS + 5) {
            file.push_str(&format!("p{i}@example.org,\"Line\nbreak\"\n"));
        }
        file.push_str("P0@Example.org,again\n");
        let prepared = prepare(file.as_bytes(), &options(&[]), &catalog()).unwrap();
        assert_eq!(prepared.parts.len(), 2);
        assert_eq!(prepared.rows, PART_ROWS as i64 + 6);
        let second = &prepared.parts[1];
        assert_eq!(second.first_line, 2 + 2 * PART_ROWS as i64);
        assert!(second.body.starts_with(&format!("p{PART_ROWS}@")));
        let last_line = 2 + 2 * (PART_ROWS as i64 + 5);
        assert_eq!(second.duplicates, vec![(last_line, 2)]);
    }

    #[test]
    fn crlf_files_number_their_lines_as_editors_show_them() {
        let file = b"email,name\r\na@b.org,\"Two\r\nlines\"\r\n\r\nc@d.org,C\r\nA@B.org,again\r\n";
        let prepared = prepare(file, &options(&[]), &catalog()).unwrap();
        assert_eq!(prepared.rows, 3);
        assert_eq!(prepared.parts[0].first_line, 2);
        assert!(prepared.parts[0].body.starts_with("a@b.org"));
        assert_eq!(prepared.parts[0].duplicates, vec![(6, 2)]);
        let mut lines = Lines::new("a\r\n\r\nb\nc");
        assert_eq!(lines.locate(0), (0, 1));
        assert_eq!(lines.locate(2), (5, 3));
        assert_eq!(lines.locate(7), (7, 4));
    }

    #[test]
    fn lone_cr_line_ends_number_their_lines_too() {
        let file = b"email,name\ra@b.org,A\rc@d.org,C\r\nA@B.org,again\r";
        let prepared = prepare(file, &options(&[]), &catalog()).unwrap();
        assert_eq!(prepared.rows, 3);
        assert_eq!(prepared.parts[0].first_line, 2);
        assert_eq!(prepared.parts[0].duplicates, vec![(4, 2)]);
        let mut lines = Lines::new("a\rb\r\nc\n\rd");
        assert_eq!(lines.locate(0), (0, 1));
        assert_eq!(lines.locate(2), (2, 2));
        assert_eq!(lines.locate(5), (5, 3));
        assert_eq!(lines.locate(8), (8, 5));
    }

    #[test]
    fn broken_files_say_what_is_wrong() {
        let err = prepare(b"email,name\na@b.org\n", &options(&[]), &catalog())
            .err()
            .expect("refused");
        assert!(err["file"][0].contains("line 2"), "{err:?}");
        let err = prepare(b"email\n\xff\xfe\n", &options(&[]), &catalog())
            .err()
            .expect("refused");
        assert!(err["file"][0].contains("UTF-8"));
        assert!(prepare(b"  \n", &options(&[]), &catalog()).is_err());
        let err = prepare(b"email\n,\n", &options(&[]), &catalog());
        assert!(err.is_err());
        let err = prepare(
            b"email,name\na@b.org,\"open\nc@d.org,C\n",
            &options(&[]),
            &catalog(),
        )
        .err()
        .expect("refused");
        assert!(err["file"][0].contains("line 2"), "{err:?}");
        // Quotes inside a cell, and escaped quotes, are not openings.
        let ok = prepare(
            b"email,name\na@b.org,=HYPERLINK(\"x\")\nc@d.org,\"Gil \"\"G\"\"\"\n",
            &options(&[]),
            &catalog(),
        );
        assert!(ok.is_ok());
    }
}
