//! Streamed inserts: one transaction fed chunk by chunk, so the caller can seal the next
//! chunk of a batch while the store writes the previous one.

use tokio::sync::mpsc;

use crate::model::{RecordRow, StoreError};

/// Opens a stream of exactly `expected` records: the caller keeps the [`RecordSender`], the
/// store takes the [`RecordChunks`] (see [`crate::Store::insert_record_stream`]).
pub fn record_stream(expected: usize) -> (RecordSender, RecordChunks) {
    // One slot per chunk a batch can have, so a send never waits for the store.
    let (tx, rx) = mpsc::channel(expected.max(1));
    (RecordSender { tx }, RecordChunks { rx, expected })
}

/// The caller's half: sends chunks of rows. Dropping it before `expected` rows were sent
/// makes the store roll the whole stream back.
pub struct RecordSender {
    tx: mpsc::Sender<Vec<RecordRow>>,
}

impl RecordSender {
    /// Sends one chunk; false if the store already gave up (its error says why).
    pub async fn send(&self, rows: Vec<RecordRow>) -> bool {
        self.tx.send(rows).await.is_ok()
    }

    /// Like [`RecordSender::send`], from a thread outside the async runtime.
    pub fn blocking_send(&self, rows: Vec<RecordRow>) -> bool {
        self.tx.blocking_send(rows).is_ok()
    }
}

/// The store's half: yields chunks until the sender is dropped, then says whether every
/// expected row arrived.
pub struct RecordChunks {
    rx: mpsc::Receiver<Vec<RecordRow>>,
    expected: usize,
}

impl RecordChunks {
    /// The next chunk, waiting for it; `None` once the sender is gone.
    pub async fn next(&mut self) -> Option<Vec<RecordRow>> {
        self.rx.recv().await
    }

    /// The next chunk from a blocking thread (the SQLite writer).
    pub fn blocking_next(&mut self) -> Option<Vec<RecordRow>> {
        self.rx.blocking_recv()
    }

    /// Ok if exactly the expected number of rows was received: only then may the store
    /// commit.
    pub fn check_complete(&self, received: usize) -> Result<(), StoreError> {
        if received == self.expected {
            Ok(())
        } else {
            Err(StoreError::Aborted(format!(
                "the stream ended after {received} of {} records; nothing was stored",
                self.expected
            )))
        }
    }

    /// Every row, for stores that insert a batch in one statement.
    pub async fn collect(mut self) -> Result<Vec<RecordRow>, StoreError> {
        let mut rows = Vec::with_capacity(self.expected);
        while let Some(chunk) = self.next().await {
            rows.extend(chunk);
            if rows.len() > self.expected {
                break;
            }
        }
        self.check_complete(rows.len())?;
        Ok(rows)
    }
}
