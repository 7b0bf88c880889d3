//! The REST surface end to end through `app()`, without a socket (plus a few real-socket tests).

mod binary;
mod common;
mod corpus;
mod deadline;
mod docs;
mod fuzz_corpus;
mod health;
mod seed;
mod socket;
mod v1;
mod v2;
