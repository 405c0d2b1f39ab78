//! Use cases: staff (being moved here from the route handlers).
