//! The `shop` binary end to end, one test binary with a module per subject: the commands and
//! read models on every backend (`scenario`, `backends`), the demo and the menu (`programs`),
//! and a projector killed with SIGKILL while orders are written (`crash`).

mod backends;
mod crash;
mod programs;
mod scenario;
mod support;
