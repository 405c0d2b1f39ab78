//! Use cases: segments (being moved here from the route handlers).
