//! Sheets appends, batched: the rows of events waiting at the same moment
//! for the same table go out as one `values.append`.
//!
//! `values.append` is not idempotent: sent twice, it adds the row twice.
//! With a key column, each flush first reads that column (one
//! `values.get`) and leaves out rows whose key is already there, so a
//! repeat (a redelivery after a crash, a retry after an answer that never
//! came) adds nothing. The batcher never puts two rows with one key in one
//! batch, nor in two batches in flight at once, so the read cannot miss a
//! row being appended by this worker. Without a key column an append that
//! may have landed is not sent again (the pipeline dead-letters it as
//! `outcome-unknown`).

use crate::client::{Call, Client, segment};
use crate::config::{Api, KeyColumn, ValueInput};
use crate::error::from_answer;
use gluefleet_core::auth::Credential;
use gluefleet_core::batch::{FlushResult, Instant};
use gluefleet_core::{ConnectorError, Delivered};
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

/// Which table a row goes to: rows share an append only when all of this
/// is the same.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Table {
    /// Spreadsheet id.
    pub spreadsheet: String,
    /// The range naming the table.
    pub range: String,
    /// `valueInputOption`.
    pub value_input: &'static str,
    /// The key column's letters.
    pub key_column: Option<String>,
    /// The user acting.
    pub subject: Option<String>,
}

/// One row waiting for its append.
#[derive(Debug)]
pub struct Row {
    /// Where it goes.
    pub table: Table,
    /// Its cells.
    pub cells: Vec<Value>,
    /// Its key (the key column's cell as text), when the table has one.
    pub key: Option<String>,
    /// The credential of its attempt.
    pub credential: Option<Credential>,
    /// Its attempt's deadline.
    pub deadline: Instant,
}

/// The table a row belongs to.
pub fn table(
    spreadsheet: String,
    range: String,
    value_input: ValueInput,
    key_column: Option<&KeyColumn>,
    subject: Option<&str>,
) -> Table {
    Table {
        spreadsheet,
        range,
        value_input: value_input.as_str(),
        key_column: key_column.map(|k| k.letters.clone()),
        subject: subject.map(str::to_owned),
    }
}

/// A cell's value as key text: strings as they are, numbers and booleans
/// as written; anything else (empty, null, an array) is no key.
pub fn key_text(cell: &Value) -> Option<String> {
    match cell {
        Value::String(s) if !s.trim().is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// The range of the key column of `table`: `Orders!B:B`.
fn key_range(table: &Table, letters: &str) -> String {
    let sheet = table
        .range
        .rsplit_once('!')
        .map_or(table.range.as_str(), |(sheet, _)| sheet);
    format!("{sheet}!{letters}:{letters}")
}

/// Sends one batch: per table, a read of the key column (when it has one)
/// and one append of the rows not already there.
pub async fn flush(client: Arc<Client>, rows: Vec<Row>) -> FlushResult<Delivered> {
    let mut results: Vec<Option<Result<Delivered, ConnectorError>>> =
        (0..rows.len()).map(|_| None).collect();
    let mut tables: BTreeMap<&Table, Vec<usize>> = BTreeMap::new();
    for (i, row) in rows.iter().enumerate() {
        tables.entry(&row.table).or_default().push(i);
    }
    for (table, members) in tables {
        let outcome = append_table(&client, table, &rows, &members).await;
        match outcome {
            Ok(done) => {
                for (i, d) in members.into_iter().zip(done) {
                    results[i] = Some(Ok(d));
                }
            }
            Err(e) => {
                for i in members {
                    results[i] = Some(Err(e.replicate()));
                }
            }
        }
    }
    Ok(results
        .into_iter()
        .map(|r| r.unwrap_or_else(|| Err(ConnectorError::transient("row left out of its batch"))))
        .collect())
}

async fn append_table(
    client: &Client,
    table: &Table,
    rows: &[Row],
    members: &[usize],
) -> Result<Vec<Delivered>, ConnectorError> {
    let credential =
        Credential::newest(members.iter().filter_map(|&i| rows[i].credential.as_ref()));
    let until = members
        .iter()
        .map(|&i| rows[i].deadline)
        .min()
        .unwrap_or_else(Instant::now);
    let timeout = || until.saturating_duration_since(Instant::now());
    let sheet = segment(&table.spreadsheet);
    let present: HashSet<String> = match &table.key_column {
        None => HashSet::new(),
        Some(letters) => {
            let range = key_range(table, letters);
            client.count_sheets_read();
            let answer = client
                .send(Call {
                    method: http::Method::GET,
                    api: Api::Sheets,
                    path: format!("/v4/spreadsheets/{sheet}/values/{}", segment(&range)),
                    query: vec![
                        ("majorDimension", "COLUMNS".into()),
                        ("valueRenderOption", "UNFORMATTED_VALUE".into()),
                    ],
                    body: None,
                    credential,
                    timeout: timeout(),
                })
                .await?;
            if !answer.is_success() {
                return Err(from_answer(&answer));
            }
            let body = answer.json();
            body["values"]
                .as_array()
                .and_then(|cols| cols.first())
                .and_then(Value::as_array)
                .map(|col| col.iter().filter_map(key_text).collect())
                .unwrap_or_default()
        }
    };
    let mut done = Vec::with_capacity(members.len());
    let mut values = Vec::with_capacity(members.len());
    for &i in members {
        let row = &rows[i];
        if row.key.as_ref().is_some_and(|k| present.contains(k)) {
            done.push(Delivered::AlreadyDone);
        } else {
            done.push(Delivered::Applied);
            values.push(Value::Array(row.cells.clone()));
        }
    }
    if values.is_empty() {
        return Ok(done);
    }
    let body = json!({ "range": table.range, "majorDimension": "ROWS", "values": values });
    let answer = client
        .send(Call {
            method: http::Method::POST,
            api: Api::Sheets,
            path: format!(
                "/v4/spreadsheets/{sheet}/values/{}:append",
                segment(&table.range)
            ),
            query: vec![
                ("valueInputOption", table.value_input.into()),
                ("insertDataOption", "INSERT_ROWS".into()),
            ],
            body: Some(&body),
            credential,
            timeout: timeout(),
        })
        .await?;
    if !answer.is_success() {
        return Err(from_answer(&answer));
    }
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_text_and_blank_cells_are_none() {
        assert_eq!(key_text(&json!("A-1")), Some("A-1".into()));
        assert_eq!(key_text(&json!(42)), Some("42".into()));
        assert_eq!(key_text(&json!("  ")), None);
        assert_eq!(key_text(&json!(null)), None);
        assert_eq!(key_text(&json!([1])), None);
    }

    #[test]
    fn the_key_range_is_the_column_of_the_tables_sheet() {
        let t = table(
            "s".into(),
            "'Q4 Orders'!B2:F".into(),
            ValueInput::Raw,
            None,
            None,
        );
        assert_eq!(key_range(&t, "C"), "'Q4 Orders'!C:C");
        let t = table("s".into(), "Orders".into(), ValueInput::Raw, None, None);
        assert_eq!(key_range(&t, "A"), "Orders!A:A");
    }
}
