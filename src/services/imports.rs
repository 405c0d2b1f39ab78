//! Use cases: imports (being moved here from the route handlers).
