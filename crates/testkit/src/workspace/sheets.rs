//! Sheets `spreadsheets.values.append`, `update` and `get`.
//!
//! Spreadsheets exist only once a test created them
//! ([`create_spreadsheet`](super::WorkspaceDouble::create_spreadsheet));
//! an unknown id answers `404 NOT_FOUND` "Requested entity was not found."
//! and an unknown sheet (or a range that is no A1 notation) `400` "Unable to
//! parse range: …", both in Sheets' AIP-193 shape.
//!
//! `valueInputOption` is required by Sheets' documentation (not by the
//! Discovery document): a call without it, or with
//! `INPUT_VALUE_OPTION_UNSPECIFIED`, answers `400` "Invalid
//! valueInputOption: INPUT_VALUE_OPTION_UNSPECIFIED" and counts as a
//! violation.
//!
//! Where Google's contract is silent the double decides:
//!
//! * append finds the "table" as the rows from the range's first row to the
//!   last non-empty row of the sheet, and writes right below it, from the
//!   range's first column (at the range's first row when there is none);
//!   `OVERWRITE` and `INSERT_ROWS` behave alike, as nothing lies below;
//! * `USER_ENTERED` turns text that reads as a number into a number (so
//!   `"007"` is stored as `7` and read back as `"7"`, as Sheets does), and
//!   `TRUE`/`FALSE` into booleans; a leading `'` keeps text as text; `RAW`
//!   stores what was sent;
//! * `values.get` renders `FORMATTED_VALUE` (the default) as strings and
//!   `UNFORMATTED_VALUE` as stored; trailing empty rows and cells are left
//!   out; a sheet's grid is 1000 rows × 26 columns, growing with its data;
//! * `null` cells are skipped on update and written empty on append.

use std::collections::HashMap;

use serde_json::{Map, Value, json};

use super::errors::{aip, json_reply};
use super::{Call, State};
use crate::http_target::Reply;

const GRID_ROWS: usize = 1000;
const GRID_COLUMNS: usize = 26;

/// The spreadsheets, by id.
#[derive(Debug, Default)]
pub(crate) struct Books {
    books: HashMap<String, Vec<Sheet>>,
}

#[derive(Debug)]
struct Sheet {
    name: String,
    rows: Vec<Vec<Value>>,
}

impl Books {
    pub(crate) fn create(&mut self, id: &str, sheets: &[&str]) {
        let sheets = sheets
            .iter()
            .map(|name| Sheet {
                name: (*name).to_owned(),
                rows: Vec::new(),
            })
            .collect();
        self.books.insert(id.to_owned(), sheets);
    }

    pub(crate) fn rows(&self, id: &str, sheet: &str) -> Vec<Vec<Value>> {
        let Some(sheet) = self
            .books
            .get(id)
            .and_then(|b| b.iter().find(|s| s.name == sheet))
        else {
            return Vec::new();
        };
        let mut rows = sheet.rows.clone();
        while rows.last().is_some_and(|r| r.iter().all(is_empty)) {
            rows.pop();
        }
        rows
    }
}

fn is_empty(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::String(s) => s.is_empty(),
        _ => false,
    }
}

/// A parsed A1 range: sheet index, first cell, optional last cell
/// (0-based, inclusive; `None` = to the end of the grid).
#[derive(Debug, Clone, Copy)]
struct A1 {
    sheet: usize,
    col: usize,
    row: usize,
    end_col: Option<usize>,
    end_row: Option<usize>,
}

fn column_index(letters: &str) -> Option<usize> {
    let mut n = 0usize;
    for b in letters.bytes() {
        if !b.is_ascii_alphabetic() {
            return None;
        }
        n = n.checked_mul(26)? + usize::from(b.to_ascii_uppercase() - b'A') + 1;
    }
    n.checked_sub(1)
}

/// `A`, `A1`, `1` → (column, row), each optional.
fn parse_cell(s: &str) -> Option<(Option<usize>, Option<usize>)> {
    let split = s.find(|c: char| c.is_ascii_digit()).unwrap_or(s.len());
    let (letters, digits) = s.split_at(split);
    let col = if letters.is_empty() {
        None
    } else {
        Some(column_index(letters)?)
    };
    let row = if digits.is_empty() {
        None
    } else {
        Some(digits.parse::<usize>().ok()?.checked_sub(1)?)
    };
    if col.is_none() && row.is_none() {
        return None;
    }
    Some((col, row))
}

