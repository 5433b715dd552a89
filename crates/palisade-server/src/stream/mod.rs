//! The streaming pipeline of `POST /api/chat/stream/`: from the upstream
//! model's text deltas to the NDJSON lines the client reads. More stages
//! (generation task, persistence hooks) will join these modules.
//!
//! * [`blocks`]: the incremental markdown → UI block parser.
//! * [`ndjson`]: the wire encoding of every line of the stream.
//! * [`request`]: the request body and its validation (DRF's messages).

pub mod blocks;
pub mod ndjson;
pub mod request;
