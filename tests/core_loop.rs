//! End-to-end tests of the core loop (`devstash run`, the SDK markers, the store).