fn column_name(mut index: usize) -> String {
    let mut name = Vec::new();
    loop {
        name.push(b'A' + u8::try_from(index % 26).unwrap_or(0));
        if index < 26 {
            break;
        }
        index = index / 26 - 1;
    }
    name.reverse();
    String::from_utf8(name).unwrap_or_default()
}

/// A sheet name as A1 notation writes it: quoted unless plain.
fn quote(name: &str) -> String {
    if name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        name.to_owned()
    } else {
        format!("'{}'", name.replace('\'', "''"))
    }
}

fn parse_range(sheets: &[Sheet], range: &str) -> Option<A1> {
    let find = |name: &str| sheets.iter().position(|s| s.name == name);
    let (sheet, cells) = if let Some(rest) = range.strip_prefix('\'') {
        // 'My Sheet'!A1, with '' for a quote inside.
        let mut name = String::new();
        let mut chars = rest.char_indices().peekable();
        let mut end = None;
        while let Some((i, c)) = chars.next() {
            if c == '\'' {
                if chars.peek().is_some_and(|(_, n)| *n == '\'') {
                    chars.next();
                    name.push('\'');
                } else {
                    end = Some(i + 1);
                    break;
                }
            } else {
                name.push(c);
            }
        }
        let rest = &rest[end?..];
        let cells = if rest.is_empty() {
            ""
        } else {
            rest.strip_prefix('!')?
        };
        (find(&name)?, cells)
    } else if let Some((name, cells)) = range.rsplit_once('!') {
        (find(name)?, cells)
    } else if let Some(i) = find(range) {
        (i, "")
    } else {
        (0, range)
    };
    if sheets.is_empty() {
        return None;
    }
    if cells.is_empty() {
        return Some(A1 {
            sheet,
            col: 0,
            row: 0,
            end_col: None,
            end_row: None,
        });
    }
    let (start, end) = match cells.split_once(':') {
        Some((a, b)) => (parse_cell(a)?, Some(parse_cell(b)?)),
        None => (parse_cell(cells)?, None),
    };
    let (col, row) = (start.0.unwrap_or(0), start.1.unwrap_or(0));
    let (end_col, end_row) = match end {
        Some((c, r)) => (c, r),
        // A single cell is itself; `A` alone is the column, `5` the row.
        None => (start.0, start.1),
    };
    Some(A1 {
        sheet,
        col,
        row,
        end_col,
        end_row,
    })
}

fn a1(sheet: &str, col: usize, row: usize, end_col: usize, end_row: usize) -> String {
    format!(
        "{}!{}{}:{}{}",
        quote(sheet),
        column_name(col),
        row + 1,
        column_name(end_col),
        end_row + 1
    )
}

/// What `USER_ENTERED` makes of a cell.
fn user_entered(v: Value) -> Value {
    let Value::String(s) = &v else { return v };
    if let Some(text) = s.strip_prefix('\'') {
        return Value::String(text.to_owned());
    }
    match s.as_str() {
        "TRUE" | "true" => return Value::Bool(true),
        "FALSE" | "false" => return Value::Bool(false),
        _ => {}
    }
    let t = s.trim();
    let numeric = !t.is_empty()
        && t.trim_start_matches(['-', '+'])
            .bytes()
            .all(|b| b.is_ascii_digit() || b == b'.' || b == b'e' || b == b'E')
        && t.bytes().any(|b| b.is_ascii_digit())
        && t.bytes().next().is_some_and(|b| b != b'e' && b != b'E');
    if numeric {
        if let Ok(n) = t.parse::<i64>() {
            return Value::from(n);
        }
        if let Some(n) = t.parse::<f64>().ok().and_then(serde_json::Number::from_f64) {
            return Value::Number(n);
        }
    }
    v
}

fn formatted(v: &Value) -> Value {
    match v {
        Value::String(_) => v.clone(),
        Value::Bool(b) => Value::String(if *b { "TRUE" } else { "FALSE" }.to_owned()),
        Value::Number(n) => Value::String(match n.as_f64() {
            Some(f) if f.fract() == 0.0 && f.abs() < 1e15 => format!("{f:.0}"),
            _ => n.to_string(),
        }),
        _ => Value::String(String::new()),
    }
}

