//! Chat model providers behind one streaming trait: the OpenAI-compatible HTTP
//! provider, the embedded GGUF model and a scripted provider for tests.
//!
//! The crate boundary exists now so the server can depend on it; the providers
//! arrive with the streaming issue.
