//! STUB: the mock WeChat API server.
