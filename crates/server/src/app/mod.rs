//! What the API and the dashboard both do, written once: each handler
//! parses its request (JSON or a form), calls here, and renders the answer
//! its own way.

pub mod checks;
