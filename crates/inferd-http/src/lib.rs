//! HTTP front end (being built).
