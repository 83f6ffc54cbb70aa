//! The server through a real HTTP client against a running server on loopback, one module per
//! subsystem (one test binary, to keep link time down).

mod append;
mod auth;
mod backpressure;
mod bad_input;
mod browser;
mod common;
mod feed;
mod hangup;
mod lifecycle;
mod limits;
mod metrics;
mod openapi;
mod reads;
