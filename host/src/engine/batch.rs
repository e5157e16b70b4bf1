//! Batches: several commands applied in order as one unit of work. Each command sees what the
//! earlier ones appended (as if committed), and everything commits in one transaction, or
//! nothing does: the first command that fails stops the batch, and the answer names it.

use serde::Serialize;
use serde_json::value::RawValue;
use sha2::{Digest, Sha256};

use super::command::{CommandEngine, Target, metadata, stream_appends};
use super::{CommandError, CommandOutcome, CommandRequest, response};
use crate::capabilities::event_store::BufferedAppend;
use crate::store::StreamAppend;

/// Most commands in one batch.
pub const MAX_BATCH: usize = 100;

/// A batch as HTTP hands it over.
#[derive(Debug, Clone)]
pub struct BatchRequest {
    /// Target domain.
    pub domain: String,
    /// `(command, payload JSON text)`, applied in this order.
    pub commands: Vec<(String, String)>,
    /// The client's `Idempotency-Key` for the whole batch, if sent.
    pub idempotency_key: Option<String>,
    /// The client's correlation id, if sent.
    pub correlation_id: Option<String>,
}

#[derive(Serialize)]
struct Answer<'a> {
    results: Vec<Result_<'a>>,
}

#[derive(Serialize)]
struct Result_<'a> {
    command: &'a str,
    status: u16,
    result: Box<RawValue>,
}

impl CommandEngine {
    /// Applies a batch atomically; a version conflict runs the whole batch again (bounded).
    pub async fn handle_batch(&self, batch: BatchRequest) -> Result<CommandOutcome, CommandError> {
        let failed = |index: usize, command: &str, error: CommandError| CommandError::BatchFailed {
            index: index + 1,
            command: command.to_string(),
            error: Box::new(error),
        };
        if batch.commands.is_empty() || batch.commands.len() > MAX_BATCH {
            return Err(CommandError::InvalidPayload {
                message: format!("a batch holds 1 to {MAX_BATCH} commands"),
                fields: vec![("commands".into(), format!("1 to {MAX_BATCH} commands"))],
            });
        }
        let plugin = self.plugin(&batch.domain)?;
        let targets = batch
            .commands
            .iter()
            .enumerate()
            .map(|(i, (name, payload))| {
                Target::resolve(&plugin, &batch.domain, name, payload).map_err(|e| failed(i, name, e))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let request_hash =
            hex::encode(Sha256::digest(serde_json::to_string(&batch.commands).unwrap_or_default().as_bytes()));
        if let Some(answer) = self.stored_answer(&batch.domain, batch.idempotency_key.as_deref(), &request_hash).await?
        {
            return answer;
        }
        let metadata: Vec<String> =
            batch.commands.iter().map(|(name, _)| metadata(&plugin, name, batch.correlation_id.as_deref())).collect();
        for _attempt in 0..self.max_attempts() {
            let mut prior: Vec<BufferedAppend> = Vec::new();
            let mut streams: Vec<StreamAppend> = Vec::new();
            let mut bodies = Vec::new();
            let mut outbox = Vec::new();
            for (i, ((name, payload), target)) in batch.commands.iter().zip(&targets).enumerate() {
                let request = CommandRequest {
                    domain: batch.domain.clone(),
                    command: name.clone(),
                    payload: payload.clone(),
                    idempotency_key: None,
                    correlation_id: batch.correlation_id.clone(),
                };
                let super::command::Plan { appends, primary_version, outbox: calls, .. } =
                    self.plan(&plugin, target, &request, &prior, None).await.map_err(|e| failed(i, name, e))?;
                outbox.extend(calls);
                let body = response::render(&target.primary, &target.aggregate_id, primary_version, &appends)?;
                let status = response::status(&target.primary, &appends);
                bodies.push((name.as_str(), status, body));
                merge(&mut prior, &appends);
                merge_streams(&mut streams, stream_appends(&batch.domain, appends, &metadata[i]));
            }
            let results = bodies
                .into_iter()
                .map(|(command, status, body)| {
                    Ok(Result_ { command, status, result: RawValue::from_string(body).map_err(store_error)? })
                })
                .collect::<Result<Vec<_>, CommandError>>()?;
            let body = serde_json::to_string(&Answer { results }).map_err(store_error)?;
            if streams.is_empty() {
                return Ok(CommandOutcome { status: 200, body, replayed: false, position: None });
            }
            let outcome = CommandOutcome { status: 200, body, replayed: false, position: None };
            let key = batch.idempotency_key.as_deref();
            let writes = crate::store::AppendBatch { streams, outbox, ..Default::default() };
            if let Some(done) = self.commit(&plugin, &batch.domain, writes, key, &request_hash, outcome).await {
                return done;
            }
        }
        Err(CommandError::Conflict {
            stream: format!("batch of {}", batch.commands.len()),
            attempts: self.max_attempts(),
        })
    }
}

fn store_error(e: serde_json::Error) -> CommandError {
    CommandError::Store(crate::store::StoreError(format!("rendering the batch answer: {e}")))
}

/// Adds `appends` to what the batch appended so far, per stream (later commands continue a
/// stream from where earlier ones left it, so versions stay contiguous).
fn merge(prior: &mut Vec<BufferedAppend>, appends: &[BufferedAppend]) {
    for append in appends {
        match prior.iter_mut().find(|p| p.stream == append.stream) {
            Some(earlier) => earlier.events.extend(append.events.iter().cloned()),
            None => prior.push(append.clone()),
        }
    }
}

/// The same per stream for the store's appends; the first expected version of a stream is the
/// one checked at commit.
fn merge_streams(streams: &mut Vec<StreamAppend>, appends: Vec<StreamAppend>) {
    for append in appends {
        match streams.iter_mut().find(|s| s.stream == append.stream) {
            Some(earlier) => earlier.events.extend(append.events),
            None => streams.push(append),
        }
    }
}
