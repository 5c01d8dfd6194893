//! CSV exports (calls, stats, the long-distance register): RFC 4180 via the `csv` crate,
//! UTF-8, optionally with a byte-order mark (`bom=1`: what spreadsheet programs need to
//! read Chinese names). Large exports are streamed: a blocking task writes rows into a
//! bounded channel as it pages through the store, so a month of a busy site never sits in
//! memory whole. An error in the middle ends the body early (the client sees a truncated
//! transfer, never a silently short file with a 200 and a clean end).

use axum::body::Body;
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

/// Flush to the client in chunks of about this size.
const CHUNK: usize = 64 * 1024;

type Chunk = Result<Vec<u8>, std::io::Error>;

fn writer(buf: Vec<u8>) -> csv::Writer<Vec<u8>> {
    // CRLF as RFC 4180 says, and as `callwarden register` writes.
    csv::WriterBuilder::new().terminator(csv::Terminator::CRLF).from_writer(buf)
}

/// The writing end, used on a blocking thread.
pub struct CsvBody {
    tx: mpsc::Sender<Chunk>,
    w: csv::Writer<Vec<u8>>,
}

/// A CSV download response named `filename`, and the sink that fills it.
pub fn csv_response(filename: &str, bom: bool) -> (CsvBody, Response) {
    let (tx, rx) = mpsc::channel::<Chunk>(8);
    let mut buf = Vec::with_capacity(CHUNK + 1024);
    if bom {
        buf.extend_from_slice("\u{feff}".as_bytes());
    }
    let sink = CsvBody { tx, w: writer(buf) };
    let mut res = Body::from_stream(ReceiverStream::new(rx)).into_response();
    let h = res.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/csv; charset=utf-8"));
    // The name is ours (ASCII), never from the request.
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{filename}\"")) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    (sink, res)
}

impl CsvBody {
    /// Write one row; `false` when the client has gone (stop producing).
    pub fn row<I, S>(&mut self, fields: I) -> bool
    where
        I: IntoIterator<Item = S>,
        S: AsRef<[u8]>,
    {
        if let Err(e) = self.w.write_record(fields) {
            self.fail(&e.to_string());
            return false;
        }
        if self.w.get_ref().len() >= CHUNK {
            return self.send_buffered();
        }
        true
    }

    fn send_buffered(&mut self) -> bool {
        let w = std::mem::replace(&mut self.w, writer(Vec::with_capacity(CHUNK + 1024)));
        match w.into_inner() {
            Ok(chunk) => self.tx.blocking_send(Ok(chunk)).is_ok(),
            Err(e) => {
                self.fail(&e.to_string());
                false
            }
        }
    }

    /// Send what is buffered; the body ends when the sink is dropped.
    pub fn finish(mut self) {
        self.send_buffered();
    }

    /// End the body with an error (the transfer is cut, not completed).
    pub fn fail(&mut self, why: &str) {
        tracing::warn!(error = why, "CSV export failed part way");
        let _ = self.tx.blocking_send(Err(std::io::Error::other(why.to_string())));
    }
}

/// Optional values as CSV cells: empty when absent.
pub fn opt<T: ToString>(v: Option<T>) -> String {
    v.map(|v| v.to_string()).unwrap_or_default()
}
