//! Use cases: catalog (being moved here from the route handlers).
