//! The streaming pipeline of `POST /api/chat/stream/`: from the upstream
//! model's text deltas to the NDJSON lines the client reads and the stored
//! answer.
//!
//! * [`request`]: the request body and its validation (DRF's messages).
//! * [`generation`]: the task that runs one answer, independent of the
//!   connection, holding the thread's generation lease.
//! * [`blocks`]: the incremental markdown → UI block parser.
//! * [`ndjson`]: the wire encoding of every line of the stream.
//! * [`registry`]: the generations running on this node (cancel, shutdown).
//! * [`recovery`]: the sweep that marks answers of dead nodes interrupted.
//! * [`follow`]: following a running answer from any node.
//! * [`settings`]: what an operator configures about chat.

pub mod blocks;
pub mod follow;
pub mod generation;
pub mod ndjson;
pub mod recovery;
pub mod registry;
pub mod request;
pub mod settings;
