//! Runs the backend-independent conformance suite against
//! [`PostgresStore`](sluice_store_postgres::PostgresStore), every test on
//! stores of its own, each in a fresh schema (dropped afterwards), so the
//! tests run in parallel against one server.

mod support;

// The macro pastes this expression into each test body: without a server
// the test returns early (skipped, loudly), except under CI=true.
sluice_store::store_conformance_tests!(match support::factory().await {
    Some(factory) => factory,
    None => return,
});
