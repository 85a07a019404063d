//! CSV downloads of admin lists, streamed: rows are read in keyset batches while the body is sent,
//! so memory stays flat however long the list is. A cell a spreadsheet would run as a formula is
//! defused, because exported names and domains come from partners and Microsoft, not from staff.

use std::future::Future;

use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};

use crate::web::errors::PageError;

/// Rows per database read of an export.
pub const BATCH: i64 = 500;

/// One CSV record (RFC 4180). A cell a spreadsheet would run as a formula gets a leading `'`.
pub fn csv_line(cells: &[String]) -> String {
    let mut line = cells
        .iter()
        .map(|cell| {
            let cell = if cell.starts_with(['=', '+', '-', '@', '\t', '\r']) {
                format!("'{cell}")
            } else {
                cell.clone()
            };
            if cell.contains([',', '"', '\n', '\r']) {
                format!("\"{}\"", cell.replace('"', "\"\""))
            } else {
                cell
            }
        })
        .collect::<Vec<_>>()
        .join(",");
    line.push_str("\r\n");
    line
}

/// A CSV download named `filename` (ASCII, no quotes): the `columns` line, then the records of each
/// batch `read` returns for a keyset position, starting at `start`, until it returns no next
/// position. A failed read ends the body with an error, so the browser reports a broken download
/// instead of saving a short file as if it were complete.
pub fn download<P, F, Fut>(
    filename: &str,
    columns: &[&str],
    start: P,
    mut read: F,
) -> Result<Response, PageError>
where
    P: Send + 'static,
    F: FnMut(P) -> Fut + Send + 'static,
    Fut: Future<Output = Result<(Vec<Vec<String>>, Option<P>), sqlx::Error>> + Send + 'static,
{
    let disposition = HeaderValue::try_from(format!("attachment; filename=\"{filename}\""))
        .map_err(PageError::internal)?;
    let head = csv_line(&columns.iter().map(|c| (*c).to_owned()).collect::<Vec<_>>());
    let name = filename.to_owned();
    let (sender, receiver) = tokio::sync::mpsc::channel::<Result<bytes::Bytes, std::io::Error>>(4);
    tokio::spawn(async move {
        if sender.send(Ok(head.into())).await.is_err() {
            return;
        }
        let mut position = Some(start);
        while let Some(at) = position.take() {
            match read(at).await {
                Ok((records, next)) => {
                    let chunk: String = records.iter().map(|cells| csv_line(cells)).collect();
                    if !chunk.is_empty() && sender.send(Ok(chunk.into())).await.is_err() {
                        return;
                    }
                    position = next;
                }
                Err(error) => {
                    tracing::warn!(error = %error, export.file = %name, "export stopped: the database failed");
                    let _ = sender.send(Err(std::io::Error::other("database"))).await;
                    return;
                }
            }
        }
    });
    let stream = futures_util::stream::unfold(receiver, |mut receiver| async move {
        receiver.recv().await.map(|item| (item, receiver))
    });
    Ok((
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/csv; charset=utf-8"),
            ),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        axum::body::Body::from_stream(stream),
    )
        .into_response())
}

/// The next keyset position after a batch: the last row's, when the batch was full.
pub fn next_after<T, P>(rows: &[T], position: impl Fn(&T) -> P) -> Option<P> {
    rows.last()
        .filter(|_| rows.len() as i64 == BATCH)
        .map(position)
}

#[cfg(test)]
mod tests {
    use super::csv_line;

    #[test]
    fn csv_cells_are_quoted_and_formulas_defused() {
        let line = csv_line(&["a,b".to_owned(), "say \"hi\"".to_owned(), "=1+1".to_owned()]);
        assert_eq!(line, "\"a,b\",\"say \"\"hi\"\"\",'=1+1\r\n");
    }
}