/// The body's `values`, as rows.
fn rows_of(body: &Map<String, Value>, input: &str) -> Vec<Vec<Value>> {
    let values: Vec<Vec<Value>> = body
        .get("values")
        .and_then(Value::as_array)
        .map(|rows| {
            rows.iter()
                .map(|r| r.as_array().cloned().unwrap_or_default())
                .collect()
        })
        .unwrap_or_default();
    let values = if body.get("majorDimension").and_then(Value::as_str) == Some("COLUMNS") {
        transpose(&values)
    } else {
        values
    };
    values
        .into_iter()
        .map(|row| {
            row.into_iter()
                .map(|v| {
                    if input == "USER_ENTERED" {
                        user_entered(v)
                    } else {
                        v
                    }
                })
                .collect()
        })
        .collect()
}

fn transpose(rows: &[Vec<Value>]) -> Vec<Vec<Value>> {
    let width = rows.iter().map(Vec::len).max().unwrap_or(0);
    (0..width)
        .map(|c| {
            rows.iter()
                .map(|r| r.get(c).cloned().unwrap_or(Value::Null))
                .collect()
        })
        .collect()
}

fn write(sheet: &mut Sheet, row: usize, col: usize, values: Vec<Vec<Value>>, skip_null: bool) {
    for (i, cells) in values.into_iter().enumerate() {
        let r = row + i;
        if sheet.rows.len() <= r {
            sheet.rows.resize_with(r + 1, Vec::new);
        }
        let target = &mut sheet.rows[r];
        for (j, cell) in cells.into_iter().enumerate() {
            if skip_null && cell.is_null() {
                continue;
            }
            let c = col + j;
            if target.len() <= c {
                target.resize(c + 1, Value::String(String::new()));
            }
            target[c] = if cell.is_null() {
                Value::String(String::new())
            } else {
                cell
            };
        }
    }
}

pub(crate) fn handle(state: &mut State, call: &Call<'_>, violations: &mut Vec<String>) -> Reply {
    let id = call.param("spreadsheetId");
    let range_text = call.param("range");
    let Some(book) = state.sheets.books.get_mut(id) else {
        return aip(404, "Requested entity was not found.");
    };
    let Some(range) = parse_range(book, range_text) else {
        return aip(400, &format!("Unable to parse range: {range_text}"));
    };
    let writes = call.method_id != "sheets.spreadsheets.values.get";
    let input = call.query("valueInputOption").unwrap_or("");
    if writes && !matches!(input, "RAW" | "USER_ENTERED") {
        let message = "Invalid valueInputOption: INPUT_VALUE_OPTION_UNSPECIFIED";
        violations.push(message.to_owned());
        return aip(400, message);
    }
    let sheet = &mut book[range.sheet];
    let body = call.body();
    match call.method_id {
        "sheets.spreadsheets.values.append" => append(id, sheet, range, &body, input),
        "sheets.spreadsheets.values.update" => update(id, sheet, range, &body, input),
        _ => get(sheet, range, call),
    }
}

fn append(id: &str, sheet: &mut Sheet, range: A1, body: &Map<String, Value>, input: &str) -> Reply {
    let last = sheet
        .rows
        .iter()
        .rposition(|r| !r.iter().all(is_empty))
        .filter(|&last| last >= range.row);
    let first = sheet
        .rows
        .iter()
        .enumerate()
        .skip(range.row)
        .find(|(_, r)| !r.iter().all(is_empty))
        .map(|(i, _)| i);
    let mut answer = json!({"spreadsheetId": id});
    let start = match (first, last) {
        (Some(first), Some(last)) => {
            let width = sheet.rows[first..=last]
                .iter()
                .map(Vec::len)
                .max()
                .unwrap_or(1)
                .max(range.col + 1);
            answer["tableRange"] =
                Value::String(a1(&sheet.name, range.col, first, width - 1, last));
            last + 1
        }
        _ => range.row,
    };
    let rows = rows_of(body, input);
    let width = rows.iter().map(Vec::len).max().unwrap_or(0);
    let height = rows.len();
    let cells: usize = rows.iter().map(Vec::len).sum();
    write(sheet, start, range.col, rows, false);
    let updated = if height == 0 || width == 0 {
        format!(
            "{}!{}{}",
            quote(&sheet.name),
            column_name(range.col),
            start + 1
        )
    } else {
        a1(
            &sheet.name,
            range.col,
            start,
            range.col + width - 1,
            start + height - 1,
        )
    };
    answer["updates"] = json!({
        "spreadsheetId": id,
        "updatedRange": updated,
        "updatedRows": height,
        "updatedColumns": width,
        "updatedCells": cells,
    });
    json_reply(200, &answer)
}

