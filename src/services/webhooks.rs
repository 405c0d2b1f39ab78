//! Use cases: webhooks (being moved here from the route handlers).
