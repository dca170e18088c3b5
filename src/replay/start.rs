//! Where a replay starts: the nearest usable checkpoint at or before a seq (`--from`), or the
//! start of the log.
//!
//! The nearest checkpoint is found through its object key (checkpoints are keyed
//! `Checkpoint/world`; `LogReader::last_about`), without reading the entries before it. It is
//! loaded only if its state matches its own digest, holds the entry right before it and is in
//! a format this build reads; otherwise the reason is noted and the next earlier one is tried, down to
//! the start of the log (a log written before checkpoints existed has none, and replays from
//! its start as it always did). Loading a checkpoint trusts it: `verify` over a range that
//! contains one compares it with the fold, so a full `verify` checks them all.

use super::ReplayError;
use crate::log::LogReader;
use crate::record::{Body, MarkerKind};
use crate::world::{Fold, checkpoint, checkpoint_key};

/// A fold to replay from, and the first entry to read after it.
pub struct Start {
    /// The fold of entries `1..first`.
    pub fold: Fold,
    /// The seq of the checkpoint it was loaded from (`None`: the start of the log).
    pub checkpoint: Option<u64>,
    /// The first entry to read: the checkpoint's own (it holds the entry before it), or 1.
    pub first: u64,
    /// What happened on the way: checkpoints passed over and why, or that there was none.
    pub notes: Vec<String>,
}

impl Start {
    /// The start of the log: an empty fold, entry 1 next.
    pub fn beginning() -> Start {
        Start {
            fold: Fold::new(),
            checkpoint: None,
            first: 1,
            notes: Vec::new(),
        }
    }

    /// Where the replay started, in words.
    pub fn describe(&self) -> String {
        match self.checkpoint {
            Some(seq) => format!(
                "from the checkpoint at entry {seq} (the world at entry {})",
                seq.saturating_sub(1)
            ),
            None => "from the start of the log".to_string(),
        }
    }
}

/// The fold to replay from for `--from SEQ`: the nearest usable checkpoint at or before `from`
/// (see the module docs), else the start of the log. Every checkpoint passed over, and the
/// absence of any, is in [`Start::notes`]. `from` 0 or 1: the start, without a note.
pub fn start_from(reader: &LogReader, from: u64) -> Result<Start, ReplayError> {
    let mut start = Start::beginning();
    if from <= 1 {
        return Ok(start);
    }
    let key = checkpoint_key();
    let mut upto = from;
    let mut seen = false;
    while upto > 0 {
        let Some(seq) = reader.last_about(&key, upto)? else {
            break;
        };
        upto = seq.saturating_sub(1);
        let entry = match reader.get(seq) {
            Ok(Some(e)) => e,
            Ok(None) => continue,
            Err(e) => {
                seen = true;
                start.notes.push(format!(
                    "the checkpoint at entry {seq} cannot be read ({e}); looking for an earlier one"
                ));
                continue;
            }
        };
        let Body::Marker(m) = &entry.body else {
            continue; // something else filed under the same key: not a checkpoint
        };
        if m.marker != MarkerKind::Checkpoint {
            continue;
        }
        seen = true;
        match checkpoint::load(m, seq) {
            Ok((_, fold)) => {
                start.fold = fold;
                start.checkpoint = Some(seq);
                start.first = seq;
                return Ok(start);
            }
            Err(why) => start.notes.push(format!(
                "the checkpoint at entry {seq} was not used: {why}; looking for an earlier one"
            )),
        }
    }
    start.notes.push(if seen {
        "no usable checkpoint at or before it: folded from the start of the log".to_string()
    } else {
        format!(
            "the log has no checkpoint at or before entry {from} (it was written before \
             checkpoints, or before its first one): folded from the start of the log"
        )
    });
    Ok(start)
}