fn update(id: &str, sheet: &mut Sheet, range: A1, body: &Map<String, Value>, input: &str) -> Reply {
    let rows = rows_of(body, input);
    let width = rows.iter().map(Vec::len).max().unwrap_or(0);
    let height = rows.len();
    let cells: usize = rows
        .iter()
        .map(|r| r.iter().filter(|c| !c.is_null()).count())
        .sum();
    write(sheet, range.row, range.col, rows, true);
    let updated = if height == 0 || width == 0 {
        format!(
            "{}!{}{}",
            quote(&sheet.name),
            column_name(range.col),
            range.row + 1
        )
    } else {
        a1(
            &sheet.name,
            range.col,
            range.row,
            range.col + width - 1,
            range.row + height - 1,
        )
    };
    json_reply(
        200,
        &json!({
            "spreadsheetId": id,
            "updatedRange": updated,
            "updatedRows": height,
            "updatedColumns": width,
            "updatedCells": cells,
        }),
    )
}

fn get(sheet: &Sheet, range: A1, call: &Call<'_>) -> Reply {
    let grid_rows = sheet.rows.len().max(GRID_ROWS);
    let grid_cols = sheet
        .rows
        .iter()
        .map(Vec::len)
        .max()
        .unwrap_or(0)
        .max(GRID_COLUMNS);
    let end_row = range.end_row.unwrap_or(grid_rows - 1).min(grid_rows - 1);
    let end_col = range.end_col.unwrap_or(grid_cols - 1).min(grid_cols - 1);
    let render_formatted = call
        .query("valueRenderOption")
        .is_none_or(|v| v == "FORMATTED_VALUE");
    let mut values: Vec<Vec<Value>> = (range.row..=end_row)
        .map(|r| {
            let row = sheet.rows.get(r).map_or(&[][..], Vec::as_slice);
            let mut cells: Vec<Value> = (range.col..=end_col)
                .map(|c| row.get(c).cloned().unwrap_or(Value::Null))
                .map(|v| {
                    if is_empty(&v) {
                        Value::String(String::new())
                    } else {
                        v
                    }
                })
                .map(|v| if render_formatted { formatted(&v) } else { v })
                .collect();
            while cells.last().is_some_and(is_empty) {
                cells.pop();
            }
            cells
        })
        .collect();
    while values.last().is_some_and(Vec::is_empty) {
        values.pop();
    }
    let columns = call.query("majorDimension") == Some("COLUMNS");
    if columns {
        values = transpose(&values)
            .into_iter()
            .map(|mut c| {
                for v in &mut c {
                    if v.is_null() {
                        *v = Value::String(String::new());
                    }
                }
                while c.last().is_some_and(is_empty) {
                    c.pop();
                }
                c
            })
            .collect();
    }
    let mut answer = json!({
        "range": a1(&sheet.name, range.col, range.row, end_col, end_row),
        "majorDimension": if columns { "COLUMNS" } else { "ROWS" },
    });
    if !values.is_empty() {
        answer["values"] = Value::Array(values.into_iter().map(Value::Array).collect());
    }
    json_reply(200, &answer)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a1_ranges_parse() {
        let sheets = vec![
            Sheet {
                name: "Sheet1".into(),
                rows: vec![],
            },
            Sheet {
                name: "My Sheet".into(),
                rows: vec![],
            },
        ];
        let r = parse_range(&sheets, "Sheet1!A:C").expect("parses");
        assert_eq!(
            (r.sheet, r.col, r.row, r.end_col, r.end_row),
            (0, 0, 0, Some(2), None)
        );
        let r = parse_range(&sheets, "'My Sheet'!B5").expect("parses");
        assert_eq!(
            (r.sheet, r.col, r.row, r.end_col, r.end_row),
            (1, 1, 4, Some(1), Some(4))
        );
        assert!(parse_range(&sheets, "Nope!A1").is_none());
        assert!(parse_range(&sheets, "Sheet1!1A").is_none());
        assert_eq!(column_name(0), "A");
        assert_eq!(column_name(27), "AB");
        assert_eq!(column_index("AB"), Some(27));
    }

    #[test]
    fn user_entered_parses_numbers_as_sheets_does() {
        assert_eq!(user_entered(json!("007")), json!(7));
        assert_eq!(user_entered(json!("'007")), json!("007"));
        assert_eq!(user_entered(json!("evt-1")), json!("evt-1"));
        assert_eq!(formatted(&json!(7)), json!("7"));
    }
}
